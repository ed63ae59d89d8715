"""The frontier as the category page reads it, and what saving an uncertifiable target says."""

from dataclasses import dataclass
from typing import Any

from triage.models import Category, ModelVersion, RoutingPolicy
from triage.routing.derive import category_settings, rule_for_category
from triage.routing.frontier import FRONTIER_TARGETS, Point, frontier_now


@dataclass(frozen=True)
class Row:
    target: float
    point: Point
    pooled: Point
    overall: Point
    current: bool


def category_frontier(
    category: Category, *, champion: ModelVersion | None, policy: RoutingPolicy
) -> dict[str, Any] | None:
    """This category's frontier rows, its highest certifiable target and the pooled one."""
    shape = frontier_now(champion) if champion is not None else None
    if shape is None or category.slug not in shape.categories:
        return None
    target, _ = category_settings(category, policy)
    points = shape.categories[category.slug]
    rows = [
        Row(t, p, shape.pooled[i], shape.overall[i], target is not None and abs(t - target) < 1e-9)
        for i, (t, p) in enumerate(zip(FRONTIER_TARGETS, points, strict=True))
    ]
    return {
        "highest": shape.highest.get(category.slug),
        "highest_pooled": shape.highest_pooled,
        "rows": rows,
    }


def uncertifiable_notice(category: Category, *, champion: ModelVersion | None) -> str:
    """After saving: when no scope certifies the category's target today, say so, with the
    highest target that is certifiable. Empty when it is certified or follows a raw threshold."""
    if champion is None:
        return ""
    report = rule_for_category(category, version=champion)
    if report.rule.target is None or report.rule.threshold is not None:
        return ""
    shape = frontier_now(champion)
    highest = shape.highest.get(category.slug) if shape is not None else None
    best = (
        f"the highest certifiable today is {highest:.0%}"
        if highest is not None
        else "no target from 50% up is certifiable today"
    )
    return (
        f"Saved, but no scope can certify {report.rule.target:.1%} for {category.name} on "
        f"today's evidence ({best}): it never acts automatically until the evidence supports "
        "that target."
    )
