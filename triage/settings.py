"""Settings for Triage, read from the environment.

Embedded defaults (no variables set) give a one-command demo: SQLite and tasks
run in-process. Production sets DATABASE_URL (PostgreSQL), CELERY_BROKER_URL
(Redis), SECRET_KEY and ALLOWED_HOSTS.
"""

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
import phonenumbers
from celery.schedules import crontab
from csp.constants import NONE, SELF
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
DEVELOPMENT_SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not DEBUG and SECRET_KEY in {"", DEVELOPMENT_SECRET_KEY}:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set when DEBUG is off (and not to the development key): export "
        "SECRET_KEY, or run `make install` on a development checkout to write a local .env"
    )
SECRET_KEY = SECRET_KEY or DEVELOPMENT_SECRET_KEY

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
# TRIAGE_HTTPS: the site is served over HTTPS (directly or behind a TLS proxy). On by
# default when DEBUG is off; it turns on secure cookies, the HTTPS redirect and HSTS,
# each of which can also be set on its own.
HTTPS = env_bool("TRIAGE_HTTPS", not DEBUG)
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

# Content-Security-Policy (django-csp): scripts and styles only from this site. The pages
# have no inline scripts; htmx's own inline indicator styles are turned off in base.html.
CSP_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}
# Enforced, except with DEBUG on: Django's technical error pages use inline styles and
# scripts, so a developer gets the same policy as report-only (violations in the console).
CONTENT_SECURITY_POLICY = None if DEBUG else CSP_POLICY
CONTENT_SECURITY_POLICY_REPORT_ONLY = CSP_POLICY if DEBUG else None

