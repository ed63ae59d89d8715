"""The frontier: what each target would automate on this evidence, and the highest one
that can be certified now.

For reading the trade-off, not for choosing a target after the fact: every row is a
certification on the same evidence, and a target picked because its row looks good is
a look at that evidence, which the promise does not cover (the cockpit says so). The
rows come from derive_rules, the code routing uses, with every category that follows a
target set to the row's target; the pooled row certifies one threshold over all of them.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from triage.models import Category, ModelVersion, RoutingPolicy
from triage.routing import cache
from triage.routing.automation import automation_of
from triage.routing.certify import SelectionCurve, walk_starts
from triage.routing.derive import (
    RuleReport,
    Settings,
    derive_rules,
    derived,
    pooled_certification,
)
from triage.routing.evidence import HoldoutPredictions
from triage.stats import clopper_pearson_lower, clopper_pearson_lower_bounds

# The targets the frontier reads, 80% to 99% by one point.
FRONTIER_TARGETS = tuple(round(0.80 + 0.01 * i, 2) for i in range(20))
# How far below the table the highest certifiable target is looked for.
LOWEST_TARGET = 0.50


@dataclass(frozen=True)
class Point:
    """One target's row for one scope: its threshold (None: nothing certified), and the
    share of the scope's evidence automated."""

    target: float
    threshold: float | None
    coverage: float
    scope: str = ""


@dataclass(frozen=True)
class Frontier:
    """Per category, pooled and overall: the rows for FRONTIER_TARGETS and the highest
    target certifiable now (None: none at or above LOWEST_TARGET)."""

    categories: dict[str, tuple[Point, ...]]
    pooled: tuple[Point, ...]
    overall: tuple[Point, ...]  # share of all evidence automated under the policy's scopes
    highest: dict[str, float | None]
    highest_pooled: float | None

    def as_json(self) -> dict[str, object]:
        def rows(points: Sequence[Point]) -> list[dict[str, object]]:
            return [
                {
                    "target": p.target,
                    "threshold": None if p.threshold is None else round(p.threshold, 4),
                    "automation_share": round(p.coverage, 4),
                    **({"scope": p.scope} if p.scope else {}),
                }
                for p in points
            ]

        return {
            "targets": list(FRONTIER_TARGETS),
            "highest_certifiable": {**self.highest, "pooled": self.highest_pooled},
            "categories": {slug: rows(points) for slug, points in self.categories.items()},
            "pooled": rows(self.pooled),
            "overall": rows(self.overall),
        }


def _at(
    holdout: HoldoutPredictions, slugs: Sequence[str], target: float, settings: Settings
) -> tuple[list[RuleReport], float]:
    reports = derive_rules(
        dict.fromkeys(slugs, target),
        thresholds=dict.fromkeys(slugs, 1.0),
        holdout=holdout,
        settings=replace(settings, target=target),
    )
    return reports, automation_of(holdout, reports).coverage


def frontier(holdout: HoldoutPredictions, *, slugs: Sequence[str], settings: Settings) -> Frontier:
    """The frontier of these categories on this evidence, under these settings' scopes."""
    categories: dict[str, list[Point]] = {slug: [] for slug in slugs}
    pooled: list[Point] = []
    overall: list[Point] = []
    highest: dict[str, float | None] = dict.fromkeys(slugs)
    highest_pooled: float | None = None
    # Highest first, down to LOWEST_TARGET: the table's rows, then only until every
    # scope has its highest certifiable target.
    below = np.round(np.arange(min(FRONTIER_TARGETS) - 0.01, LOWEST_TARGET - 1e-9, -0.01), 2)
    for target in [*sorted(FRONTIER_TARGETS, reverse=True), *below.tolist()]:
        in_table = target in FRONTIER_TARGETS
        if not in_table and highest_pooled is not None and all(highest.values()):
            break
        reports, share = _at(holdout, slugs, target, settings)
        pool = pooled_certification(slugs, target=target, holdout=holdout, settings=settings)
        for r in reports:
            if r.rule.threshold is not None and highest[r.slug] is None:
                highest[r.slug] = target
        if pool.certified and highest_pooled is None:
            highest_pooled = target
        if in_table:
            for r in reports:
                categories[r.slug].append(
                    Point(target, r.rule.threshold, r.coverage or 0.0, r.scope)
                )
            pooled.append(Point(target, pool.threshold, pool.coverage, "pooled"))
            overall.append(Point(target, None, share))
    return Frontier(
        categories={slug: tuple(reversed(points)) for slug, points in categories.items()},
        pooled=tuple(reversed(pooled)),
        overall=tuple(reversed(overall)),
        highest=highest,
        highest_pooled=highest_pooled,
    )


def why_raw_beats_target(
    confidences: np.ndarray,
    correct: np.ndarray,
    report: RuleReport,
    *,
    delta: float,
    min_support: int,
) -> str:
    """One sentence, when a raw threshold's pointwise bound clears a target that failed.

    Empty when the target was certified, or when no raw threshold's bound clears it.
    """
    target = report.rule.target
    if report.rule.threshold is not None or target is None or not len(confidences):
        return ""
    # Every distinct raw threshold with its selected and right counts (ties together),
    # and its pointwise bound; the one automating most whose bound clears the target.
    curve = SelectionCurve.build(confidences, correct)
    bounds = clopper_pearson_lower_bounds(curve.successes, curve.n_selected, delta)
    clearing = np.flatnonzero(bounds >= target)
    if not len(clearing):
        return ""
    i = int(clearing[-1])
    threshold, best, right = (
        float(curve.thresholds[i]),
        int(curve.n_selected[i]),
        int(curve.successes[i]),
    )
    bound = float(bounds[i])
    level = report.delta or delta
    _, walk_level = walk_starts(
        len(confidences), target=target, delta=level, min_support=min_support
    )
    strict = clopper_pearson_lower(right, best, level)
    return (
        f"A raw threshold of {threshold:.2f} shows {bound:.1%} at {best / curve.n_total:.0%} of "
        f"the items because it is one threshold checked once at {1 - delta:.0%}; a target "
        f"must hold for whichever threshold certification picks, so its walks open at "
        f"{walk_level:.2%} each and reach at most {level:.2%} through a run of passes, where "
        f"the same items give {strict:.1%}"
        + (
            ", and the walks stopped at a failing step before reaching it."
            if strict >= target
            else f", below {target:.1%}."
        )
    )


def frontier_now(version: ModelVersion | None) -> Frontier | None:
    """The frontier of the active categories on this version's evidence under the saved
    policy, cached per process like the derivation (None: no evidence)."""
    found = derived(version)
    if found.evidence is None or not len(found.evidence):
        return None
    evidence = found.evidence
    policy = RoutingPolicy.current()
    slugs = tuple(
        Category.objects.filter(is_active=True, slug__in=evidence.labels)
        .order_by("slug")
        .values_list("slug", flat=True)
    )
    return cache.cached(
        ("frontier", *cache.version_key(version), *cache.inputs_key()),
        lambda: frontier(evidence, slugs=slugs, settings=Settings.of(policy)),
    )
