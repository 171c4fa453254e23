"""The one way settings read the environment: typed getters that fail loudly on bad or missing values."""

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str:
    """Return the variable as a string; raise ImproperlyConfigured when required and unset or empty."""
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(f"Set the {name} environment variable (see .env.example).")
        return default if default is not None else ""
    return value


def env_bool(name: str, default: bool) -> bool:
    """Return the variable as a boolean (1/0, true/false, yes/no, on/off)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}.")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return the variable as an integer within optional bounds."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}.") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be <= {maximum}, got {value}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """Return a comma-separated variable as a list of non-empty, stripped items."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """Return the variable as a float within optional bounds."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}.") from exc
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {value}.")
    return value


# The settings the launcher, gunicorn's config and Django's settings all need: read here once, the same way for each.
BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_EMBEDDED_MONGODB_PORT = 27027


def var_dir() -> Path:
    """Where the service keeps its local state (the embedded database, caches, spool, metrics): RIDEEASE_VAR_DIR."""
    return Path(env_str("RIDEEASE_VAR_DIR", str(BASE_DIR / "var")))


def embedded_mongodb_port() -> int:
    """The port of the embedded database that `make run` starts when MONGODB_URI is unset."""
    return env_int("EMBEDDED_MONGODB_PORT", DEFAULT_EMBEDDED_MONGODB_PORT, minimum=1, maximum=65535)


def listen_address() -> tuple[str, int]:
    """The address the server listens on: HOST and PORT."""
    return env_str("HOST", "127.0.0.1"), env_int("PORT", 8000, minimum=1, maximum=65535)


# What `make run` keeps under var/ so that any later `manage.py` in another terminal finds the same service.
SECRET_KEY_FILE = "secret_key"
EMBEDDED_URI_FILE = "embedded_mongodb_uri"


def local_secret_key(*, create: bool = False) -> str | None:
    """DJANGO_SECRET_KEY, else the key kept in var/secret_key (generated once, mode 600, when `create`)."""
    configured = env_str("DJANGO_SECRET_KEY")
    if configured:
        return configured
    path = var_dir() / SECRET_KEY_FILE
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip() if path.exists() else None


def local_mongodb_uri() -> str:
    """MONGODB_URI, else the address of the embedded database that `make run` started (recorded in var/ while it
    runs), else the embedded database's default address."""
    configured = env_str("MONGODB_URI")
    if configured:
        return configured
    recorded = var_dir() / EMBEDDED_URI_FILE
    if recorded.exists():
        return recorded.read_text().strip()
    return f"mongodb://127.0.0.1:{embedded_mongodb_port()}/"
