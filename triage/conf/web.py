"""The web side: HTTPS, logins, the API's rate limit and cache, /metrics, logs."""

from __future__ import annotations

from triage.conf.fields import (
    Setting,
    as_bool,
    as_int,
    as_log_format,
    as_log_level,
    as_networks,
    as_rate_limit,
    as_stripped,
    as_text,
)

ENV_FILE = Setting(
    "TRIAGE_ENV_FILE",
    lambda c: str(c.base_dir / ".env"),
    as_text,
    "path",
    "The .env file loaded at start-up (variables already set win); empty loads none.",
    shown="`.env` in the checkout",
)
HTTPS = Setting(
    "TRIAGE_HTTPS",
    lambda c: "off" if c.debug else "on",
    as_bool,
    "on/off",
    "The site is served over HTTPS (directly or behind a TLS proxy): turns on secure cookies, "
    "the HTTPS redirect and HSTS (each can be set on its own).",
    shown="on unless `DEBUG`",
)
LOGIN_FAILURE_LIMIT = Setting(
    "TRIAGE_LOGIN_FAILURE_LIMIT",
    "5",
    as_int,
    "failures",
    "Failed logins for one username from one address before that pair is locked out (429).",
)
LOGIN_COOLOFF_MINUTES = Setting(
    "TRIAGE_LOGIN_COOLOFF_MINUTES",
    "15",
    as_int,
    "minutes",
    "How long such a lock lasts; a successful login resets the count.",
)
API_RATE_LIMIT = Setting(
    "TRIAGE_API_RATE_LIMIT",
    "600/min",
    as_rate_limit,
    "requests/period",
    "Requests per API token, `<count>/<period>` (period `s`, `min`, `h` or `d`, optionally "
    "`100/10s`), or `off`; beyond it a 429 with Retry-After.",
)
API_AUTH_FAILURE_LIMIT = Setting(
    "TRIAGE_API_AUTH_FAILURE_LIMIT",
    "60/min",
    as_rate_limit,
    "requests/period",
    "API requests with a missing or invalid token allowed per client address, "
    "`<count>/<period>` or `off`; beyond it every API request from that address gets a 429 "
    "with Retry-After until the period ends.",
)
CACHE_URL = Setting(
    "TRIAGE_CACHE_URL",
    "",
    as_stripped,
    "URL",
    "A Redis URL for Django's cache, so that every web process shares the rate-limit counts.",
    shown="unset (per-process memory)",
)
METRICS_ALLOW = Setting(
    "TRIAGE_METRICS_ALLOW",
    "",
    as_networks,
    "addresses",
    "Addresses or CIDR networks (comma-separated) that may scrape `/metrics` without a token.",
    shown="unset (a token only)",
)
LOG_FORMAT = Setting(
    "TRIAGE_LOG_FORMAT",
    "text",
    as_log_format,
    "`text`/`json`",
    "`json` writes one JSON object per line, for log collectors.",
)
LOG_LEVEL = Setting(
    "TRIAGE_LOG_LEVEL",
    "INFO",
    as_log_level,
    "level",
    "Level of the `triage` and `reviews` loggers (DEBUG, INFO, WARNING, ERROR, CRITICAL).",
)
