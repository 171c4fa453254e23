"""Django settings, read from the environment through rideease.env (every variable is listed in .env.example)."""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from rideease import __version__
from rideease.env import (
    BASE_DIR,
    SECRET_KEY_FILE,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    local_mongodb_uri,
    local_secret_key,
    var_dir,
)

VAR_DIR = var_dir()
APP_VERSION = __version__

DEBUG = env_bool("DJANGO_DEBUG", False)
# The environment's key, else the one `make run` generated under var/; a fixed development key only with DEBUG on.
# Production (an image without var/secret_key) must bring its own.
SECRET_KEY = local_secret_key() or ("insecure-development-key-only-for-debug" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        f"Set the DJANGO_SECRET_KEY environment variable (see .env.example), or run `make run` once on this machine: "
        f"it generates {VAR_DIR / SECRET_KEY_FILE}, which every manage.py command then reads."
    )
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "rideease.mongo_apps.MongoAdminConfig",
    "rideease.mongo_apps.MongoAuthConfig",
    "rideease.mongo_apps.MongoContentTypesConfig",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_mongodb_backend",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "rideease.apps.RideEaseConfig",
    "common.apps.CommonConfig",
    "recommendations.apps.RecommendationsConfig",
    "registry.apps.RegistryConfig",
    "experiments.apps.ExperimentsConfig",
    "tracing.apps.TracingConfig",
    "monitoring.apps.MonitoringConfig",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "rideease.errors.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "rideease.urls"
WSGI_APPLICATION = "rideease.wsgi.application"
# The API is served without trailing slashes (/events, /healthz); never redirect a POST.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: MongoDB only -------------------------------------------------------------------------------------------
# Without MONGODB_URI the embedded server that `make run` starts is the database, at the address it recorded.
MONGODB_URI = local_mongodb_uri()
MONGODB_DB = env_str("MONGODB_DB", "rideease")
MONGODB_TIMEOUT_MS = env_int("MONGODB_TIMEOUT_MS", 5000, minimum=100)

DATABASES = {
    "default": {
        "ENGINE": "django_mongodb_backend",
        "HOST": MONGODB_URI,
        "NAME": MONGODB_DB,
        "OPTIONS": {
            # Fail fast instead of pymongo's 30 s default so an outage surfaces as a clear 503.
            "serverSelectionTimeoutMS": MONGODB_TIMEOUT_MS,
            "connectTimeoutMS": MONGODB_TIMEOUT_MS,
            "appname": "rideease-reco",
        },
    },
}
DATABASE_ROUTERS = ["django_mongodb_backend.routers.MongoRouter"]
DEFAULT_AUTO_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"
MIGRATION_MODULES = {
    "admin": "rideease.mongo_migrations.admin",
    "auth": "rideease.mongo_migrations.auth",
    "contenttypes": "rideease.mongo_migrations.contenttypes",
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Request limits ---------------------------------------------------------------------------------------------------
# A full batch of events with maximal payloads fits; anything larger is refused with 413 before parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 8 * 1024 * 1024, minimum=1024)

# --- Security (checked by `manage.py check --deploy`; the remaining warnings are explained in README) ---
HTTPS = env_bool("DJANGO_HTTPS", True)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
# Load balancers and Prometheus probe these over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000, minimum=0) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", False):
    # Only behind a proxy that always sets this header (Cloud Run, an ingress); otherwise clients could forge it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Django REST framework --------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "rideease.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "common.schema.ProjectAutoSchema",
    # Per-client limits for /events and /recommendations, e.g. "600/minute"; unset (the default) means no limit.
    # Counted per worker process: with N workers a client may reach N times the rate (see docs/API.md).
    "DEFAULT_THROTTLE_RATES": {
        "events": env_str("RATE_LIMIT_EVENTS") or None,
        "recommendations": env_str("RATE_LIMIT_RECOMMENDATIONS") or None,
    },
    # Clients are told apart by address; behind this many proxies, by the X-Forwarded-For entry they added.
    "NUM_PROXIES": env_int("RATE_LIMIT_NUM_PROXIES", 0, minimum=0),
}

