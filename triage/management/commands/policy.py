from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from triage.models import AuditLog, Category, ModelVersion, RoutingPolicy, snapshot
from triage.policy import rule_reports


def unit(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if not 0 <= number <= 1:
        raise ValueError(f"{value} is outside 0–1")
    return number


class Command(BaseCommand):
    help = (
        "Show or set the routing policy. With no options, print each category's mode, "
        "target, derived threshold and expected coverage."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        what = parser.add_mutually_exclusive_group()
        what.add_argument("--target-precision", type=str, help="e.g. 0.95 (0.5–1)")
        what.add_argument("--threshold", type=str, help="raw confidence threshold (0–1)")
        what.add_argument(
            "--clear", action="store_true", help="remove the category's own threshold and target"
        )
        parser.add_argument("--category", help="category slug (default: the global policy)")

    def handle(self, *args: Any, **options: Any) -> None:
        target, threshold = options["target_precision"], options["threshold"]
        slug = options["category"]
        if target is not None or threshold is not None or options["clear"]:
            self.set_policy(slug, target, threshold, clear=options["clear"])
        elif slug:
            raise CommandError("--category needs --target-precision, --threshold or --clear")
        self.show()

    def set_policy(
        self, slug: str | None, target: str | None, threshold: str | None, *, clear: bool
    ) -> None:
        raw = target if target is not None else threshold
        try:
            value = unit(raw) if raw is not None else None
        except ValueError as exc:
            option = "--target-precision" if target is not None else "--threshold"
            raise CommandError(f"{option}: {exc}") from exc
        if target is not None and value is not None and value < 0.5:
            raise CommandError(f"--target-precision: {value} is below 0.5")
        if clear and not slug:
            raise CommandError("--clear needs --category")
        fields = ["target_precision", "threshold", "default_threshold"]
        with transaction.atomic():
            if slug:
                category = Category.objects.select_for_update().filter(slug=slug).first()
                if category is None:
                    known = ", ".join(Category.objects.values_list("slug", flat=True))
                    raise CommandError(f"unknown category {slug!r} (known: {known or 'none'})")
                before = snapshot(category, fields)
                # One setting per category: a target replaces a raw threshold and vice versa.
                category.target_precision = value if target is not None else None
                category.threshold = value if threshold is not None else None
                category.save(update_fields=["target_precision", "threshold"])
                changed: Category | RoutingPolicy = category
                where = f"category:{slug}"
            else:
                policy = RoutingPolicy.current()
                before = snapshot(policy, fields)
                if target is not None:
                    policy.target_precision = value
                else:
                    assert value is not None
                    policy.target_precision = None
                    policy.default_threshold = value
                policy.save()
                changed, where = policy, "routing policy"
            AuditLog.record_change(
                actor="command",
                action="policy",
                target=where,
                before=before,
                after=snapshot(changed, fields),
            )

    def show(self) -> None:
        champion = ModelVersion.objects.champion()
        policy = RoutingPolicy.current()
        out = self.stdout.write
        out(
            f"champion: {champion or 'none (cold start: everything goes to review)'}; "
            f"global: "
            + (
                f"target precision {policy.target_precision:.1%}"
                if policy.target_precision is not None
                else f"threshold {policy.default_threshold:.2f}"
            )
            + f"; audit rate {policy.audit_rate:.0%}; min support {policy.min_support}"
        )
        out(
            f"{'category':<16}{'mode':<18}{'target':>8}{'threshold':>11}"
            f"{'bound':>8}{'coverage':>10}  note"
        )
        for r in rule_reports(champion):
            rule = r.rule
            out(
                f"{r.slug:<16}{rule.mode.value:<18}"
                f"{'—' if rule.target is None else f'{rule.target:.1%}':>8}"
                f"{'never' if rule.threshold is None else f'{rule.threshold:.3f}':>11}"
                f"{'—' if rule.lower_bound is None else f'{rule.lower_bound:.1%}':>8}"
                f"{'—' if r.coverage is None else f'{r.coverage:.1%}':>10}  {rule.note}"
            )
