from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from triage.models import AuditLog, Category, ModelVersion, RoutingPolicy
from triage.models import snapshot as audit_snapshot
from triage.monitoring.live import live_report, live_table
from triage.monitoring.summary import metrics_snapshot
from triage.monitoring.watch import WatchError, resume_category


def number(value: str, option: str, *, interval: str) -> float:
    """Parse a number inside ``interval`` ("(0, 1]", "(0, 0.5)" or "[0, 1]").

    A CommandError names the option and the reason.
    """
    try:
        parsed = float(value)
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not a number") from None
    inside = {
        "(0, 1]": 0 < parsed <= 1,
        "(0, 0.5)": 0 < parsed < 0.5,
        "[0, 1]": 0 <= parsed <= 1,
    }[interval]
    if not inside:
        raise CommandError(f"{option}: {value} is outside {interval}")
    return parsed


def save_logged(
    changed: Category | RoutingPolicy,
    *,
    before: dict[str, Any],
    action: str,
    target: str,
    update_fields: list[str] | None = None,
) -> None:
    """Save a policy or category change and its audit-log entry (the fields in `before`,
    before and after) in one transaction."""
    with transaction.atomic():
        changed.save(update_fields=update_fields)
        AuditLog.record_change(
            actor="command",
            action=action,
            target=target,
            before=before,
            after=audit_snapshot(changed, list(before)),
        )


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
            help=(
                "scope of the promise: fallback (default: per category, thin categories "
                "pooled, delta split), per_category, all_categories (delta split) or pooled"
            ),
        )
        audits = parser.add_argument_group("audits and the drift watch")
        audits.add_argument("--audit-rate", help="share of auto-actions audited (0–1)")
        audits.add_argument(
            "--audit-floor", help="fewest audits per category per week (an integer ≥ 0)"
        )
        audits.add_argument(
            "--blind-review", choices=["on", "off"], help="hide suggestions on every task"
        )
        audits.add_argument("--resume", metavar="CATEGORY", help="lift a drift suspension")
        parser.add_argument(
            "--queue-order",
            choices=[o.value for o in RoutingPolicy.QueueOrder],
            help="non-audit review queue: oldest first, or smallest margin first (with "
            "TRIAGE_QUEUE_OLDEST_SHARE of claims still oldest first)",
        )
        parser.add_argument(
            "--reroute-waiting",
            choices=["on", "off"],
            help="when a new champion takes over, route the waiting items it now automates",
        )
        audits.add_argument("--reason", help="why (required with --resume; audit-logged)")
        audits.add_argument(
            "--below-target",
            action="store_true",
            help="with --resume: resume although its audited interval is wholly below target",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["resume"] is not None or options["reason"] is not None:
            self.resume(options["resume"], options["reason"], options["below_target"])
        if any(options[k] is not None for k in ("audit_rate", "audit_floor", "blind_review")):
            self.set_audits(options["audit_rate"], options["audit_floor"], options["blind_review"])
        if options["queue_order"] is not None or options["reroute_waiting"] is not None:
            self.set_queue(options["queue_order"], options["reroute_waiting"])
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
        before = audit_snapshot(policy, ["delta", "certification"])
        if delta is not None:
            policy.delta = number(delta, "--delta", interval="(0, 0.5)")
        if mode is not None:
            policy.certification = mode
        save_logged(policy, before=before, action="policy", target="routing policy")

    def set_rule(
        self, slug: str | None, target: str | None, threshold: str | None, *, clear: bool
    ) -> None:
        value: float | None = None
        if target is not None:
            value = number(target, "--target-precision", interval="(0, 1]")
        elif threshold is not None:
            value = number(threshold, "--threshold", interval="[0, 1]")
        if clear and not slug:
            raise CommandError("--clear needs --category")
        fields = ["target_precision", "threshold", "default_threshold"]
        if slug:
            category = Category.objects.select_for_update().filter(slug=slug).first()
            if category is None:
                known = ", ".join(Category.objects.values_list("slug", flat=True))
                raise CommandError(f"unknown category {slug!r} (known: {known or 'none'})")
            before = audit_snapshot(category, fields)
            # One setting per category: a target replaces a raw threshold and vice versa.
            category.target_precision = value if target is not None else None
            category.threshold = value if threshold is not None else None
            save_logged(
                category,
                before=before,
                action="policy",
                target=f"category:{slug}",
                update_fields=["target_precision", "threshold"],
            )
        else:
            policy = RoutingPolicy.current()
            before = audit_snapshot(policy, fields)
            if target is not None:
                policy.target_precision = value
            else:
                assert value is not None
                policy.target_precision = None
                policy.default_threshold = value
            save_logged(policy, before=before, action="policy", target="routing policy")

    def resume(self, slug: str | None, reason: str | None, below_target: bool = False) -> None:
        if slug is None:
            raise CommandError("--reason goes with --resume CATEGORY")
        try:
            resume_category(
                slug=slug,
                reason=reason or "",
                actor="command",
                confirm_below_target=below_target,
            )
        except WatchError as exc:
            option = {"reason": "--reason", "confirm_below_target": "--below-target"}.get(
                exc.field, "--resume"
            )
            raise CommandError(f"{option}: {exc}") from exc
        self.stdout.write(f"resumed {slug}: it auto-acts again and its drift watch starts over")

    def set_queue(self, order: str | None, reroute: str | None) -> None:
        policy = RoutingPolicy.current()
        changed = {"queue_order": order, "reroute_waiting": reroute}
        before = audit_snapshot(policy, [f for f, value in changed.items() if value is not None])
        if order is not None:
            policy.queue_order = order
        if reroute is not None:
            policy.reroute_waiting = reroute == "on"
        save_logged(policy, before=before, action="policy", target="routing policy")

    def set_audits(self, rate: str | None, floor: str | None, blind: str | None) -> None:
        # The arguments are checked before the policy is read: a wrong one is refused
        # whatever the state of the database.
        audit_rate = number(rate, "--audit-rate", interval="[0, 1]") if rate is not None else None
        audit_floor = None
        if floor is not None:
            try:
                audit_floor = int(floor)
            except ValueError:
                raise CommandError(f"--audit-floor: {floor!r} is not an integer") from None
            if audit_floor < 0:
                raise CommandError(f"--audit-floor: {floor} is below 0")
        policy = RoutingPolicy.current()
        fields = ["audit_rate", "audit_floor", "blind_review"]
        before = audit_snapshot(policy, fields)
        if audit_rate is not None:
            policy.audit_rate = audit_rate
        if audit_floor is not None:
            policy.audit_floor = audit_floor
        if blind is not None:
            policy.blind_review = blind == "on"
        save_logged(policy, before=before, action="audit_policy", target="routing policy")

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
            f"audit rate {policy.audit_rate:.0%} (floor {policy.audit_floor}/category/week); "
            f"blind review {'on' if policy.blind_review else 'audits only'}; "
            f"min support {policy.min_support}"
        )
        out(f"guarantee: {snapshot['guarantee']}")
        out(
            f"review queue: {policy.get_queue_order_display()}; waiting items a new champion "
            f"automates: {'re-routed' if policy.reroute_waiting else 'left for people'}"
        )
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
        for line in frontier_table(snapshot.get("frontier")):
            out(line)
        out("")
        for line in live_table(live_report()):
            out(line)


