from importlib import import_module

from django.apps import AppConfig

# Models that live with their concern rather than in triage.models, registered with the
# core app all the same (their tables and migrations are the triage app's).
CONCERN_MODEL_MODULES = (
    "triage.training.models",
    "triage.routing.models",
    "triage.monitoring.models",
    "triage.privacy.models",
)


class TriageConfig(AppConfig):
    name = "triage"
    verbose_name = "Triage"

    def import_models(self) -> None:
        super().import_models()
        for name in CONCERN_MODEL_MODULES:
            import_module(name)

    def ready(self) -> None:
        from triage.api import checks  # noqa: F401  (registers the system checks)
        from triage.ml import checks as ml_checks  # noqa: F401  (the encoder's directory)
