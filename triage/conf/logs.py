"""Logging: everything to stderr through the root logger, as text or one JSON object a line.

Django's own default sends errors to a console handler only when DEBUG is on, so with DEBUG
off a traceback (a 500, a failed on_commit hand-off, a failed task) would be logged nowhere.
"""

from typing import Any


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """Django's LOGGING for TRIAGE_LOG_FORMAT ("text" or "json") and TRIAGE_LOG_LEVEL."""
    return {
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
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": log_format}},
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {
            # No handlers of their own: they propagate to the root's, once each.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            # Python warnings (Django captures them into logging): the same stream and format.
            "py.warnings": {"handlers": [], "propagate": True},
            "celery": {"level": "INFO"},
            "triage": {"level": level},
            "reviews": {"level": level},
        },
    }
