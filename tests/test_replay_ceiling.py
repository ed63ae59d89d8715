"""The replay ceiling's oracle and point rules (benchmarks/replay_ceiling.py): the figures
that say what no valid rule can reach rest on them, so they are checked by brute force."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.replay_ceiling import oracle_share, point_thresholds
from triage.routing.evidence import HoldoutPredictions

rows = st.lists(
    st.tuples(st.floats(0.3, 1.0, allow_nan=False), st.booleans()), min_size=0, max_size=60
)


@settings(max_examples=200, deadline=None)
@given(rows, st.sampled_from([0.5, 0.8, 0.9]))
def test_oracle_share_is_the_largest_precise_top(sample, target) -> None:  # type: ignore[no-untyped-def]
    confidence = np.array([c for c, _ in sample], dtype=float)
    correct = np.array([ok for _, ok in sample], dtype=bool)
    chosen = oracle_share(confidence, correct, target)
    order = np.argsort(-confidence, kind="stable")
    best = max(
        (k for k in range(1, len(order) + 1) if correct[order[:k]].mean() >= target), default=0
    )
    assert chosen.sum() == best
    assert set(np.flatnonzero(chosen)) == set(order[:best].tolist())
    if best:
        assert correct[chosen].mean() >= target


def test_point_threshold_is_the_lowest_confidence_still_precise() -> None:
    # Predicted "a" with confidences 0.99 … 0.60; the two lowest are wrong, then 0.95 is.
    confidences = [0.99, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6]
    truth = ["a", "b", "a", "a", "a", "a", "a", "b", "b"]
    probs = np.array([[c, 1 - c] for c in confidences])
    evidence = HoldoutPredictions.from_scores(("a", "b"), probs, truth)
    thresholds = point_thresholds(evidence, 0.8)
    # Top 7: 6 of 7 right (0.857); top 8: 6 of 8 (0.75). So the threshold is 0.70.
    assert thresholds == {"a": 0.7, "b": None}
    assert point_thresholds(evidence, 0.9) == {"a": 0.99, "b": None}
