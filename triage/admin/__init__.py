"""The Django admin of the core app: every registration, by concern."""

from triage.admin import alerts, models, privacy, rules

__all__ = ["alerts", "models", "privacy", "rules"]
