"""Only trusted verdicts guard (issue 18, items 3 and 4).

- A quarantined analyst's audit verdicts are held out of live precision and the drift
  watch until an admin releases them; rejected, the item goes back for a blind audit by
  someone else.
- Quarantine is anytime-valid: looked at after every decision for 90 days, an honest
  analyst at the floor is quarantined at most about α of the time.
"""

import numpy as np
import pytest
from django.utils import timezone
from scipy.stats import beta

from reviews.trust.models import HeldLabel, Quarantine
from reviews.trust.quarantine import (
    AgreementEvidence,
    OverturnEvidence,
    reject_labels,
    release_labels,
)
from tests.factories import make_item, make_prediction, make_task, make_user
from triage.models import Item, ReviewTask, RoutingPolicy
from triage.monitoring.live import live_report
from triage.monitoring.models import AuditSample, CategoryWatch
from triage.stats import (
    mixture_lower,
    mixture_upper,
    rate_above_e_value,
    rate_below_e_value,
)

from .trust_helpers import decide

ALPHA = 0.01
FLOOR = 0.8


# --- Anytime-valid quarantine, simulated (no database) -----------------------------------


def _agreement_fires(agreed: int, checks: int) -> bool:
    """The production rule on these counts (AgreementEvidence, as agreement_evidence fills it)."""
    return AgreementEvidence(
        checks=checks,
        agreed=agreed,
        upper=mixture_upper(agreed, checks, ALPHA),
        floor=FLOOR,
        e_value=rate_below_e_value(agreed, checks, FLOOR),
        alpha=ALPHA,
    ).fires


def test_an_honest_analyst_at_the_floor_is_rarely_quarantined_over_90_days_of_looks():
    """Three second-review checks a day for 90 days, agreeing exactly 80% of the time (the
    floor), the rule looked at after every check. Quarantined in at most about α of the
    runs; the one-look Clopper–Pearson rule of before, on the same runs and its 30-day
    window, quarantined several times α."""
    rng = np.random.default_rng(18)
    runs, per_day, days = 500, 3, 90
    new = old = 0
    for _ in range(runs):
        agreed = rng.random(per_day * days) < FLOOR
        day = np.repeat(np.arange(days), per_day)
        total = np.cumsum(agreed)
        fired_new = False
        for t in range(len(agreed)):
            if _agreement_fires(int(total[t]), t + 1):
                fired_new = True
                break
        # The old rule on its 30-day window, at every look (vectorised: the same bound).
        first = np.searchsorted(day, day - 29)
        window_x = total - np.where(first > 0, total[np.maximum(first - 1, 0)], 0)
        window_n = np.arange(1, len(agreed) + 1) - first
        upper = beta.ppf(1 - ALPHA, window_x + 1, np.maximum(window_n - window_x, 1e-9))
        fired_old = bool(np.any((window_x < window_n) & (upper < FLOOR)))
        new += fired_new
        old += fired_old
    # α = 1% of 500 runs is 5; 10 leaves room for sampling noise (sd about 2.2).
    assert new <= 10, new
    assert old >= 3 * max(new, 5), (old, new)


def test_the_overturn_rule_runs_at_its_stated_level_not_twice_it():
    """An analyst overturning exactly three times the peers' true rate (the worst case the
    null allows) over 90 days of looks, peers at 3%: quarantined in at most about α."""
    rng = np.random.default_rng(19)
    runs, per_day, days = 200, 3, 90
    fired = 0
    for _ in range(runs):
        own = rng.random(per_day * days) < 0.09
        peers = rng.random(per_day * days * 10) < 0.03
        own_total, peers_total = np.cumsum(own), np.cumsum(peers)
        for t in range(len(own)):
            px, pn = int(peers_total[10 * t + 9]), 10 * (t + 1)
            peers_upper = mixture_upper(px, pn, ALPHA / 2)
            evidence = OverturnEvidence(
                confident=t + 1,
                overturned=int(own_total[t]),
                lower=mixture_lower(int(own_total[t]), t + 1, ALPHA / 2),
                peers_confident=pn,
                peers_overturned=px,
                peers_upper=peers_upper,
                ratio=3,
                e_value=rate_above_e_value(int(own_total[t]), t + 1, 3 * peers_upper),
                alpha=ALPHA,
            )
            if evidence.fires:
                fired += 1
                break
    assert fired <= 6, fired  # α = 1% of 200 is 2; sd about 1.4


