import random

import numpy as np
import pytest

from reviews.trust.models import HeldLabel, Quarantine
from reviews.trust.quarantine import (
    end_quarantine,
    evaluate_analyst,
    reject_labels,
    release_labels,
)
from tests.factories import make_user
from triage.access import ADMINS, SENIORS
from triage.models import ReviewTask
from triage.models.audit_log import AuditLog
from triage.stats import mixture_upper, rate_above_e_value, rate_below_e_value
from triage.training.models import TrainingExample
from triage.training.snapshot import snapshot_examples

from .trust_helpers import confident_task, decide

CATEGORIES = ["billing", "outage", "other"]


# --- The statistics, simulated (no database) ------------------------------------------


def test_the_agreement_rule_rarely_quarantines_an_analyst_above_the_floor():
    """An honest analyst agrees 85% of the time (floor 80%), with 3 to 60 checks.

    The rule (an e-value reaching 1/alpha) quarantines at most about alpha of them; the
    naive rule "raw agreement below the floor" quarantines a large share: short runs are
    noisy. (Repeated looks: tests/reviews/test_trusted_verdicts.py.)"""
    rng = np.random.default_rng(7)
    checks = rng.integers(3, 61, size=4000)
    agreed = rng.binomial(checks, 0.85)
    by_rule = np.mean(
        [rate_below_e_value(k, n, 0.8) >= 100 for k, n in zip(agreed, checks, strict=True)]
    )
    naive = np.mean(agreed / checks < 0.8)
    assert by_rule <= 0.01
    assert naive > 0.15


def test_the_overturn_rule_rarely_fires_on_an_analyst_with_the_peers_rate():
    """Peers overturn 3% of confident predictions over 600 decisions; an honest analyst
    with the same rate and 5 to 40 decisions. The rule: about never; raw rate above
    three times the peers' raw rate: about one honest analyst in ten."""
    rng = np.random.default_rng(9)
    peers_x = rng.binomial(600, 0.03, size=3000)
    own_n = rng.integers(5, 41, size=3000)
    own_x = rng.binomial(own_n, 0.03)
    by_rule = np.mean(
        [
            rate_above_e_value(x, n, 3 * mixture_upper(px, 600, 0.005)) >= 200
            for x, n, px in zip(own_x, own_n, peers_x, strict=True)
        ]
    )
    naive = np.mean(own_x / own_n > 3 * peers_x / 600)
    assert by_rule <= 0.01
    assert naive > 0.05


# --- The rules on recorded decisions ---------------------------------------------------


@pytest.mark.django_db
def test_a_short_unlucky_run_does_not_quarantine_an_honest_analyst(categories, settings):
    """Two of three confident predictions overturned (67%, peers about 3%): the naive rule
    would quarantine; three decisions are not enough evidence."""
    settings.TRIAGE_SECOND_REVIEW_SHARE = 0.0
    peer = make_user()
    for i in range(100):
        decide(confident_task(categories["billing"]), peer, "outage" if i < 3 else "billing")
    analyst = make_user()
    decide(confident_task(categories["billing"]), analyst, "outage")
    decide(confident_task(categories["billing"]), analyst, "other")
    decide(confident_task(categories["billing"]), analyst, "billing")
    assert evaluate_analyst(analyst) is None
    assert not Quarantine.objects.exists()


def _work_checks(rng, truths, reviewers, senior):
    """Second reviews by honest analysts (never the first), disagreements by the senior."""
    while True:
        task = ReviewTask.objects.open().order_by("pk").first()
        if task is None:
            return
        truth = truths[task.item_id]
        if task.reason == ReviewTask.Reason.DISAGREEMENT:
            decide(task, senior, truth)
        else:
            decide(
                task, rng.choice([r for r in reviewers if r.pk != task.excluded_reviewer_id]), truth
            )


@pytest.mark.django_db
def test_an_analyst_who_flips_confident_labels_is_quarantined_and_kept_out_of_training(
    categories,
):
    """Simulated: the model is right 97% of the time at 95% confidence; three honest
    analysts label the truth; one flips 30% of confident labels. Every confident overturn
    is second-reviewed by an honest analyst; disagreements are settled by a senior."""
    rng = random.Random(11)
    honest = [make_user(f"honest{i}") for i in range(3)]
    flipper = make_user("flipper")
    senior = make_user("senior", group=SENIORS)
    truths: dict[int, str] = {}
    for _ in range(30):
        for analyst in [flipper, *honest]:
            truth = rng.choice(CATEGORIES)
            wrong = [c for c in CATEGORIES if c != truth]
            model = truth if rng.random() < 0.97 else rng.choice(wrong)
            task = confident_task(categories[model], confidence=0.95, text=f"{truth} {len(truths)}")
            truths[task.item_id] = truth
            label = truth
            if analyst == flipper and rng.random() < 0.3:
                label = rng.choice([c for c in CATEGORIES if c != model])
            decide(task, analyst, label)
        _work_checks(rng, truths, honest, senior)

    quarantine = Quarantine.objects.get(ended_at__isnull=True)
    assert quarantine.analyst == flipper
    assert quarantine.rule == Quarantine.Rule.LOW_AGREEMENT
    assert AuditLog.objects.filter(action="quarantine", detail__analyst="flipper").exists()
    held = set(HeldLabel.objects.values_list("example_id", flat=True))
    assert len(held) > 10  # the flipper's later labels, flipped or not

    snapshot = snapshot_examples()
    assert not held & {ex.pk for ex in snapshot.all}
    # Flips made before the quarantine were overturned by their second reviews: every
    # label the next model sees is the truth.
    assert all(ex.category.slug == truths[ex.item_id] for ex in snapshot.all)
    assert len(snapshot.all) > 80