# Login throttling (django-axes): after TRIAGE_LOGIN_FAILURE_LIMIT failures for one
# username from one address, that pair is refused (429) for TRIAGE_LOGIN_COOLOFF_MINUTES.
AXES_FAILURE_LIMIT = env_int("TRIAGE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("TRIAGE_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# --- API rate limit and the cache it counts in ----------------------------------
# Requests per API token: "<count>/<period>", period s, min, h or d, optionally with a
# multiple ("100/10s"); "off" turns the limit off. Beyond it: 429 with Retry-After.
_api_rate_limit = os.environ.get("TRIAGE_API_RATE_LIMIT", "").strip().lower() or "600/min"
if _api_rate_limit != "off" and not re.fullmatch(
    r"[1-9]\d*/\d*(s|sec|m|min|h|hour|d|day)", _api_rate_limit
):
    raise ImproperlyConfigured(
        f"TRIAGE_API_RATE_LIMIT={_api_rate_limit!r}: use <count>/<period>, e.g. "
        "600/min, 100/10s or 20000/day (periods s, min, h, d), or off"
    )
TRIAGE_API_RATE_LIMIT = None if _api_rate_limit == "off" else _api_rate_limit
# The rate limit's counts live in the cache. Redis (TRIAGE_CACHE_URL, e.g.
# redis://redis.internal:6379/1) shares them between every web process; without it the
# local-memory cache counts per process, so N processes allow about N times the limit.
TRIAGE_CACHE_URL = os.environ.get("TRIAGE_CACHE_URL", "").strip()
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

# Who may scrape the Prometheus endpoint (/metrics) without a token: comma-separated
# addresses or CIDR networks of the scrapers, e.g. "10.0.5.0/24,127.0.0.1". Empty (the
# default): only a token with the `metrics` scope. Behind a reverse proxy every request
# comes from the proxy's address, so list the scraper's network only if it reaches the
# app directly.
TRIAGE_METRICS_ALLOW = []
for _network in os.environ.get("TRIAGE_METRICS_ALLOW", "").split(","):
    if _network.strip():
        try:
            TRIAGE_METRICS_ALLOW.append(ipaddress.ip_network(_network.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"TRIAGE_METRICS_ALLOW: {_network.strip()!r} is not an address or a CIDR "
                "network (e.g. 10.0.5.0/24)"
            ) from None

# --- Logging ------------------------------------------------------------------
# Everything goes to stderr through the root logger: Django's own default sends errors
# to a console handler only when DEBUG is on, so with DEBUG off a traceback (a 500, a
# failed on_commit hand-off, a failed task) would be logged nowhere.
# TRIAGE_LOG_FORMAT=json writes one JSON object per line, for log collectors.
TRIAGE_LOG_FORMAT = os.environ.get("TRIAGE_LOG_FORMAT", "text").strip().lower() or "text"
if TRIAGE_LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"TRIAGE_LOG_FORMAT={TRIAGE_LOG_FORMAT!r}: use 'text' or 'json'")
TRIAGE_LOG_LEVEL = os.environ.get("TRIAGE_LOG_LEVEL", "INFO").strip().upper() or "INFO"
if TRIAGE_LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"TRIAGE_LOG_LEVEL={TRIAGE_LOG_LEVEL!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    # StreamHandler writes to stderr.
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": TRIAGE_LOG_FORMAT}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {
        # No handlers of their own: they propagate to the root's, once each.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        # Python warnings (Django captures them into logging): the same stream and format.
        "py.warnings": {"handlers": [], "propagate": True},
        "celery": {"level": "INFO"},
        "triage": {"level": TRIAGE_LOG_LEVEL},
        "reviews": {"level": TRIAGE_LOG_LEVEL},
    },
}

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
# (seconds) or one webhook attempt (TRIAGE_WEBHOOK_TIMEOUT_SECONDS). Retraining is
# acknowledged on receipt (see triage.classify.tasks), so its minutes do not count. Redis's
# default, an hour, is how long a task of a killed worker used to wait.
TRIAGE_VISIBILITY_TIMEOUT_SECONDS = env_int("TRIAGE_VISIBILITY_TIMEOUT_SECONDS", 300)
TRIAGE_BROKER_RESTORE_SECONDS = env_int("TRIAGE_BROKER_RESTORE_SECONDS", 10)
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
TRIAGE_STUCK_SWEEP_SECONDS = env_int("TRIAGE_STUCK_SWEEP_SECONDS", 30)
TRIAGE_RETRAIN_HOUR = env_int("TRIAGE_RETRAIN_HOUR", 2)
TRIAGE_RETRAIN_MINUTE = env_int("TRIAGE_RETRAIN_MINUTE", 0)
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
# Longest text accepted by ingest, in characters (documented in the README). The model
# reads only the first TRIAGE_MAX_LENGTH tokens; analysts see the whole text.
TRIAGE_MAX_TEXT_CHARS = env_int("TRIAGE_MAX_TEXT_CHARS", 200_000)
# Largest metadata object accepted by ingest: bytes of its compact UTF-8 JSON (README).
TRIAGE_MAX_METADATA_BYTES = env_int("TRIAGE_MAX_METADATA_BYTES", 16_384)
TRIAGE_MAX_BATCH = 1000
# Largest request body (Django's DATA_UPLOAD_MAX_MEMORY_SIZE, default 2.5 MB); the API
# answers a bigger one with a JSON 413 naming the limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("TRIAGE_MAX_BODY_BYTES", 2_621_440)
TRIAGE_LEASE_SECONDS = env_int("TRIAGE_LEASE_SECONDS", 600)
# The review card (README, "Working the queue"): a skipped task stays away from the analyst
# who skipped it for this long; a decision can be changed by its analyst for this long;
# the empty queue checks for new work this often.
TRIAGE_SKIP_COOLDOWN_SECONDS = env_int("TRIAGE_SKIP_COOLDOWN_SECONDS", 1800)
TRIAGE_UNDO_SECONDS = env_int("TRIAGE_UNDO_SECONDS", 600)
TRIAGE_QUEUE_POLL_SECONDS = env_int("TRIAGE_QUEUE_POLL_SECONDS", 10)
# Share of claims that take an audit task first while audits wait (reviews.services).
TRIAGE_AUDIT_SHARE = float(os.environ.get("TRIAGE_AUDIT_SHARE", "0.25"))
# Rolling window of live precision, next to "since the last model or threshold change".
TRIAGE_LIVE_WINDOW_DAYS = env_int("TRIAGE_LIVE_WINDOW_DAYS", 28)
# An item still unclassified this long after ingest is re-queued by the sweep.
TRIAGE_STUCK_AFTER_SECONDS = env_int("TRIAGE_STUCK_AFTER_SECONDS", 120)
# Re-queues (each waiting twice as long as the last) before an item goes to review unscored.
TRIAGE_STUCK_MAX_ATTEMPTS = env_int("TRIAGE_STUCK_MAX_ATTEMPTS", 5)
# Starts of its classification that never finished (its worker died) before an item goes
# to review unscored: in its batch, in a small group, then alone (triage.classify.redelivery).
TRIAGE_CLASSIFY_MAX_CRASHES = env_int("TRIAGE_CLASSIFY_MAX_CRASHES", 3)
if TRIAGE_CLASSIFY_MAX_CRASHES < 3:
    raise ImproperlyConfigured(
        f"TRIAGE_CLASSIFY_MAX_CRASHES={TRIAGE_CLASSIFY_MAX_CRASHES} is under 3: an item must "
        "be able to die in its batch, in a group and alone before it is given up on, or the "
        "innocent items beside it would be sent to review with it"
    )
# Items per classify task (one API batch of up to TRIAGE_MAX_BATCH is one task); bigger
# chunks embed faster, smaller ones finish sooner.
TRIAGE_CLASSIFY_CHUNK = env_int("TRIAGE_CLASSIFY_CHUNK", 1000)
# Fewest active training examples per category before retrain will run.
TRIAGE_MIN_EXAMPLES_PER_CATEGORY = env_int("TRIAGE_MIN_EXAMPLES_PER_CATEGORY", 5)