# The OpenAPI schema at /api/schema/ and its docs at /api/docs/, served from bundled assets (no CDN).
SPECTACULAR_SETTINGS = {
    "TITLE": "RideEase Reco API",
    "DESCRIPTION": "Recommendations from versioned models, A/B serving, provenance, experiments and the admin API.",
    "VERSION": APP_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "common.schema.closed_request_bodies",
    ],
    "ENUM_NAME_OVERRIDES": {
        "VariantEnum": "core.variants.VARIANTS",
        "SwitchTargetEnum": "registry.state.TARGETS",
        "GuardrailMetricEnum": "core.metrics.GUARDRAIL_METRICS",
    },
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "AdminApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "MetricsToken": {"type": "http", "scheme": "bearer", "description": "Only when METRICS_TOKEN is set."},
        },
    },
}

# --- Domain settings --------------------------------------------------------------------------------------------------
EVENT_MAX_BATCH = env_int("EVENT_MAX_BATCH", 1000, minimum=1, maximum=10000)
EVENT_MAX_PAYLOAD_BYTES = env_int("EVENT_MAX_PAYLOAD_BYTES", 4096, minimum=256)
EVENT_MAX_FUTURE_SECONDS = env_int("EVENT_MAX_FUTURE_SECONDS", 300, minimum=0)
TRACE_RETENTION_DAYS = env_int("TRACE_RETENTION_DAYS", 30, minimum=0)

# --- Model registry and training -------------------------------------------------------------------------------------
MODEL_NAME = env_str("MODEL_NAME", "rec-engine")
# Where artifacts go: a local path or file:// URI, s3://bucket/prefix or gs://bucket/prefix.
MODEL_REGISTRY_URI = env_str("MODEL_REGISTRY_URI", str(BASE_DIR / "model_registry"))
# An S3-compatible endpoint (MinIO, a local S3 server); unset for AWS itself.
MODEL_REGISTRY_S3_ENDPOINT_URL = env_str("MODEL_REGISTRY_S3_ENDPOINT_URL") or None
# Local copies of loaded versions, verified against their sha256 on every load.
MODEL_CACHE_DIR = Path(env_str("MODEL_CACHE_DIR", str(VAR_DIR / "model_cache")))
TRAINING_LOOKBACK_DAYS = env_int("TRAINING_LOOKBACK_DAYS", 30, minimum=1, maximum=36500)
TRAINING_TEST_DAYS = env_int("TRAINING_TEST_DAYS", 3, minimum=1, maximum=365)
TRAINING_ALGORITHM = env_str("TRAINING_ALGORITHM", "itemknn")
TRAINING_REQUIRE_BETTER_THAN_BASELINE = env_bool("TRAINING_REQUIRE_BETTER_THAN_BASELINE", False)
# The search for parameters on validation: at most this long and this many trials (one always runs), in a seeded order.
TRAINING_BUDGET_SECONDS = env_float("TRAINING_BUDGET_SECONDS", 60.0, minimum=0.0)
TRAINING_MAX_TRIALS = env_int("TRAINING_MAX_TRIALS", 20, minimum=1)
TRAINING_SEED = env_int("TRAINING_SEED", 0, minimum=0)
# The share of each rider's newest events held out to judge a model, and by how much NDCG@10 the whole 95% interval
# of its difference to the stronger popularity baseline must stay above zero to publish under the gate.
TRAINING_HOLDOUT_FRACTION = env_float("TRAINING_HOLDOUT_FRACTION", 0.2, minimum=0.05, maximum=0.5)
TRAINING_GATE_MARGIN = env_float("TRAINING_GATE_MARGIN", 0.0, minimum=0.0)
# Where training runs: "local" (this process reads every event) or "spark" (the database sums the events per rider and
# item, Spark MLlib fits ALS). SPARK_MASTER: local[N], spark://host:port, k8s://https://host:port or sc://host:port.
TRAIN_ENGINE = env_str("TRAIN_ENGINE", "local")
SPARK_MASTER = env_str("SPARK_MASTER", "local[2]")
# The Parquet hand-off between this process and Spark: a local folder on one machine, a shared or object-storage URI
# (gs://, s3://) that the cluster's executors read on a cluster. Each run writes its own folder and removes it.
SPARK_WORK_URI = env_str("SPARK_WORK_URI", str(VAR_DIR / "spark"))
# Provenance given by the pipeline that runs the trainer; each falls back as docs/TRAINING.md explains.
MODEL_VERSION = env_str("MODEL_VERSION") or None
DATA_SNAPSHOT_ID = env_str("DATA_SNAPSHOT_ID") or None
PIPELINE_GIT_SHA = env_str("PIPELINE_GIT_SHA") or None
CONTAINER_IMAGE_DIGEST = env_str("CONTAINER_IMAGE_DIGEST") or None

