from django.db import migrations, models

import django_mongodb_backend.fields


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="ApiKey",
            fields=[
                (
                    "id",
                    django_mongodb_backend.fields.ObjectIdAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=64, unique=True)),
                (
                    "scope",
                    models.CharField(
                        choices=[
                            ("admin", "admin (everything: /admin/*, experiment changes, /traces/*, /events)"),
                            ("traces", "traces (read /traces/*)"),
                            ("events", "events (write /events when EVENTS_REQUIRE_API_KEY is on)"),
                        ],
                        max_length=16,
                    ),
                ),
                ("key_hash", models.CharField(db_column="keyHash", max_length=64, unique=True)),
                ("prefix", models.CharField(max_length=16)),
                ("created_at", models.DateTimeField(db_column="createdAt")),
                ("created_by", models.CharField(db_column="createdBy", max_length=150)),
                ("last_used_at", models.DateTimeField(blank=True, db_column="lastUsedAt", null=True)),
                ("revoked_at", models.DateTimeField(blank=True, db_column="revokedAt", null=True)),
                ("revoked_by", models.CharField(blank=True, db_column="revokedBy", default="", max_length=150)),
            ],
            options={"verbose_name": "API key", "db_table": "api_keys", "ordering": ["name"]},
        ),
    ]