# --- Similar items, bulk decisions, trusted reviewers (reviews.similar, .bulk, .trust) --
# Per-process vector caches of resolved items (and open tasks) pick up new rows this often,
# and are rebuilt whole this often (to drop items that were forgotten or reopened).
TRIAGE_SIMILAR_REFRESH_SECONDS = env_int("TRIAGE_SIMILAR_REFRESH_SECONDS", 30)
TRIAGE_SIMILAR_REBUILD_SECONDS = env_int("TRIAGE_SIMILAR_REBUILD_SECONDS", 3600)
# Up to this many rows the search is exact brute force; beyond it, a FAISS inverted file
# scanning the TRIAGE_SIMILAR_NPROBE nearest of its ~sqrt(n) lists (reviews.similar).
TRIAGE_SIMILAR_EXACT_MAX = env_int("TRIAGE_SIMILAR_EXACT_MAX", 20_000)
TRIAGE_SIMILAR_NPROBE = env_int("TRIAGE_SIMILAR_NPROBE", 32)
# Most open tasks one bulk decision may cover.
TRIAGE_BULK_LIMIT = env_int("TRIAGE_BULK_LIMIT", 50)
# Share of ordinary decisions, and of bulk decisions, that get a blind second review
# (every decision that overturns a confident prediction gets one too: RoutingPolicy).
TRIAGE_SECOND_REVIEW_SHARE = float(os.environ.get("TRIAGE_SECOND_REVIEW_SHARE", "0.05"))
TRIAGE_SECOND_REVIEW_BULK_SHARE = float(os.environ.get("TRIAGE_SECOND_REVIEW_BULK_SHARE", "0.2"))
# Quarantine (reviews.trust.quarantine): agreement with second reviews whose upper bound
# is below the floor, or a confident-overturn rate whose lower bound is above RATIO times
# the peers' upper bound, at level ALPHA over the last WINDOW_DAYS.
TRIAGE_QUARANTINE_AGREEMENT_FLOOR = float(
    os.environ.get("TRIAGE_QUARANTINE_AGREEMENT_FLOOR", "0.8")
)
TRIAGE_QUARANTINE_OVERTURN_RATIO = float(os.environ.get("TRIAGE_QUARANTINE_OVERTURN_RATIO", "3"))
TRIAGE_QUARANTINE_ALPHA = float(os.environ.get("TRIAGE_QUARANTINE_ALPHA", "0.01"))
TRIAGE_QUALITY_WINDOW_DAYS = env_int("TRIAGE_QUALITY_WINDOW_DAYS", 30)

# --- Privacy (triage.privacy; README "Personal data") -----------------------
# Mask e-mail addresses, phone numbers, card numbers, IBANs and the admins' patterns in
# what analysts see on the review card.
TRIAGE_MASK_FOR_ANALYSTS = env_bool("TRIAGE_MASK_FOR_ANALYSTS", True)
# Mask them in the text training examples store (when the example is written).
TRIAGE_MASK_TRAINING = env_bool("TRIAGE_MASK_TRAINING", False)
# Regions whose nationally written phone numbers are recognised (ISO 3166 codes); a
# number written with its +country code is found whatever the regions.
TRIAGE_PHONE_REGIONS = [
    r.strip().upper() for r in os.environ.get("TRIAGE_PHONE_REGIONS", "US").split(",") if r.strip()
]
_unknown_regions = sorted(set(TRIAGE_PHONE_REGIONS) - phonenumbers.SUPPORTED_REGIONS)
if _unknown_regions:
    raise ImproperlyConfigured(
        f"TRIAGE_PHONE_REGIONS: {', '.join(_unknown_regions)} is not a region libphonenumber "
        "knows (use ISO 3166 codes such as US, GB, HT)"
    )
# Retention: when set, a nightly beat task prunes the texts, metadata, embeddings and
# predictions of decided items received more than this many days ago (manage.py prune).
# The shortest allowed keeps the cockpit's 30-day trends and the live-precision window whole.
TRIAGE_MIN_RETENTION_DAYS = max(30, TRIAGE_LIVE_WINDOW_DAYS)
TRIAGE_RETENTION_DAYS = env_int("TRIAGE_RETENTION_DAYS", 0)
if TRIAGE_RETENTION_DAYS and TRIAGE_RETENTION_DAYS < TRIAGE_MIN_RETENTION_DAYS:
    raise ImproperlyConfigured(
        f"TRIAGE_RETENTION_DAYS={TRIAGE_RETENTION_DAYS}: the shortest retention is "
        f"{TRIAGE_MIN_RETENTION_DAYS} days (0 or unset keeps texts until forgotten)"
    )
if TRIAGE_RETENTION_DAYS:
    # Daily, an hour after the nightly retrain.
    CELERY_BEAT_SCHEDULE["prune-retention"] = {
        "task": "triage.privacy.tasks.prune_retention",
        "schedule": crontab(hour=(TRIAGE_RETRAIN_HOUR + 1) % 24, minute=TRIAGE_RETRAIN_MINUTE),
    }

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
