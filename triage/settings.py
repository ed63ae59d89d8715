"""Settings for Triage, read from the environment.

Embedded defaults (no variables set) give a one-command demo: SQLite and tasks
run in-process. Production sets DATABASE_URL (PostgreSQL), CELERY_BROKER_URL
(Redis), SECRET_KEY and ALLOWED_HOSTS.
"""

import os
from pathlib import Path

import dj_database_url
import django_stubs_ext
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

# Lets admin classes be written ModelAdmin[Model] for the type checker.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

# The local .env that `make install` writes (DEBUG and a generated SECRET_KEY), so
# `manage.py` works in any shell on a development checkout, not only under `make`.
# Variables already in the environment win; production sets them and has no .env.
# TRIAGE_ENV_FILE="" skips it (the test settings do, so a developer's .env cannot leak in).
ENV_FILE = os.environ.get("TRIAGE_ENV_FILE", str(BASE_DIR / ".env"))
if ENV_FILE:
    load_dotenv(ENV_FILE, override=False)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false)")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off: export SECRET_KEY, or run `make install` "
            "on a development checkout to write a local .env"
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "triage",
    "triage.actions",
    "reviews",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "triage.urls"
WSGI_APPLICATION = "triage.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=60
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "reviews:queue"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"triage": {"handlers": ["console"], "level": "INFO"}},
}

# --- Celery -----------------------------------------------------------------
# Without a broker, tasks run in-process (eagerly) so the demo needs no servers.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = TIME_ZONE

TRIAGE_RETRAIN_HOUR = env_int("TRIAGE_RETRAIN_HOUR", 2)
TRIAGE_RETRAIN_MINUTE = env_int("TRIAGE_RETRAIN_MINUTE", 0)
CELERY_BEAT_SCHEDULE = {
    "nightly-retrain": {
        "task": "triage.tasks.retrain_nightly",
        "schedule": crontab(hour=TRIAGE_RETRAIN_HOUR, minute=TRIAGE_RETRAIN_MINUTE),
    },
    "classify-stuck-items": {"task": "triage.tasks.classify_stuck", "schedule": 60.0},
    "sweep-webhook-deliveries": {
        "task": "triage.actions.tasks.sweep_deliveries",
        "schedule": 30.0,
    },
}

# --- Triage -----------------------------------------------------------------
# A local transformers directory; empty means the packaged all-MiniLM-L6-v2.
TRIAGE_ENCODER_PATH = os.environ.get("TRIAGE_ENCODER_PATH", "")
# How the encoder runs: "torch" (fp32) or "onnx-int8" (the fast path: exported
# to ONNX and quantised). New models are trained on the configured runtime's
# embeddings; each model version keeps serving with the encoder it was trained on.
TRIAGE_ENCODER_RUNTIME = os.environ.get("TRIAGE_ENCODER_RUNTIME", "torch")
# A dotted path that overrides the runtime's encoder class; tests use a small fake.
TRIAGE_ENCODER_CLASS = os.environ.get("TRIAGE_ENCODER_CLASS", "")
TRIAGE_MAX_LENGTH = env_int("TRIAGE_MAX_LENGTH", 256)
TRIAGE_BATCH_SIZE = env_int("TRIAGE_BATCH_SIZE", 64)
# Padded tokens per encoder batch (rows x longest row): long texts go in smaller batches.
TRIAGE_BATCH_TOKENS = env_int("TRIAGE_BATCH_TOKENS", 1024)
TRIAGE_ARTIFACT_DIR = Path(os.environ.get("TRIAGE_ARTIFACT_DIR", BASE_DIR / "var" / "models"))
# Longest text accepted by ingest, in characters (documented in the README).
TRIAGE_MAX_TEXT_CHARS = env_int("TRIAGE_MAX_TEXT_CHARS", 20_000)
TRIAGE_MAX_BATCH = 1000
TRIAGE_LEASE_SECONDS = env_int("TRIAGE_LEASE_SECONDS", 600)
# An item still unclassified this long after ingest is re-queued by the sweep.
TRIAGE_STUCK_AFTER_SECONDS = env_int("TRIAGE_STUCK_AFTER_SECONDS", 120)
# Re-queues (each waiting twice as long as the last) before an item goes to review unscored.
TRIAGE_STUCK_MAX_ATTEMPTS = env_int("TRIAGE_STUCK_MAX_ATTEMPTS", 5)
# Items per classify task (one API batch of up to TRIAGE_MAX_BATCH is one task); bigger
# chunks embed faster, smaller ones finish sooner.
TRIAGE_CLASSIFY_CHUNK = env_int("TRIAGE_CLASSIFY_CHUNK", 1000)
# Fewest active training examples per category before retrain will run.
TRIAGE_MIN_EXAMPLES_PER_CATEGORY = env_int("TRIAGE_MIN_EXAMPLES_PER_CATEGORY", 5)

# --- Webhooks (triage.actions) ----------------------------------------------
# Deliver to private, loopback or link-local addresses (and plain http to them). Off in
# production: a webhook URL must not reach internal services. On by default only with
# DEBUG (the demo's receiver runs on 127.0.0.1); the tests turn it on where they need it.
TRIAGE_WEBHOOK_ALLOW_PRIVATE = env_bool("TRIAGE_WEBHOOK_ALLOW_PRIVATE", DEBUG)
# Seconds one attempt may take (connect, send, first byte and the answer).
TRIAGE_WEBHOOK_TIMEOUT_SECONDS = env_int("TRIAGE_WEBHOOK_TIMEOUT_SECONDS", 10)
# Retries: base·2^(n-1) seconds capped at the cap, jittered, for the window (a day).
TRIAGE_WEBHOOK_RETRY_BASE_SECONDS = env_int("TRIAGE_WEBHOOK_RETRY_BASE_SECONDS", 30)
TRIAGE_WEBHOOK_RETRY_CAP_SECONDS = env_int("TRIAGE_WEBHOOK_RETRY_CAP_SECONDS", 7200)
TRIAGE_WEBHOOK_RETRY_WINDOW_SECONDS = env_int("TRIAGE_WEBHOOK_RETRY_WINDOW_SECONDS", 86_400)
# The sweep re-queues a delivery only this long after it fell due, so deliveries that
# are merely waiting behind a long queue are not queued twice.
TRIAGE_WEBHOOK_SWEEP_GRACE_SECONDS = env_int("TRIAGE_WEBHOOK_SWEEP_GRACE_SECONDS", 120)
