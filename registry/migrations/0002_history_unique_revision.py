"""A real unique index on (experiment, revision) for the serving-state history.

Written with pymongo because django-mongodb-backend's UniqueConstraint adds a partialFilterExpression of
{"revision": {"$type": "long"}}, which int32-stored revisions never match, so duplicates would be accepted.
"""

from typing import Any

from django.db import migrations

INDEX = "serving_change_unique_revision"


def create_index(apps: Any, schema_editor: Any) -> None:
    collection = schema_editor.connection.get_collection("serving_state_changes")
    collection.create_index([("experiment", 1), ("revision", 1)], unique=True, name=INDEX)


def drop_index(apps: Any, schema_editor: Any) -> None:
    schema_editor.connection.get_collection("serving_state_changes").drop_index(INDEX)


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial")]
    operations = [migrations.RunPython(create_index, drop_index)]
