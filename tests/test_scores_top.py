"""Scores.top (triage.classify.scoring): each row's most probable labels, found for every
row in one sort and kept, as the classify path reads them row by row."""

import numpy as np

from triage.classify.scoring import Scores


def test_each_rows_top_labels_most_probable_first_with_their_probabilities():
    probs = np.random.default_rng(3).dirichlet(np.ones(5), size=40)
    scores = Scores(("a", "b", "c", "d", "e"), probs)
    for row in range(len(probs)):
        order = np.argsort(-probs[row], kind="stable")[:3]
        assert scores.top(row, 3) == [(scores.labels[i], float(probs[row, i])) for i in order]
        assert all(type(p) is float for _, p in scores.top(row, 3))


def test_ties_keep_the_label_order_and_k_beyond_the_labels_gives_them_all():
    scores = Scores(("x", "y", "z"), np.array([[0.25, 0.5, 0.25], [1 / 3, 1 / 3, 1 / 3]]))
    assert scores.top(0, 3) == [("y", 0.5), ("x", 0.25), ("z", 0.25)]
    assert [label for label, _ in scores.top(1, 5)] == ["x", "y", "z"]
    assert scores.top(1, 1) == [("x", 1 / 3)]
