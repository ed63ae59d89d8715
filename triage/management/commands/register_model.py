from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage import training
from triage.ml.encoder_spec import EncoderConfigurationError, check_model_dir
from triage.ml.seqcls import SeqClsConfigurationError


class Command(BaseCommand):
    help = (
        "Use a ready sequence-classification model directory (transformers, safetensors, "
        "id2label) as a candidate: its labels are mapped onto categories, it is calibrated and "
        "measured on the holdout, and promoted only through the same gate as a retrained model."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model_dir", type=Path)
        parser.add_argument(
            "--label",
            action="append",
            default=[],
            metavar="MODEL_LABEL=CATEGORY",
            help="map a model label onto a category slug (repeat; same names map by themselves)",
        )

    def handle(self, *args: Any, model_dir: Path, label: list[str], **options: Any) -> None:
        label_map: dict[str, str] = {}
        for pair in label:
            model_label, sep, slug = pair.partition("=")
            if not sep or not model_label.strip() or not slug.strip():
                raise CommandError(f"--label {pair!r}: use MODEL_LABEL=CATEGORY")
            label_map[model_label.strip()] = slug.strip()
        try:
            # Missing or unsafe (pickled weights, custom code): refused here, not when serving.
            check_model_dir(model_dir)
        except EncoderConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        try:
            result = training.register_sequence_classifier(model_dir=model_dir, label_map=label_map)
        except (SeqClsConfigurationError, training.RetrainError) as exc:
            raise CommandError(str(exc)) from exc
        verdict = "promoted" if result.promoted else "not promoted"
        self.stdout.write(f"{result.version}: {verdict}: {result.message}")
