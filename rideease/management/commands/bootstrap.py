"""manage.py bootstrap: first-run setup for `make run`: demo data when the database is empty, and an admin user."""

import secrets
from typing import Any

from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from common.keys import api_key_local_ensure
from core.variants import CONTROL, TREATMENT
from recommendations.demo_data import DemoConfig
from recommendations.selectors import raw_event_exists
from registry.selectors import model_version_exists
from rideease.env import env_int, env_str

# The first two versions: item-item k-NN as control, truncated SVD as the challenger.
FIRST_MODELS = (("itemknn", CONTROL), ("svd", TREATMENT))


class Command(BaseCommand):
    help = (
        "Seed demo events when raw_events is empty, train and serve the first two models when none is registered, "
        "seed the demo's experiments along with demo events, and make sure an admin user exists (idempotent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-demo", action="store_true", help="do not seed demo events")
        parser.add_argument(
            "--local-admin-key",
            action="store_true",
            help="without MODEL_ADMIN_API_KEY and without an active admin key, create one named 'local' and print it",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        seeded = False
        if options["no_demo"]:
            self.stdout.write("Demo data: skipped (--no-demo).")
        elif raw_event_exists():
            self.stdout.write("Demo data: raw_events already has events; leaving them as they are.")
        else:
            seeded = True
            self.stdout.write("Demo data: raw_events is empty; seeding the demo world.")
            defaults = DemoConfig()
            call_command(
                "seed_demo",
                users=env_int("DEMO_USERS", defaults.users, minimum=1),
                events=env_int("DEMO_EVENTS", defaults.events, minimum=1),
                stdout=self.stdout,
                stderr=self.stderr,
            )
        self._first_models(options["no_demo"])
        if seeded:
            # The demo's experiment history, so the admin shows real results on a fresh machine.
            call_command("seed_experiments", stdout=self.stdout, stderr=self.stderr)
        self._ensure_admin()
        if options["local_admin_key"]:
            self._ensure_local_key()

    def _ensure_local_key(self) -> None:
        """A first local run gets an admin key at once, printed once like the admin password."""
        created = api_key_local_ensure()
        if created is None:
            self.stdout.write("API key: an admin key exists (manage.py api_key list).")
            return
        name, key = created
        self.stdout.write(f"API key: created admin key {name!r}; it is shown this once: {key}")
        self.stdout.write(f"  export RIDEEASE_ADMIN_KEY={key}   # for the curl examples of docs/API.md")

    def _first_models(self, skip: bool) -> None:
        """On a database without models, train the first two versions and serve them as control and treatment."""
        if model_version_exists():
            self.stdout.write("Models: versions are registered; not training.")
            return
        if skip or not raw_event_exists():
            self.stdout.write("Models: none registered and no events to learn from; run `manage.py train` later.")
            return
        for algorithm, target in FIRST_MODELS:
            self.stdout.write(f"Models: training {algorithm} to serve as {target}.")
            call_command("train", algorithm=algorithm, promote=target, stdout=self.stdout, stderr=self.stderr)

    def _ensure_admin(self) -> None:
        username = env_str("ADMIN_USERNAME", "admin")
        password = env_str("ADMIN_PASSWORD")
        if User.objects.filter(username=username).exists():
            if password:
                user = User.objects.get(username=username)
                user.set_password(password)
                user.save(update_fields=["password"])
                self.stdout.write(f"Admin user: {username!r} exists; password set from ADMIN_PASSWORD.")
            else:
                self.stdout.write(f"Admin user: {username!r} exists.")
            return
        generated = not password
        password = password or secrets.token_urlsafe(16)
        User.objects.create_superuser(username=username, email=env_str("ADMIN_EMAIL"), password=password)
        if generated:
            # Printed once, here; it is stored only as a hash.
            self.stdout.write(f"Admin user: created {username!r} with the generated password: {password}")
        else:
            self.stdout.write(f"Admin user: created {username!r} with the password from ADMIN_PASSWORD.")
