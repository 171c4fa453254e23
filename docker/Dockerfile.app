# RideEase Reco, the serving image: the Django app under gunicorn, on a slim Python 3.11, as a non-root user.
#   docker build -f docker/Dockerfile.app --build-arg VCS_REF="$(git rev-parse HEAD)" \
#     --build-arg SOURCE_URL=https://github.com/<org>/<repo> \
#     -t ghcr.io/<org>/reco-app:"$(git rev-parse --short HEAD)" .
# Only requirements.txt is installed: the embedded database (requirements-local.txt, GPL) and the test tools
# (requirements-dev.txt) never enter the image.

# --- builder: a virtualenv with the pinned runtime dependencies, from binary wheels only ------------------------------
FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Binary wheels only: the slim base has no compiler, and a dependency that would need one should fail here, loudly.
RUN /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: --requirement /tmp/requirements.txt

# --- runtime: the virtualenv and the application code, nothing else --------------------------------------------------
FROM python:3.11-slim AS runtime

# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 rideease \
    && useradd --system --uid 10001 --gid rideease --home-dir /app --no-create-home --shell /usr/sbin/nologin rideease

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=rideease.settings \
    HOST=0.0.0.0 \
    PORT=8080 \
    GUNICORN_THREADS=4 \
    RIDEEASE_VAR_DIR=/app/var \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    PROMETHEUS_MULTIPROC_DIR=/app/var/prometheus

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# The code stays owned by root (read-only for the service); only var/ is the service's to write.
COPY manage.py ./
COPY rideease ./rideease
COPY experiments ./experiments
COPY recommendations ./recommendations
COPY tracing ./tracing
COPY registry ./registry
COPY monitoring ./monitoring
COPY common ./common
COPY core ./core

# The revision, after the code (a new revision changes the code layers anyway) and before a RUN: podman/buildah
# reuses a cached layer for an ARG or LABEL that follows only non-RUN instructions even when the argument changed.
ARG VCS_REF=""
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="rideease-reco-app" \
      org.opencontainers.image.description="RideEase Reco: recommendations served from versioned models (gunicorn + Django)" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.vendor="RideEase"

# The admin's static files are collected once here and served by WhiteNoise; the key only lets settings load.
RUN DJANGO_SECRET_KEY=collectstatic-at-build-time-only python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q /app \
    && install -d -o rideease -g rideease -m 0750 /app/var /app/var/prometheus

USER 10001:10001
EXPOSE 8080
# python, not curl: the slim base has no curl. /healthz never touches the database.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/healthz', timeout=4)"]
# Workers, threads, address and timeouts come from the environment (GUNICORN_WORKERS, GUNICORN_THREADS, HOST, PORT);
# without GUNICORN_WORKERS, one worker per CPU the container may use (its CPU quota counts), at least two.
CMD ["python", "-m", "gunicorn", "--config", "rideease/gunicorn.conf.py"]