# --- Admins release or reject -----------------------------------------------------------


@pytest.fixture
def quarantined(categories):
    analyst = make_user("suspect")
    quarantine = Quarantine.objects.create(analyst=analyst, rule=Quarantine.Rule.OVERTURNS)
    reviews = [decide(confident_task(categories["billing"]), analyst, "billing") for _ in range(6)]
    return quarantine, reviews


@pytest.mark.django_db
def test_a_quarantined_analysts_new_labels_are_held_out_of_snapshots(quarantined, categories):
    quarantine, reviews = quarantined
    assert quarantine.labels.filter(state=HeldLabel.State.HELD).count() == 6
    assert TrainingExample.objects.trusted().count() == 0


@pytest.mark.django_db
def test_released_labels_join_training_and_the_release_is_logged(quarantined):
    quarantine, reviews = quarantined
    assert release_labels(quarantine=quarantine, actor="user:boss") == 6
    assert TrainingExample.objects.trusted().count() == 6
    entry = AuditLog.objects.get(action="quarantine.release")
    assert entry.actor == "user:boss" and len(entry.detail["labels"]) == 6


@pytest.mark.django_db
def test_rejected_labels_never_train_and_their_items_go_back_for_a_blind_review(quarantined):
    quarantine, reviews = quarantined
    assert reject_labels(quarantine=quarantine, actor="user:boss") == 6
    assert TrainingExample.objects.active().count() == 0
    requeued = ReviewTask.objects.open().filter(reason=ReviewTask.Reason.SECOND_REVIEW)
    assert requeued.count() == 6
    assert {t.excluded_reviewer_id for t in requeued} == {quarantine.analyst_id}
    assert AuditLog.objects.filter(action="quarantine.reject").count() == 1


@pytest.mark.django_db
def test_after_the_quarantine_ends_new_labels_flow_again(quarantined, categories):
    quarantine, _ = quarantined
    end_quarantine(quarantine=quarantine, actor="user:boss")
    decide(confident_task(categories["billing"]), quarantine.analyst, "billing")
    assert TrainingExample.objects.trusted().count() == 1
    assert AuditLog.objects.filter(action="quarantine.end").exists()


@pytest.mark.django_db
def test_admins_release_labels_from_the_quality_page(client, quarantined):
    quarantine, _ = quarantined
    admin = make_user(group=ADMINS)
    client.force_login(admin)
    page = client.get("/reviews/quality/")
    assert page.status_code == 200
    assert "suspect" in page.content.decode()
    response = client.post(f"/reviews/quality/quarantines/{quarantine.pk}", {"action": "release"})
    assert response.status_code == 302
    assert TrainingExample.objects.trusted().count() == 6
    bad = client.post(f"/reviews/quality/quarantines/{quarantine.pk}", {"action": "forgive"})
    assert bad.status_code == 400 and "unknown action" in bad.content.decode()


@pytest.mark.django_db
def test_analysts_cannot_open_the_quality_page_or_act_on_quarantines(client, quarantined):
    quarantine, _ = quarantined
    client.force_login(make_user())
    assert client.get("/reviews/quality/").status_code == 403
    response = client.post(f"/reviews/quality/quarantines/{quarantine.pk}", {"action": "release"})
    assert response.status_code == 403
    assert TrainingExample.objects.trusted().count() == 0


@pytest.mark.django_db
def test_overturning_confident_predictions_far_more_than_peers_quarantines(categories):
    """No second review is in yet, so only the overturn rule can fire."""
    for i, peer in enumerate([make_user() for _ in range(3)]):
        for j in range(60):
            decide(confident_task(categories["billing"]), peer, "outage" if j == i else "billing")
    suspect = make_user("suspect")
    # Three in five overturned (peers: one in sixty). The anytime-valid rule needs more than
    # the one-look bound did: two in five over 30 decisions is no longer enough evidence.
    for j in range(30):
        decide(confident_task(categories["billing"]), suspect, "outage" if j % 5 < 3 else "billing")
    quarantine = Quarantine.objects.get(analyst=suspect)
    assert quarantine.rule == Quarantine.Rule.OVERTURNS
    assert quarantine.evidence["peers_confident"] == 180
    assert not Quarantine.objects.exclude(analyst=suspect).exists()