# --- Serving and traces -----------------------------------------------------------------------------------------------
# A bootstrap admin key (X-API-Key), known as the key named "env"; named keys come from `manage.py api_key`. With
# neither, /admin/* and /traces/* answer 503 "admin API disabled".
MODEL_ADMIN_API_KEY = env_str("MODEL_ADMIN_API_KEY")
# Whether POST /events needs a key of scope events (or admin); off, the ride app posts without one.
EVENTS_REQUIRE_API_KEY = env_bool("EVENTS_REQUIRE_API_KEY", False)
# How often each worker checks the serving state's revision (a switch reaches every worker within this time).
SERVING_REFRESH_SECONDS = float(env_int("SERVING_REFRESH_MS", 500, minimum=50)) / 1000
# Each loaded model's rankings of its known riders are computed once when their size (16 bytes an item, 100 items a
# rider) fits in this many MB; larger models score every request. 0 turns it off.
RANKINGS_PRECOMPUTE_BYTES = env_int("RANKINGS_PRECOMPUTE_MB", 32, minimum=0) * 1024 * 1024
# Salt of the variant assignment hash; changing it reshuffles every user.
EXPERIMENT_SALT = env_str("EXPERIMENT_SALT", "rec-engine")
# Traces and exposures are written in the background every TRACE_FLUSH_MS; when the database is down they wait in
# TRACE_SPOOL_DIR (at most TRACE_SPOOL_MAX_BYTES) and are replayed when it returns.
TRACE_FLUSH_SECONDS = float(env_int("TRACE_FLUSH_MS", 200, minimum=10)) / 1000
TRACE_SPOOL_DIR = Path(env_str("TRACE_SPOOL_DIR", str(VAR_DIR / "spool")))
TRACE_SPOOL_MAX_BYTES = env_int("TRACE_SPOOL_MAX_BYTES", 256 * 1024 * 1024, minimum=1024)

# Off by default: Prometheus usually scrapes inside the network. Set it to require "Authorization: Bearer <token>".
METRICS_TOKEN = env_str("METRICS_TOKEN")

# --- Experiments ------------------------------------------------------------------------------------------------------
# A user converts with one of these events on a recommended item within this many minutes of the exposure.
CONVERSION_WINDOW_MINUTES = env_int("CONVERSION_WINDOW_MINUTES", 30, minimum=1, maximum=7 * 24 * 60)
CONVERSION_EVENT_TYPES = env_list("CONVERSION_EVENT_TYPES", ["book"])
EXPERIMENT_ALPHA = env_float("EXPERIMENT_ALPHA", 0.05, minimum=1e-6, maximum=0.5)
# The smallest relative change in conversion rate worth detecting, and the power wanted to detect it.
EXPERIMENT_RELATIVE_MDE = env_float("EXPERIMENT_RELATIVE_MDE", 0.10, minimum=0.001, maximum=10.0)
EXPERIMENT_POWER = env_float("EXPERIMENT_POWER", 0.80, minimum=0.5, maximum=0.999)
# A look saves its running aggregates up to this many minutes ago; events stored later than that behind their own time
# are counted only by `experiment_summary --rebuild`.
EXPERIMENT_ROLLUP_SETTLE_MINUTES = env_int("EXPERIMENT_ROLLUP_SETTLE_MINUTES", 10, minimum=0, maximum=7 * 24 * 60)
# A summary read by the API or the web admin catches up on at most this many seconds of reading, then saves its
# progress and answers 503 with Retry-After, so a phase never looked at cannot hold a worker past its timeout.
EXPERIMENT_SUMMARY_BUDGET_SECONDS = env_float("EXPERIMENT_SUMMARY_BUDGET_SECONDS", 10.0, minimum=0.0, maximum=600.0)
# Consecutive failed automatic looks (`experiment_summary --apply`) at which RideEaseExperimentLooksFailing fires.
EXPERIMENT_LOOK_FAILURE_LIMIT = env_int("EXPERIMENT_LOOK_FAILURE_LIMIT", 4, minimum=1, maximum=1000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"no_py4j_traces": {"()": "common.logs.DropPy4JCallTraces"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["no_py4j_traces"]}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    # py4j (the trainer's bridge to Spark) logs each closed connection, and the trace of every failed call, at INFO.
    "loggers": {"pymongo": {"level": "WARNING"}, "py4j": {"level": "CRITICAL"}},
}