def test_the_rules_still_catch_an_analyst_far_below_the_floor():
    """Power, the price of looking often: at 50% agreement, 40 checks are enough about 80%
    of the time (the one-look bound: 97%), 60 checks nearly always."""
    rng = np.random.default_rng(8)
    at_40 = np.mean([_agreement_fires(int(k), 40) for k in rng.binomial(40, 0.5, size=1000)])
    at_60 = np.mean([_agreement_fires(int(k), 60) for k in rng.binomial(60, 0.5, size=1000)])
    assert at_40 > 0.7 and at_60 > 0.95, (at_40, at_60)


# --- Held audit verdicts -------------------------------------------------------------------


def _audit_task(category):
    """An auto-routed item drawn for a blind audit (as classification leaves it)."""
    item = make_item("audit me", status=Item.Status.ROUTED, final_category=category)
    prediction = make_prediction(item, category)
    AuditSample.objects.create(item=item, prediction=prediction, category=category, probability=1.0)
    return make_task(item, reason=ReviewTask.Reason.AUDIT_SAMPLE)


@pytest.fixture
def suspect(categories):
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"target_precision": 0.75})
    analyst = make_user("suspect")
    quarantine = Quarantine.objects.create(
        analyst=analyst, rule=Quarantine.Rule.LOW_AGREEMENT, started_at=timezone.now()
    )
    billing = categories["billing"]
    # Twelve "wrong" verdicts on billing's auto-actions: enough to suspend it if they counted.
    for _ in range(12):
        decide(_audit_task(billing), analyst, "outage")
    return quarantine


def _billing(report):
    (row,) = [c for c in report.categories if c.slug == "billing"]
    return row


@pytest.mark.django_db
def test_a_quarantined_analysts_audit_verdicts_neither_suspend_nor_count(suspect):
    """Issue 18, item 3: these verdicts used to count in live precision and the watch; twelve
    of them suspended a healthy category."""
    watch = CategoryWatch.objects.filter(category__slug="billing").first()
    assert watch is None or (watch.suspended_at is None and watch.outcomes == 0)
    assert _billing(live_report()).since_change.precision.audited == 0
    assert AuditSample.objects.filter(held=True).count() == 12
    assert HeldLabel.objects.filter(audit_sample__isnull=False).count() == 12


@pytest.mark.django_db
def test_released_verdicts_count_and_the_watch_looks_again(suspect):
    assert release_labels(quarantine=suspect, actor="user:boss") == 12
    assert not AuditSample.objects.filter(held=True).exists()
    watch = CategoryWatch.objects.get(category__slug="billing")
    assert watch.outcomes == 12
    assert watch.suspended_at is not None  # twelve wrong of twelve, now trusted
    assert _billing(live_report()).since_change.precision.audited == 12


@pytest.mark.django_db
def test_rejected_verdicts_are_cleared_and_go_back_for_a_blind_audit_by_someone_else(
    suspect, categories
):
    assert reject_labels(quarantine=suspect, actor="user:boss") == 12
    samples = AuditSample.objects.all()
    assert all(s.correct is None and s.audited_at is None and not s.held for s in samples)
    again = ReviewTask.objects.open().filter(reason=ReviewTask.Reason.AUDIT_SAMPLE)
    assert again.count() == 12
    assert {t.excluded_reviewer_id for t in again} == {suspect.analyst_id}
    # Someone trusted audits one: that verdict counts.
    decide(again.first(), make_user("trusted"), "billing")
    assert AuditSample.objects.filter(correct=True, held=False).count() == 1
    assert CategoryWatch.objects.get(category__slug="billing").outcomes == 1
