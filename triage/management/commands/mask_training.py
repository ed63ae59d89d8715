from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from triage.management.commands.forget import command_actor
from triage.models import AuditLog
from triage.privacy.masking import mask_stored_training_examples


class Command(BaseCommand):
    help = (
        "Mask personal data in the text of training examples stored before "
        "TRIAGE_MASK_TRAINING was turned on (new examples are masked as they are written). "
        "Items keep their text; the model's cached embeddings are unchanged."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.TRIAGE_MASK_TRAINING:
            raise CommandError(
                "TRIAGE_MASK_TRAINING is off, so new examples would still store the original "
                "text: set TRIAGE_MASK_TRAINING=1 first"
            )
        read, changed = mask_stored_training_examples()
        AuditLog.record(
            actor=command_actor(), action="mask_training", examples=read, masked=changed
        )
        self.stdout.write(f"read {read} training example(s); masked personal data in {changed}")
