from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage import training
from triage.classify.scoring import ClassificationError
from triage.ml.heads import ArtifactError
from triage.models import ModelVersion, RoutingPolicy


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


class Command(BaseCommand):
    help = (
        "Measure a model version on examples it did not train on (new ones, else its "
        "out-of-fold evidence): per-class scores, calibration, "
        "and how much each target precision would automate."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # Our --version (a model version) replaces Django's --version (its own release).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--version", type=int, help="model version id (default: champion)")

    def handle(self, *args: Any, version: int | None, **options: Any) -> None:
        if version is None:
            chosen = ModelVersion.objects.champion()
            if chosen is None:
                raise CommandError("no champion yet: run `manage.py retrain` first")
        else:
            chosen = ModelVersion.objects.filter(pk=version).first()
            if chosen is None:
                ids = ", ".join(str(v) for v in ModelVersion.objects.values_list("pk", flat=True))
                raise CommandError(f"no model version {version} (have: {ids or 'none'})")
        try:
            report = training.evaluate_version(chosen)
        except (training.RetrainError, ClassificationError, ArtifactError) as exc:
            raise CommandError(str(exc)) from exc
        m = report.metrics
        out = self.stdout.write
        out(f"{chosen} [{chosen.kind}] on {report.measured_on}; encoder {chosen.encoder}")
        out("")
        out(f"{'category':<16}{'precision':>10}{'recall':>10}{'F1':>8}{'support':>9}")
        for label, row in m["per_class"].items():
            out(
                f"{label:<16}{row['precision']:>10.3f}{row['recall']:>10.3f}"
                f"{row['f1']:>8.3f}{row['support']:>9}"
            )
        out("")
        out(f"accuracy {m['accuracy']:.3f}   macro-F1 {m['macro_f1']:.3f}")
        out(
            f"ECE {num(report.ece_uncalibrated)} uncalibrated → {num(m['ece'])} calibrated "
            f"(temperature {chosen.temperature:.2f})"
        )
        out("")
        out("Reliability (calibrated):")
        out(f"  {'confidence':<14}{'n':>6}{'mean conf':>11}{'accuracy':>10}")
        for b in report.reliability:
            out(
                f"  {f'{b.lower:.1f}–{b.upper:.1f}':<14}{b.count:>6}"
                f"{b.mean_confidence:>11.3f}{b.accuracy:>10.3f}"
            )
        out("")
        policy = RoutingPolicy.current()
        out(
            "Risk–coverage: share automated at a target precision (certified at delta "
            f"{policy.delta:g}, {policy.get_certification_display()})"
        )
        slugs = list(report.automation[0].per_category) if report.automation else []
        header = f"  {'target':<8}{'overall':>9}{'precision':>11}" + "".join(
            f"{s[:14]:>16}" for s in slugs
        )
        out(header)
        for a in report.automation:
            cells = "".join(f"{pct(a.per_category[s].coverage):>16}" for s in slugs)
            out(f"  {a.target:<8.0%}{pct(a.coverage):>9}{pct(a.precision):>11}{cells}")
        out("  (per category: share of that category's predictions automated)")
