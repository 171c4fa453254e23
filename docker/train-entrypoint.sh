#!/bin/sh
# Entrypoint of the trainer image: `manage.py train`, every argument passed through (e.g. --algorithm svd --json).
set -eu
# The settings require a secret key, but training signs nothing: without one, a random key for this run is enough.
if [ -z "${DJANGO_SECRET_KEY:-}" ]; then
    DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')"
    export DJANGO_SECRET_KEY
fi
exec python manage.py train "$@"
