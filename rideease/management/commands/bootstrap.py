"""manage.py bootstrap: first-run setup for `make run`: demo data when the database is empty, and an admin user."""

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from recommendations.selectors import raw_event_exists
from rideease.env import env_str


class Command(BaseCommand):
    help = "Seed demo events when raw_events is empty and make sure an admin user exists (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-demo", action="store_true", help="do not seed demo events")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["no_demo"]:
            self.stdout.write("Demo data: skipped (--no-demo).")
        elif raw_event_exists():
            self.stdout.write("Demo data: raw_events already has events; leaving them as they are.")
        else:
            self.stdout.write("Demo data: raw_events is empty; seeding the demo world.")
            call_command("seed_demo", stdout=self.stdout, stderr=self.stderr)
        self._ensure_admin()

    def _ensure_admin(self) -> None:
        user_model = get_user_model()
        username = env_str("ADMIN_USERNAME", "admin")
        password = env_str("ADMIN_PASSWORD")
        if user_model.objects.filter(username=username).exists():
            if password:
                user = user_model.objects.get(username=username)
                user.set_password(password)
                user.save(update_fields=["password"])
                self.stdout.write(f"Admin user: {username!r} exists; password set from ADMIN_PASSWORD.")
            else:
                self.stdout.write(f"Admin user: {username!r} exists.")
            return
        generated = not password
        password = password or secrets.token_urlsafe(16)
        user_model.objects.create_superuser(username=username, email=env_str("ADMIN_EMAIL"), password=password)
        if generated:
            # Printed once, here; it is stored only as a hash.
            self.stdout.write(f"Admin user: created {username!r} with the generated password: {password}")
        else:
            self.stdout.write(f"Admin user: created {username!r} with the password from ADMIN_PASSWORD.")
