"""Events carry an id, unique where present: a re-sent batch or a re-imported file stores nothing twice.

The index is partial (only string ids) so that events stored before ids existed, which have none, do not collide.
Written with pymongo because django-mongodb-backend's UniqueConstraint cannot express that filter.
"""

from typing import Any

from django.db import migrations, models

INDEX = "raw_events_unique_event_id"


def create_index(apps: Any, schema_editor: Any) -> None:
    schema_editor.connection.get_collection("raw_events").create_index(
        [("eventId", 1)], unique=True, name=INDEX, partialFilterExpression={"eventId": {"$type": "string"}}
    )


def drop_index(apps: Any, schema_editor: Any) -> None:
    schema_editor.connection.get_collection("raw_events").drop_index(INDEX)


class Migration(migrations.Migration):
    dependencies = [("recommendations", "0001_initial")]
    operations = [
        migrations.AddField(
            model_name="rawevent",
            name="event_id",
            field=models.CharField(blank=True, db_column="eventId", max_length=128, null=True),
        ),
        migrations.RunPython(create_index, drop_index),
    ]
