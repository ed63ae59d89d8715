from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from triage.models import AuditLog, Category, ModelVersion, RoutingPolicy
from triage.monitoring.metrics import metrics_snapshot


def number(value: str, option: str, *, low: float, high: float, high_inclusive: bool) -> float:
    """Parse a number in (low, high] or (low, high); CommandError naming the option."""
    try:
        parsed = float(value)
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not a number") from None
    inside = low < parsed <= high if high_inclusive else low < parsed < high
    if not inside:
        bracket = "]" if high_inclusive else ")"
        raise CommandError(f"{option}: {value} is outside ({low:g}, {high:g}{bracket}")
    return parsed


def fmt(value: float | None, spec: str, empty: str = "—") -> str:
    return empty if value is None else format(value, spec)


class Command(BaseCommand):
    help = (
        "Show or set the routing policy. With no options, print the guarantee and its scope, "
        "then per category and pooled: target, certified threshold and bound, evidence count, "
        "automation share, and why not when a target cannot be certified."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        what = parser.add_mutually_exclusive_group()
        what.add_argument("--target-precision", type=str, help="e.g. 0.95, in (0, 1]")
        what.add_argument("--threshold", type=str, help="raw confidence threshold (0–1)")
        what.add_argument(
            "--clear", action="store_true", help="remove the category's own threshold and target"
        )
        parser.add_argument("--category", help="category slug (default: the global policy)")
        parser.add_argument(
            "--delta", type=str, help="chance the guarantee fails, in (0, 0.5); default 0.05"
        )
        parser.add_argument(
            "--certification",
            choices=[c.value for c in RoutingPolicy.Certification],
            help="scope of the promise: per_category, all_categories (delta split) or pooled",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        target, threshold = options["target_precision"], options["threshold"]
        slug = options["category"]
        delta, mode = options["delta"], options["certification"]
        if slug and (delta is not None or mode is not None):
            raise CommandError("--delta and --certification are global: drop --category")
        with transaction.atomic():
            if target is not None or threshold is not None or options["clear"]:
                self.set_rule(slug, target, threshold, clear=options["clear"])
            elif slug:
                raise CommandError("--category needs --target-precision, --threshold or --clear")
            if delta is not None or mode is not None:
                self.set_certification(delta, mode)
        self.show()

    def set_certification(self, delta: str | None, mode: str | None) -> None:
        policy = RoutingPolicy.current()
        if delta is not None:
            policy.delta = number(delta, "--delta", low=0, high=0.5, high_inclusive=False)
        if mode is not None:
            policy.certification = mode
        policy.save()
        AuditLog.record(actor="command", action="policy", delta=policy.delta, certification=mode)

    def set_rule(
        self, slug: str | None, target: str | None, threshold: str | None, *, clear: bool
    ) -> None:
        value: float | None = None
        if target is not None:
            value = number(target, "--target-precision", low=0, high=1, high_inclusive=True)
        elif threshold is not None:
            value = number(threshold, "--threshold", low=-1e-12, high=1, high_inclusive=True)
        if clear and not slug:
            raise CommandError("--clear needs --category")
        if slug:
            category = Category.objects.filter(slug=slug).first()
            if category is None:
                known = ", ".join(Category.objects.values_list("slug", flat=True))
                raise CommandError(f"unknown category {slug!r} (known: {known or 'none'})")
            # One setting per category: a target replaces a raw threshold and vice versa.
            category.target_precision = value if target is not None else None
            category.threshold = value if threshold is not None else None
            category.save(update_fields=["target_precision", "threshold"])
        else:
            policy = RoutingPolicy.current()
            if target is not None:
                policy.target_precision = value
            else:
                assert value is not None
                policy.target_precision = None
                policy.default_threshold = value
            policy.save()
        AuditLog.record(
            actor="command",
            action="policy",
            category=slug,
            target_precision=value if target is not None else None,
            threshold=value if threshold is not None else None,
            cleared=clear,
        )

    def show(self) -> None:
        snapshot = metrics_snapshot()
        policy = RoutingPolicy.current()
        out = self.stdout.write
        champion = ModelVersion.objects.champion()
        evidence = (
            f" ({snapshot['champion']['evidence_count']} {snapshot['champion']['evidence']} "
            "predictions as evidence)"
            if snapshot["champion"]
            else ""
        )
        out(
            f"champion: {champion or 'none (cold start: everything goes to review)'}{evidence}; "
            f"global: "
            + (
                f"target precision {policy.target_precision:.1%}"
                if policy.target_precision is not None
                else f"threshold {policy.default_threshold:.2f}"
            )
            + f"; delta {policy.delta:g}; certification {policy.certification}; "
            f"audit rate {policy.audit_rate:.0%}; min support {policy.min_support}"
        )
        out(f"guarantee: {snapshot['guarantee']}")
        out(
            f"{'category':<16}{'mode':<18}{'target':>8}{'threshold':>11}{'bound':>8}"
            f"{'evidence':>10}{'automates':>11}  why not / note"
        )
        rows = [(c["slug"], c) for c in snapshot["categories"]]
        if snapshot["pooled"] is not None:
            pooled = snapshot["pooled"]
            label = "pooled" + ("*" if pooled["in_force"] else "")
            rows.append((label, pooled | {"mode": "target_precision", "scope": "pooled"}))
        for name, row in rows:
            note = row["why_not"] or ""
            out(
                f"{name:<16}{row['mode']:<18}{fmt(row['target'], '.1%'):>8}"
                f"{fmt(row['threshold'], '.3f', 'never'):>11}"
                f"{fmt(row['certified_bound'], '.1%'):>8}{row['evidence_count']:>10}"
                f"{fmt(row['automation_share'], '.1%'):>11}  {note}"
            )
        if snapshot["pooled"] is not None:
            out(
                "pooled: one threshold certified over "
                + ", ".join(snapshot["pooled"]["categories"])
                + (" (in force*)" if snapshot["pooled"]["in_force"] else " (for comparison)")
            )
        overall = snapshot["overall"]
        if overall is not None:
            out(
                f"overall: the current rules automate {fmt(overall['automation_share'], '.1%')}"
                f" of the evidence, {fmt(overall['evidence_precision'], '.1%')} right"
            )
