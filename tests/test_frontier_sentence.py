"""The what-if's sentence when a raw threshold's one-look bound clears a target that failed."""

import numpy as np

from triage.routing import policy as routing
from triage.routing.frontier import why_raw_beats_target
from triage.routing.scopes import RuleReport


def report(threshold: float | None, target: float = 0.9) -> RuleReport:
    rule = routing.Rule(threshold, routing.Mode.TARGET_PRECISION, target)
    return RuleReport("billing", rule, coverage=None, precision=None, delta=0.05 / 3)


def evidence() -> tuple[np.ndarray, np.ndarray]:
    # 400 predictions: the top 200 are 95% right (tied in pairs), the rest 50%.
    confidences = np.repeat(np.linspace(1.0, 0.0, 200), 2)
    rng = np.random.default_rng(3)
    correct = np.concatenate([rng.random(200) < 0.95, rng.random(200) < 0.5])
    return confidences, correct


def test_a_failed_target_beside_a_clearing_raw_threshold_is_explained():
    confidences, correct = evidence()
    sentence = why_raw_beats_target(confidences, correct, report(None), delta=0.05, min_support=30)
    assert sentence.startswith("A raw threshold of ")
    assert "checked once at 95%" in sentence and "its walks open at" in sentence
    # The threshold named selects whole ties: its share is of all 400 items.
    share = int(sentence.split(" at ")[1].split("%")[0])
    assert 20 <= share <= 60


def test_nothing_to_explain_when_certified_or_when_no_raw_threshold_clears():
    confidences, correct = evidence()
    assert why_raw_beats_target(confidences, correct, report(0.8), delta=0.05, min_support=30) == ""
    assert (
        why_raw_beats_target(
            confidences, np.zeros(400, dtype=bool), report(None), delta=0.05, min_support=30
        )
        == ""
    )
