from typing import Any

from django.core.management.base import BaseCommand, CommandError

from triage import services


class Command(BaseCommand):
    help = (
        "Train a candidate model on the training examples and promote it only if its "
        "holdout macro-F1 is at least the champion's."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = services.retrain(actor="command")
        except services.RetrainError as exc:
            raise CommandError(str(exc)) from exc
        version = result.version
        metrics = version.metrics
        self.stdout.write(
            f"{version}: holdout macro-F1 {metrics['macro_f1']:.3f}, accuracy "
            f"{metrics['accuracy']:.3f} on {metrics['n']} examples; "
            f"temperature {version.temperature:.2f}"
        )
        style = self.style.SUCCESS if result.promoted else self.style.WARNING
        verdict = "promoted" if result.promoted else "not promoted"
        self.stdout.write(style(f"{verdict}: {result.message}"))
