from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tracing", "0001_initial"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="predictiontrace",
            name="traces_version_created",
        ),
    ]
