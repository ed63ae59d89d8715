"""The configured encoder checked at start-up, so a bad directory never surfaces at serving time.

Django runs system checks before runserver, migrate and every management command; Celery
workers run the same check when they start (triage.celery). Nothing here imports torch.
"""

from typing import Any

from django.core.checks import CheckMessage, Error, register

from triage.ml.encoder import check_configured_encoder
from triage.ml.encoder_spec import EncoderConfigurationError


@register("triage")
def configured_encoder_is_safe(**kwargs: Any) -> list[CheckMessage]:
    try:
        check_configured_encoder()
    except EncoderConfigurationError as exc:
        return [Error(str(exc), id="triage.E010")]
    return []