def frontier_table(shape: dict[str, Any] | None) -> list[str]:
    """The frontier: each target's automation per category, pooled and overall."""
    if not shape:
        return []
    slugs = list(shape["categories"])
    highest = shape["highest_certifiable"]
    lines = [
        "",
        "frontier (if every category followed the target; for reading the trade-off: a target "
        "picked from it is a look at this evidence, which the promise does not cover):",
        "highest certifiable today: "
        + ", ".join(
            f"{slug} {'none' if highest.get(slug) is None else format(highest[slug], '.0%')}"
            for slug in [*slugs, "pooled"]
        ),
        f"{'target':<8}"
        + "".join(f"{slug[:14]:>16}" for slug in slugs)
        + f"{'pooled':>16}{'overall':>10}",
    ]

    def cell(row: dict[str, Any]) -> str:
        if row["threshold"] is None:
            return "never"
        return f"{row['automation_share']:.1%} @{row['threshold']:.2f}"

    for i, target in enumerate(shape["targets"]):
        lines.append(
            f"{target:<8.0%}"
            + "".join(f"{cell(shape['categories'][slug][i]):>16}" for slug in slugs)
            + f"{cell(shape['pooled'][i]):>16}"
            + f"{shape['overall'][i]['automation_share']:>10.1%}"
        )
    return lines
