"""Settings for Triage, read from the environment.

Embedded defaults (no variables set) give a one-command demo: SQLite and tasks
run in-process. Production sets DATABASE_URL (PostgreSQL), CELERY_BROKER_URL
(Redis), SECRET_KEY and ALLOWED_HOSTS.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from triage import conf
from triage.conf import fields, limits, loop, model, privacy, reviewers, web, webhooks, workers
from triage.conf.logs import logging_config
from triage.web.csp import CSP_POLICY

# Lets admin classes be written ModelAdmin[Model] for the type checker.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

# The local .env that `make install` writes (DEBUG and a generated SECRET_KEY), so
# `manage.py` works in any shell on a development checkout, not only under `make`.
# Variables already in the environment win; production sets them and has no .env.
# TRIAGE_ENV_FILE="" skips it (the test settings do, so a developer's .env cannot leak in).
ENV_FILE = conf.env_file(os.environ, BASE_DIR)
if ENV_FILE:
    load_dotenv(ENV_FILE, override=False)


# Django's own variables, with the registry's spellings and messages (1/0, true/false, ...).
def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    try:
        return fields.as_bool.parse(name, value) if value else default
    except fields.SettingError as error:
        raise ImproperlyConfigured(str(error)) from None


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return fields.as_int.parse(name, value) if value else default
    except fields.SettingError as error:
        raise ImproperlyConfigured(str(error)) from None


DEBUG = env_bool("DEBUG", False)
DEVELOPMENT_SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not DEBUG and SECRET_KEY in {"", DEVELOPMENT_SECRET_KEY}:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set when DEBUG is off (and not to the development key): export "
        "SECRET_KEY, or run `make install` on a development checkout to write a local .env"
    )
SECRET_KEY = SECRET_KEY or DEVELOPMENT_SECRET_KEY

# Every TRIAGE_* variable is read, parsed and checked by the registry (triage/conf/),
# which holds each one's default, unit and meaning (the README's settings reference is
# printed from it); a bad value stops start-up here, with a message naming the variable.
try:
    _triage = conf.read(os.environ, fields.Context(base_dir=BASE_DIR, debug=DEBUG))
except fields.SettingError as error:
    raise ImproperlyConfigured(str(error)) from None

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
    "axes",
    "csp",
    # Only for its templates and static files: /api/docs serves Swagger UI from here, not
    # from a CDN (which the Content-Security-Policy blocks, and offline has not).
    "ninja",
    "triage",
    "triage.actions",
    "reviews",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Before anything reads the body, form or session: an oversized API body is a JSON 413,
    # a NUL in a path, query, form or cookie a 400, not a 500.
    "triage.web.middleware.ApiBodyLimit",
    "triage.web.middleware.RejectUnstorableInput",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A view that lost the database answers 503 + Retry-After (handler500 covers middleware).
    "triage.web.middleware.DatabaseUnavailableIs503",
    # Last, as django-axes asks: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
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
                "triage.cockpit.context_processors.cockpit",
            ],
            # `|masked` on every page without a {% load %}: the review card applies it in place.
            "builtins": ["triage.templatetags.privacy"],
        },
    }
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=60,
        # A persistent connection is checked before each request reuses it, so one the
        # database dropped (a restart, a failover) is replaced instead of giving a 500.
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out login before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
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

# --- Security -----------------------------------------------------------------
# TRIAGE_HTTPS (on unless DEBUG) turns on secure cookies, the HTTPS redirect and HSTS,
# each of which can also be set on its own.
HTTPS = _triage[web.HTTPS]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", HTTPS)
# Pages take the CSRF token from the template (htmx sends it as a header), never the cookie.
CSRF_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
# Both reach beyond this site (every subdomain; browsers' preload lists), so opt-in.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Behind a TLS-terminating proxy, the header it sets (e.g. X-Forwarded-Proto) tells Django
# the request was HTTPS. Set it only when the proxy always sets or strips that header.
_proxy_ssl_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "").strip()
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): scripts and styles only from this site (triage.web.csp).
# Enforced, except with DEBUG on: Django's technical error pages use inline styles and
# scripts, so a developer gets the same policy as report-only (violations in the console).
CONTENT_SECURITY_POLICY = None if DEBUG else CSP_POLICY
CONTENT_SECURITY_POLICY_REPORT_ONLY = CSP_POLICY if DEBUG else None

# Login throttling (django-axes): after TRIAGE_LOGIN_FAILURE_LIMIT failures for one
# username from one address, that pair is refused (429) for TRIAGE_LOGIN_COOLOFF_MINUTES.
AXES_FAILURE_LIMIT = _triage[web.LOGIN_FAILURE_LIMIT]
AXES_COOLOFF_TIME = timedelta(minutes=_triage[web.LOGIN_COOLOFF_MINUTES])
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# --- API rate limit and the cache it counts in ----------------------------------
TRIAGE_API_RATE_LIMIT = _triage[web.API_RATE_LIMIT]
TRIAGE_API_AUTH_FAILURE_LIMIT = _triage[web.API_AUTH_FAILURE_LIMIT]
# The rate limit's counts live in the cache. Redis (TRIAGE_CACHE_URL, e.g.
# redis://redis.internal:6379/1) shares them between every web process; without it the
# local-memory cache counts per process, so N processes allow about N times the limit.
TRIAGE_CACHE_URL = _triage[web.CACHE_URL]
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": TRIAGE_CACHE_URL,
            "KEY_PREFIX": "triage",
        }
        if TRIAGE_CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Who may scrape /metrics without a token. Behind a reverse proxy every request comes
# from the proxy's address, so list the scrapers' network only if they reach the app directly.
TRIAGE_METRICS_ALLOW = _triage[web.METRICS_ALLOW]

# --- Logging (triage.conf.logs): everything to stderr, text or JSON lines -------------
TRIAGE_LOG_FORMAT = _triage[web.LOG_FORMAT]
TRIAGE_LOG_LEVEL = _triage[web.LOG_LEVEL]
LOGGING = logging_config(log_format=TRIAGE_LOG_FORMAT, level=TRIAGE_LOG_LEVEL)

# --- Celery -----------------------------------------------------------------
# Without a broker, tasks run in-process (eagerly) so the demo needs no servers.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
# A task is acknowledged when it finishes, not when it starts: a worker that dies mid-task
# leaves it on the broker. A pool child killed outright (the OOM killer) gets its task
# requeued at once; when the whole worker dies, Redis hands the task out again once the
# visibility timeout has passed (checked every TRIAGE_BROKER_RESTORE_SECONDS).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Must exceed the longest acknowledged-late task, or a slow task is handed to a second
# worker while the first still runs: a classify chunk of TRIAGE_CLASSIFY_CHUNK items
# (seconds) or an endpoint's webhook task (triage.actions.delivery.SEND_BUDGET_SECONDS of
# sending plus one TRIAGE_WEBHOOK_TIMEOUT_SECONDS). Retraining is
# acknowledged on receipt (see triage.classify.tasks), so its minutes do not count. Redis's
# default, an hour, is how long a task of a killed worker used to wait.
TRIAGE_VISIBILITY_TIMEOUT_SECONDS = _triage[workers.VISIBILITY_TIMEOUT_SECONDS]
TRIAGE_BROKER_RESTORE_SECONDS = _triage[workers.BROKER_RESTORE_SECONDS]
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": TRIAGE_VISIBILITY_TIMEOUT_SECONDS,
    "unacked_restore_interval": TRIAGE_BROKER_RESTORE_SECONDS,
    # kombu scans only every 10th interval by default; every interval keeps the bound above.
    "unacked_restore_throttle": 1,
}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = TIME_ZONE
# Keep the logging configured above in workers (stderr, JSON on request) rather than
# Celery's own; task failures reach it through the "celery" logger.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# The stuck-item sweep runs this often; with TRIAGE_STUCK_AFTER_SECONDS it bounds how long
# an item whose hand-off was lost (a broker outage) or whose worker died stays unclassified.
TRIAGE_STUCK_SWEEP_SECONDS = _triage[workers.STUCK_SWEEP_SECONDS]
TRIAGE_RETRAIN_HOUR = _triage[workers.RETRAIN_HOUR]
TRIAGE_RETRAIN_MINUTE = _triage[workers.RETRAIN_MINUTE]
CELERY_BEAT_SCHEDULE = {
    "nightly-retrain": {
        "task": "triage.training.tasks.retrain_nightly",
        "schedule": crontab(hour=TRIAGE_RETRAIN_HOUR, minute=TRIAGE_RETRAIN_MINUTE),
    },
    "classify-stuck-items": {
        "task": "triage.classify.tasks.classify_stuck",
        "schedule": float(TRIAGE_STUCK_SWEEP_SECONDS),
    },
    "sweep-webhook-deliveries": {
        "task": "triage.actions.tasks.sweep_deliveries",
        "schedule": 30.0,
    },
}

# --- Triage -----------------------------------------------------------------
# What each of these means, its unit and default: triage/conf/ (README, "Settings reference").
# The encoder: new models are trained on the configured runtime's embeddings; each model
# version keeps serving with the encoder it was trained on.
TRIAGE_ENCODER_PATH = _triage[model.ENCODER_PATH]
TRIAGE_ENCODER_RUNTIME = _triage[model.ENCODER_RUNTIME]
TRIAGE_ENCODER_CLASS = _triage[model.ENCODER_CLASS]
TRIAGE_ENCODER_FAMILY = _triage[model.ENCODER_FAMILY]
TRIAGE_ENCODER_DEVICE = _triage[model.ENCODER_DEVICE]
TRIAGE_ENCODER_THREADS = _triage[model.ENCODER_THREADS]
TRIAGE_HEAD = _triage[model.HEAD]
TRIAGE_MAX_LENGTH = _triage[model.MAX_LENGTH]
TRIAGE_BATCH_SIZE = _triage[model.BATCH_SIZE]
TRIAGE_BATCH_TOKENS = _triage[model.BATCH_TOKENS]
TRIAGE_ARTIFACT_DIR = _triage[model.ARTIFACT_DIR]
# Ingest's limits (README, "Ingest API").
TRIAGE_MAX_TEXT_CHARS = _triage[limits.MAX_TEXT_CHARS]
TRIAGE_MAX_METADATA_BYTES = _triage[limits.MAX_METADATA_BYTES]
TRIAGE_MAX_METADATA_DEPTH = _triage[limits.MAX_METADATA_DEPTH]
TRIAGE_MAX_BATCH = 1000
TRIAGE_INGEST_COPY_MIN = _triage[limits.INGEST_COPY_MIN]  # triage.api.ingest_copy
# Django's own limit on a request body; the API answers a bigger one with a JSON 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = _triage[limits.MAX_BODY_BYTES]
# The review card (README, "Working the queue").
TRIAGE_LEASE_SECONDS = _triage[loop.LEASE_SECONDS]
TRIAGE_SKIP_COOLDOWN_SECONDS = _triage[loop.SKIP_COOLDOWN_SECONDS]
TRIAGE_UNDO_SECONDS = _triage[loop.UNDO_SECONDS]
TRIAGE_QUEUE_POLL_SECONDS = _triage[loop.QUEUE_POLL_SECONDS]
TRIAGE_AUDIT_SHARE = _triage[loop.AUDIT_SHARE]  # reviews.claims
TRIAGE_AUDIT_KEY = _triage[loop.AUDIT_KEY]  # routing.draws
TRIAGE_LIVE_WINDOW_DAYS = _triage[loop.LIVE_WINDOW_DAYS]
# Recovery (README, "When things fail"): the stuck-item sweep, and an item whose
# classification keeps killing its worker (triage.classify.redelivery).
TRIAGE_STUCK_AFTER_SECONDS = _triage[loop.STUCK_AFTER_SECONDS]
TRIAGE_STUCK_MAX_ATTEMPTS = _triage[loop.STUCK_MAX_ATTEMPTS]
TRIAGE_CLASSIFY_MAX_CRASHES = _triage[loop.CLASSIFY_MAX_CRASHES]
# One API batch of up to TRIAGE_MAX_BATCH items is one task.
TRIAGE_CLASSIFY_CHUNK = _triage[loop.CLASSIFY_CHUNK]
TRIAGE_MIN_EXAMPLES_PER_CATEGORY = _triage[loop.MIN_EXAMPLES_PER_CATEGORY]
TRIAGE_RETRAIN_AFTER_LABELS = _triage[loop.RETRAIN_AFTER_LABELS]  # triage.training.cadence
TRIAGE_QUEUE_OLDEST_SHARE = _triage[loop.QUEUE_OLDEST_SHARE]  # reviews.claims

# --- Similar items, bulk decisions, trusted reviewers (reviews.similar, .bulk, .trust) --
TRIAGE_SIMILAR_REFRESH_SECONDS = _triage[reviewers.SIMILAR_REFRESH_SECONDS]
TRIAGE_SIMILAR_REBUILD_SECONDS = _triage[reviewers.SIMILAR_REBUILD_SECONDS]
TRIAGE_SIMILAR_INDEX_DIR = _triage[reviewers.SIMILAR_INDEX_DIR]
# One similar-items file per kind and embedding space, for every web process of a host.
CELERY_BEAT_SCHEDULE["build-similar-indexes"] = {
    "task": "reviews.tasks.build_similar_indexes",
    "schedule": float(TRIAGE_SIMILAR_REBUILD_SECONDS),
}
TRIAGE_SIMILAR_EXACT_MAX = _triage[reviewers.SIMILAR_EXACT_MAX]
TRIAGE_SIMILAR_NPROBE = _triage[reviewers.SIMILAR_NPROBE]
TRIAGE_BULK_LIMIT = _triage[reviewers.BULK_LIMIT]
TRIAGE_BULK_SIMILARITY_FLOOR = _triage[reviewers.BULK_SIMILARITY_FLOOR]
# Every decision that overturns a confident prediction gets a second review too (RoutingPolicy).
TRIAGE_SECOND_REVIEW_SHARE = _triage[reviewers.SECOND_REVIEW_SHARE]
TRIAGE_SECOND_REVIEW_BULK_SHARE = _triage[reviewers.SECOND_REVIEW_BULK_SHARE]
# Quarantine (reviews.trust.quarantine): agreement with second reviews whose upper bound
# is below the floor, or a confident-overturn rate whose lower bound is above RATIO times
# the peers' upper bound, at level ALPHA over the last WINDOW_DAYS.
TRIAGE_QUARANTINE_AGREEMENT_FLOOR = _triage[reviewers.QUARANTINE_AGREEMENT_FLOOR]
TRIAGE_QUARANTINE_OVERTURN_RATIO = _triage[reviewers.QUARANTINE_OVERTURN_RATIO]
TRIAGE_QUARANTINE_ALPHA = _triage[reviewers.QUARANTINE_ALPHA]
TRIAGE_QUALITY_WINDOW_DAYS = _triage[reviewers.QUALITY_WINDOW_DAYS]

# --- Privacy (triage.privacy; README "Personal data") -----------------------
TRIAGE_MASK_FOR_ANALYSTS = _triage[privacy.MASK_FOR_ANALYSTS]
TRIAGE_MASK_TRAINING = _triage[privacy.MASK_TRAINING]
TRIAGE_PHONE_REGIONS = _triage[privacy.PHONE_REGIONS]
# Retention (manage.py prune, nightly when set): the registry refuses one shorter than
# TRIAGE_MIN_RETENTION_DAYS, which keeps the cockpit's trends and live precision whole.
TRIAGE_MIN_RETENTION_DAYS = fields.min_retention_days(TRIAGE_LIVE_WINDOW_DAYS)
TRIAGE_RETENTION_DAYS = _triage[privacy.RETENTION_DAYS]
if TRIAGE_RETENTION_DAYS:
    # Daily, an hour after the nightly retrain.
    CELERY_BEAT_SCHEDULE["prune-retention"] = {
        "task": "triage.privacy.tasks.prune_retention",
        "schedule": crontab(hour=(TRIAGE_RETRAIN_HOUR + 1) % 24, minute=TRIAGE_RETRAIN_MINUTE),
    }

# --- Webhooks (triage.actions) ----------------------------------------------
# Private, loopback or link-local addresses are off in production: a webhook URL must not
# reach internal services. On by default only with DEBUG (the demo's receiver runs on
# 127.0.0.1); the tests turn it on where they need it.
TRIAGE_WEBHOOK_ALLOW_PRIVATE = _triage[webhooks.WEBHOOK_ALLOW_PRIVATE]
TRIAGE_WEBHOOK_TIMEOUT_SECONDS = _triage[webhooks.WEBHOOK_TIMEOUT_SECONDS]
# Retries: base·2^(n-1) seconds capped at the cap, jittered, for the window (a day).
TRIAGE_WEBHOOK_RETRY_BASE_SECONDS = _triage[webhooks.WEBHOOK_RETRY_BASE_SECONDS]
TRIAGE_WEBHOOK_RETRY_CAP_SECONDS = _triage[webhooks.WEBHOOK_RETRY_CAP_SECONDS]
TRIAGE_WEBHOOK_RETRY_WINDOW_SECONDS = _triage[webhooks.WEBHOOK_RETRY_WINDOW_SECONDS]
# The sweep re-queues a delivery only this long after it fell due, so deliveries that
# are merely waiting behind a long queue are not queued twice.
TRIAGE_WEBHOOK_SWEEP_GRACE_SECONDS = _triage[webhooks.WEBHOOK_SWEEP_GRACE_SECONDS]
