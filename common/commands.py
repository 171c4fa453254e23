"""What management commands share."""

import getpass


def command_actor(explicit: str | None) -> str:
    """Who ran the command: --actor, else the login name (recorded in the history)."""
    if explicit:
        return explicit
    try:
        return f"{getpass.getuser()} (manage.py)"
    except (KeyError, OSError):
        return "manage.py"
