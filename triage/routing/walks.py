"""Where certification's walks start and which thresholds they test (settings only).

A walk is a fixed sequence of candidate thresholds, most conservative first; its
starting size and its candidates depend on the settings and the confidences alone,
never on which predictions are right (triage.routing.certify tests them). Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from triage.stats import correct_needed

# Most candidate thresholds tested; a finer grid only adds near-duplicate tests.
GRID_POINTS = 100


@dataclass(frozen=True)
class WalkDesign:
    """Where walks may start: a function of the settings and the item count only.

    ``multiples``: starts at these multiples of the zero-error count (the fewest
    items that could pass at the walk's level); ``shares``: starts at these shares
    of the scope's evidence, where they hold at least the zero-error count. Chosen
    by the simulations in tests/test_certification.py and
    benchmarks/certification_design.py, never by the real data.
    """

    multiples: tuple[int, ...] = (1, 4, 16)
    shares: tuple[float, ...] = (0.05, 0.10, 0.20)
    # Each walk's candidates step down by this share of the scope's evidence (None:
    # GRID_POINTS candidates evenly spaced from the start to all items).
    step: float | None = None

    @property
    def most_walks(self) -> int:
        return len(self.multiples) + len(self.shares)


# The default: three geometric starts, as before issue 17, plus three where the evidence is.
DEFAULT_WALKS = WalkDesign()
# The design before issue 17: 2·n₀, 8·n₀, 32·n₀ and nothing else (kept for the benchmarks).
GEOMETRIC_ONLY = WalkDesign(multiples=(2, 8, 32), shares=())


def first_support(target: float, delta: float, min_support: int) -> int:
    """Items the most conservative candidate of the shortest walk keeps (settings only).

    Fewer than ``correct_needed(target, delta)`` items cannot pass even when all
    are right, so a walk starting there would stop at once.
    """
    zero_error = correct_needed(target, delta)
    floor = zero_error if zero_error is not None else 1
    return max(min_support, floor)


# A category with fewer evidence predictions than this many times the zero-error count
# for its target is thin: by default it is certified in a pool (triage.routing.derive).
ENOUGH_MULTIPLE = 10


def enough_evidence(target: float, delta: float, min_support: int) -> int:
    """Evidence predictions a category needs to be certified on its own (settings only).

    ENOUGH_MULTIPLE times the zero-error count: then its shortest walks start well
    inside its evidence, so one noisy label near the top does not end them all.
    Below it, a category alone would certify little or nothing, where a pool of thin
    categories has the numbers. Chosen by the simulations, not by the data.
    """
    return ENOUGH_MULTIPLE * first_support(target, delta, min_support)


def _starts_at(
    n: int, *, target: float, level: float, min_support: int, design: WalkDesign
) -> list[int]:
    zero_error = correct_needed(target, level)
    floor = max(min_support, zero_error if zero_error is not None else 1)
    starts = {floor * m for m in design.multiples}
    starts |= {math.ceil(share * n) for share in design.shares if math.ceil(share * n) >= floor}
    return sorted(s for s in starts if s <= n)


def walk_starts(
    n: int,
    *,
    target: float,
    delta: float,
    min_support: int,
    design: WalkDesign = DEFAULT_WALKS,
) -> tuple[list[int], float]:
    """Where the walks start (items kept by their first candidate), and their level.

    One walk from a small start stops for good at an early unlucky error (a noisy
    top), even when larger sets would pass easily. So walks start at several sizes:
    multiples of the zero-error count and fixed shares of the evidence
    (``design``), each opening at delta / walks. Walked as one fallback sequence
    (triage.routing.certify), a walk that is still passing when the next one opens
    carries its level into it, so the level grows while the tests pass and is never
    more than delta in all. The number of walks is the largest k for which k starts
    qualify at level delta / k (a start qualifies when it holds at least the
    zero-error count at that level and no more than the n items); fewer qualifying
    starts means fewer walks at a laxer level. Depends on n and the settings only,
    never on correctness.
    """
    for walks in range(design.most_walks, 0, -1):
        level = delta / walks
        starts = _starts_at(n, target=target, level=level, min_support=min_support, design=design)
        if len(starts) >= walks:
            return starts[:walks], level
    return [first_support(target, delta, min_support)], delta


def _grid_counts(n: int, start: int, *, points: int, step: float | None) -> npt.NDArray[np.int64]:
    """How many items each candidate keeps: evenly spaced from ``start`` to all ``n``."""
    if step is not None:
        return np.unique(np.append(np.arange(start, n, max(1, round(step * n))), n))
    return np.unique(np.linspace(start, n, num=min(points, n - start + 1)).round().astype(np.int64))


def candidate_grid(
    confidences: npt.ArrayLike,
    *,
    start: int,
    points: int = GRID_POINTS,
    step: float | None = None,
) -> npt.NDArray[np.float64]:
    """Candidate thresholds, most conservative first, from confidences alone.

    The k-th candidate is the confidence of the ``count_k``-th most confident
    item, with counts evenly spaced from ``start`` to all items. Empty when
    there are fewer than ``start`` items.
    """
    return walk_sequence(confidences, [start], points=points, step=step)[0]


def walk_sequence(
    confidences: npt.ArrayLike,
    starts: list[int],
    *,
    points: int = GRID_POINTS,
    step: float | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The walks as one fixed sequence of candidates, and how many walks open at each.

    The candidates are the longest walk's grid (from the smallest start down to all
    items, as ``candidate_grid``) together with each walk's first candidate, the
    threshold that keeps exactly its start's count; ties merge, and so do their
    walks. A function of the confidences and the starts alone: the order and the
    openings are fixed before any correctness is looked at, as the fallback
    procedure needs (triage.routing.certify).
    """
    conf = np.sort(np.asarray(confidences, dtype=np.float64))[::-1]
    n = len(conf)
    if not starts or n < starts[0] or n == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    counts = np.union1d(
        _grid_counts(n, starts[0], points=points, step=step),
        [s for s in starts if s <= n],
    ).astype(np.int64)
    grid = np.unique(conf[counts - 1])[::-1]
    # Each start opens a walk at the candidate holding its count (its threshold's
    # place in the descending grid).
    opens = np.zeros(len(grid), dtype=np.int64)
    for s in starts:
        if s <= n:
            opens[int(np.searchsorted(-grid, -conf[s - 1]))] += 1
    return grid, opens
