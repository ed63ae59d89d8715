"""The walks as certified before the fallback procedure, kept outside the product for comparison.

Each walk was tested alone at delta / walks, on its own grid from its start down to all
items, and stopped at its first failure; the lowest threshold any walk certified won
(a union bound). The product now tests the same walks as one fallback sequence
(triage.routing.certify), which certifies at least as much; benchmarks/quality.py shows
both on the same evidence.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from triage.routing.certify import Certification, certify_threshold
from triage.routing.walks import DEFAULT_WALKS, WalkDesign, candidate_grid, walk_starts
from triage.stats import clopper_pearson_lower_bounds

__all__ = ["union_walks_threshold"]


def union_walks_threshold(
    confidences: npt.ArrayLike,
    correct: npt.ArrayLike,
    *,
    target: float,
    delta: float = 0.05,
    min_support: int = 30,
    design: WalkDesign = DEFAULT_WALKS,
) -> Certification:
    """The union-bound rule's certification; the product's reason when it certifies nothing."""
    conf = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    n = len(conf)
    product = certify_threshold(
        conf, right, target=target, delta=delta, min_support=min_support, design=design
    )
    if product.threshold is None:
        return product  # the fallback certifies at least what the union bound does
    starts, level = walk_starts(
        n, target=target, delta=delta, min_support=min_support, design=design
    )
    best: tuple[float, int, int, float] | None = None
    for start in starts:
        grid = candidate_grid(conf, start=start, step=design.step)
        selected = conf[None, :] >= grid[:, None]
        support = selected.sum(axis=1)
        successes = (selected & right[None, :]).sum(axis=1)
        passed = clopper_pearson_lower_bounds(successes, support, level) >= target
        run = int(np.argmin(passed)) if not passed.all() else len(passed)
        if run and (best is None or grid[run - 1] < best[0]):
            i = run - 1
            bound = float(clopper_pearson_lower_bounds(successes[i], support[i], level))
            best = float(grid[i]), int(support[i]), int(successes[i]), bound
    if best is None:
        return Certification.never(target, delta, n, "no walk passed its first step", needed=None)
    threshold, sel, ok, bound = best
    return Certification.passed(threshold, target, delta, n, support=sel, successes=ok, bound=bound)
