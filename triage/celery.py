import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage.settings")

app = Celery("triage")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each concern keeps its own tasks module; autodiscovery looks in installed apps only.
app.autodiscover_tasks(
    ["triage.classify", "triage.training", "triage.privacy", "triage.actions", "reviews"]
)


@worker_init.connect  # type: ignore[untyped-decorator]
def refuse_a_bad_encoder(**kwargs: object) -> None:
    """A worker whose encoder directory is missing or unsafe stops at start, in one line."""
    from django.core.exceptions import ImproperlyConfigured

    from triage.ml.encoder import check_configured_encoder
    from triage.ml.encoder_spec import EncoderConfigurationError

    try:
        check_configured_encoder()
    except EncoderConfigurationError as exc:
        raise ImproperlyConfigured(str(exc)) from None
