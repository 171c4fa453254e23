#!/usr/bin/env python
"""Django's command-line utility for RideEase Reco."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rideease.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from pymongo.errors import ServerSelectionTimeoutError

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A setting is missing or wrong: say which, without a traceback.
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(1)
    except ServerSelectionTimeoutError:
        from django.conf import settings

        sys.stderr.write(
            f"error: no database answers at {settings.MONGODB_URI}. Start the service with `make run` in another "
            "terminal (it starts the embedded database), or set MONGODB_URI to a running MongoDB.\n"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
