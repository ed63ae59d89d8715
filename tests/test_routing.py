import pytest

from triage.routing.policy import (
    Decision,
    Mode,
    Policy,
    Reason,
    Route,
    Rule,
    ScoredItem,
    audit_draw,
    decide,
)

POLICY = Policy(
    default=Rule(0.9),
    rules={
        "billing": Rule(0.7),
        "legal": Rule(0.99),
        "fraud": Rule(0.81, Mode.TARGET_PRECISION, target=0.95, lower_bound=0.953),
        "spam": Rule(None, Mode.TARGET_PRECISION, target=0.99, note="best achievable is 91%"),
    },
)


@pytest.mark.parametrize(
    ("label", "confidence", "route", "reason", "threshold"),
    [
        ("outage", 0.95, Route.AUTO, Reason.ABOVE_THRESHOLD, 0.9),
        ("outage", 0.90, Route.AUTO, Reason.ABOVE_THRESHOLD, 0.9),  # at the threshold
        ("outage", 0.8999, Route.REVIEW, Reason.BELOW_THRESHOLD, 0.9),
        ("billing", 0.75, Route.AUTO, Reason.ABOVE_THRESHOLD, 0.7),  # lower override
        ("billing", 0.69, Route.REVIEW, Reason.BELOW_THRESHOLD, 0.7),
        ("legal", 0.98, Route.REVIEW, Reason.BELOW_THRESHOLD, 0.99),  # stricter override
        ("legal", 0.995, Route.AUTO, Reason.ABOVE_THRESHOLD, 0.99),
        ("outage", 0.0, Route.REVIEW, Reason.BELOW_THRESHOLD, 0.9),
        ("outage", 1.0, Route.AUTO, Reason.ABOVE_THRESHOLD, 0.9),
        ("fraud", 0.85, Route.AUTO, Reason.ABOVE_THRESHOLD, 0.81),  # derived from a target
        ("fraud", 0.80, Route.REVIEW, Reason.BELOW_THRESHOLD, 0.81),
        ("spam", 1.0, Route.REVIEW, Reason.TARGET_UNREACHABLE, None),  # never auto-acts
    ],
)
def test_threshold_table(label, confidence, route, reason, threshold):
    decision = decide(ScoredItem(label, confidence), POLICY, draw=0.99)
    assert (decision.route, decision.reason, decision.threshold) == (route, reason, threshold)
    assert not decision.audit


def test_the_decision_records_the_mode_and_bound_that_produced_it():
    decision = decide(ScoredItem("fraud", 0.9), POLICY, draw=0.99)
    assert decision == Decision(
        Route.AUTO,
        Reason.ABOVE_THRESHOLD,
        0.81,
        False,
        Mode.TARGET_PRECISION,
        0.953,
        category="fraud",
    )
    raw = decide(ScoredItem("billing", 0.9), POLICY, draw=0.99)
    assert (raw.mode, raw.lower_bound) == (Mode.THRESHOLD, None)


def test_cold_start_always_goes_to_review():
    decision = decide(ScoredItem("outage", 0.999, cold_start=True), POLICY, draw=0.99)
    assert decision.route is Route.REVIEW
    assert decision.reason is Reason.COLD_START


@pytest.mark.parametrize(("draw", "audited"), [(0.0, True), (0.049, True), (0.05, False)])
def test_audit_sample_is_auto_routed_and_also_reviewed(draw, audited):
    policy = Policy(default=Rule(0.5), audit_rate=0.05)
    decision = decide(ScoredItem("outage", 0.9), policy, draw=draw)
    assert decision.route is Route.AUTO
    assert decision.audit is audited
    assert decision.reason is (Reason.AUDIT_SAMPLE if audited else Reason.ABOVE_THRESHOLD)


def test_low_confidence_items_are_never_audit_samples():
    policy = Policy(default=Rule(0.9), audit_rate=1.0)
    decision = decide(ScoredItem("outage", 0.5), policy, draw=0.0)
    assert decision.route is Route.REVIEW
    assert not decision.audit


KEY = b"a test key"


def test_audit_draw_is_stable_and_spread():
    assert audit_draw("abc", key=KEY) == audit_draw("abc", key=KEY)
    draws = [audit_draw(f"item-{i}", key=KEY) for i in range(2000)]
    assert all(0 <= d < 1 for d in draws)
    share = sum(d < 0.1 for d in draws) / len(draws)
    assert 0.07 < share < 0.13


@pytest.mark.parametrize(
    ("label", "draw", "audited", "probability"),
    [
        ("billing", 0.19, True, 0.2),  # a low-volume category audited at its floor rate
        ("billing", 0.21, False, None),
        ("outage", 0.04, True, 0.05),  # no rate of its own: the global rate
        ("outage", 0.06, False, None),
    ],
)
def test_audits_use_each_category_rate_and_record_it(label, draw, audited, probability):
    policy = Policy(default=Rule(0.5), audit_rate=0.05, audit_rates={"billing": 0.2})
    decision = decide(ScoredItem(label, 0.9), policy, draw=draw)
    assert decision.route is Route.AUTO
    assert decision.audit is audited
    assert decision.audit_probability == probability


@pytest.mark.parametrize("confidence", [0.0, 0.5, 1.0])
def test_a_suspended_category_sends_everything_to_review(confidence):
    policy = Policy(default=Rule(0.5), audit_rate=1.0, suspended=frozenset({"outage"}))
    decision = decide(ScoredItem("outage", confidence), policy, draw=0.0)
    assert (decision.route, decision.reason, decision.audit) == (
        Route.REVIEW,
        Reason.SUSPENDED,
        False,
    )
    other = decide(ScoredItem("billing", 1.0), policy, draw=0.5)
    assert other.route is Route.AUTO


def test_the_audit_draw_depends_on_the_key_and_refuses_none():
    draws = {key: [audit_draw(f"item-{i}", key=key) for i in range(50)] for key in (b"a", b"b")}
    assert draws[b"a"] != draws[b"b"]
    with pytest.raises(ValueError, match="non-empty key"):
        audit_draw("abc", key=b"")
