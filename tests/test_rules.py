"""Rules before the model, in the pure routing policy: tables, no database."""

import time

import pytest

from triage.routing.policy import (
    ItemRule,
    Policy,
    Reason,
    Route,
    Rule,
    RuleSyntaxError,
    ScoredItem,
    compile_pattern,
    decide_item,
)

RULES = (
    ItemRule("lawyers", Route.REVIEW, keywords=("lawyer", "attorney")),
    ItemRule("refund-words", Route.AUTO, category="billing", pattern=r"\brefund(s|ed)?\b"),
    ItemRule(
        "vip", Route.AUTO, category="outage", metadata_field="tier", metadata_values=("vip", 1)
    ),
    ItemRule("flagged", Route.REVIEW, metadata_field="flag", metadata_values=(True,)),
    ItemRule("old-desk", Route.AUTO, category="legacy", keywords=("fax",)),
)
POLICY = Policy(default=Rule(0.9), item_rules=RULES, inactive=frozenset({"legacy"}))
CONFIDENT_OTHER = ScoredItem("other", 0.99)


@pytest.mark.parametrize(
    ("text", "metadata", "route", "reason", "category", "rule"),
    [
        ("my Attorney called", {}, Route.REVIEW, Reason.RULE, None, "lawyers"),
        # The first matching rule wins: lawyers (review) comes before refund-words.
        ("lawyer asks for a refund", {}, Route.REVIEW, Reason.RULE, None, "lawyers"),
        ("please REFUNDED now", {}, Route.AUTO, Reason.RULE, "billing", "refund-words"),
        ("refundable deposit", {}, Route.AUTO, Reason.ABOVE_THRESHOLD, "other", None),
        ("hello", {"tier": "vip"}, Route.AUTO, Reason.RULE, "outage", "vip"),
        ("hello", {"tier": 1}, Route.AUTO, Reason.RULE, "outage", "vip"),
        ("hello", {"tier": 1.0}, Route.AUTO, Reason.RULE, "outage", "vip"),  # JSON numbers
        ("hello", {"tier": "1"}, Route.AUTO, Reason.ABOVE_THRESHOLD, "other", None),
        ("hello", {"tier": True}, Route.AUTO, Reason.ABOVE_THRESHOLD, "other", None),
        ("hello", {"tier": "VIP"}, Route.AUTO, Reason.ABOVE_THRESHOLD, "other", None),
        ("hello", {"flag": True}, Route.REVIEW, Reason.RULE, None, "flagged"),
        ("hello", {"flag": 1}, Route.AUTO, Reason.ABOVE_THRESHOLD, "other", None),
        ("hello", {"other": "vip"}, Route.AUTO, Reason.ABOVE_THRESHOLD, "other", None),
        # A rule pointing at an inactive category does not auto-route either.
        ("send a fax", {}, Route.REVIEW, Reason.CATEGORY_INACTIVE, None, "old-desk"),
    ],
)
def test_rules_table(text, metadata, route, reason, category, rule):
    decision = decide_item(
        text=text, metadata=metadata, scored=CONFIDENT_OTHER, policy=POLICY, draw=0.99
    )
    assert (decision.route, decision.reason, decision.category, decision.rule) == (
        route,
        reason,
        category,
        rule,
    )


@pytest.mark.parametrize(
    ("scored", "route", "reason", "category"),
    [
        (None, Route.REVIEW, Reason.MODEL_UNAVAILABLE, None),  # scoring failed
        (ScoredItem("legacy", 0.999), Route.REVIEW, Reason.CATEGORY_INACTIVE, None),
        (ScoredItem("other", 0.5), Route.REVIEW, Reason.BELOW_THRESHOLD, None),
        (ScoredItem("other", 0.95), Route.AUTO, Reason.ABOVE_THRESHOLD, "other"),
    ],
)
def test_without_a_matching_rule_the_model_decides(scored, route, reason, category):
    decision = decide_item(text="hello", metadata={}, scored=scored, policy=POLICY, draw=0.99)
    assert (decision.route, decision.reason, decision.category, decision.rule) == (
        route,
        reason,
        category,
        None,
    )


def test_rules_still_decide_when_the_model_is_unavailable():
    decision = decide_item(text="a refund", metadata={}, scored=None, policy=POLICY, draw=0.5)
    assert (decision.route, decision.category) == (Route.AUTO, "billing")


def test_a_pathological_regex_on_a_long_text_returns_quickly():
    # (a+)+$ against "aaaa…b" takes exponential time in a backtracking engine (Python's
    # re needs minutes at 30 characters); RE2 is linear in the text.
    rule = ItemRule("evil", Route.REVIEW, pattern=r"(a+)+$")
    text = "a" * 20_000 + "b"
    started = time.perf_counter()
    assert not rule.matches(text, {})
    assert rule.matches("a" * 20_000, {})
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("pattern", ["(unclosed", "(?<=behind)x", "a{2,1}", r"(\w)\1"])
def test_patterns_re2_cannot_run_in_linear_time_are_refused(pattern):
    with pytest.raises(RuleSyntaxError):
        compile_pattern(pattern)
