from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from triage import training


class Command(BaseCommand):
    help = (
        "Train a candidate head on all labelled examples (cross-fitted: thresholds are certified "
        "on out-of-fold predictions) and promote it only through the gate: not worse than the "
        "champion under a paired test on examples neither trained on, and no large automation drop."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fine-tune",
            action="store_true",
            help="queue a fine-tuning of the encoder (minutes on CPU) for a worker; it is kept "
            "only if it certifies more than the head alone at the current targets",
        )
        parser.add_argument(
            "--foreground",
            action="store_true",
            help="with --fine-tune: run it here, with a progress bar, instead of on a worker",
        )

    def handle(self, *args: Any, fine_tune: bool, foreground: bool, **options: Any) -> None:
        if fine_tune and not foreground:
            from triage.training.tasks import fine_tune as fine_tune_task

            queued = fine_tune_task.delay(actor="command")
            if settings.CELERY_TASK_ALWAYS_EAGER:  # embedded mode: it already ran here
                self.stdout.write(f"fine-tuning: {queued.result}")
            else:
                self.stdout.write(f"fine-tuning queued as task {queued.id}; a worker records it")
            return
        bar = None

        def progress(step: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, desc="fine-tuning", unit="step")
            bar.update(step - bar.n)

        try:
            if fine_tune:
                result = training.retrain_fine_tuned(actor="command", progress=progress)
            else:
                result = training.retrain(actor="command")
        except training.RetrainError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if bar is not None:
                bar.close()
        version = result.version
        metrics = version.metrics
        self.stdout.write(
            f"{version}: out-of-sample macro-F1 {metrics['macro_f1']:.3f}, accuracy "
            f"{metrics['accuracy']:.3f} on {metrics['n']} examples; ECE "
            f"{metrics['ece_uncalibrated']:.3f} → {metrics['ece']:.3f} "
            f"(temperature {version.temperature:.2f})"
        )
        style = self.style.SUCCESS if result.promoted else self.style.WARNING
        verdict = (
            "promoted"
            if result.promoted
            else "held for an admin"
            if result.held
            else "not promoted"
        )
        self.stdout.write(style(f"{verdict}: {result.message}"))
