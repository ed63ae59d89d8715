"""Audits are blind (they look like any other task) and are never starved in the queue."""

import random
import re
import threading

import pytest
from django.db import connection
from django.utils import timezone

from reviews.claims import claim_next_task
from tests.factories import make_item, make_prediction, make_task, make_user
from triage.models import Item, ReviewTask, RoutingPolicy

pytestmark = pytest.mark.django_db

AUDIT = ReviewTask.Reason.AUDIT_SAMPLE
LOW = ReviewTask.Reason.LOW_CONFIDENCE


def _card(client, analyst, task):
    client.force_login(analyst)
    body = client.post("/reviews/claim", HTTP_HX_REQUEST="true").content.decode()
    assert f'data-task-id="{task.pk}"' in body
    return body


def _keys(body):
    """Every decision button as (key, category), in order."""
    return re.findall(
        r'<button type="submit" name="category" value="([^"]+)" data-key="([^"]+)"', body
    )


def _task_with_prediction(reason, categories, *, route="auto", confidence=0.99):
    item = make_item("refund my card please", status=Item.Status.ROUTED)
    make_prediction(item, categories["billing"], confidence=confidence, route=route)
    return make_task(item, reason=reason, priority=0 if reason == AUDIT else 10)


def test_an_audit_card_has_no_suggestion_no_badge_no_highlight_and_the_same_keys(
    client, analyst, categories
):
    audit = _task_with_prediction(AUDIT, categories)
    audit_card = _card(client, analyst, audit)
    ReviewTask.objects.filter(pk=audit.pk).update(completed_at=timezone.now())
    other = _task_with_prediction(LOW, categories, route="review", confidence=0.6)
    other_card = _card(client, analyst, other)

    # The ordinary card does show the model's answer (the audit hides it) ...
    assert "Model suggests" in other_card and "data-suggested" in other_card
    # ... the audit card shows none of it, and nothing names it an audit.
    for anchor in ["Model suggests", "suggested", "99%", "badge", "Audit", "audit"]:
        assert anchor not in audit_card, anchor
    assert _keys(audit_card) == _keys(other_card) != []


def test_blind_review_hides_the_suggestion_on_every_task(client, analyst, categories):
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"blind_review": True})
    task = _task_with_prediction(LOW, categories, route="review", confidence=0.6)
    card = _card(client, analyst, task)
    assert "Model suggests" not in card and "suggested" not in card
    assert len(_keys(card)) == len(categories)


def _claim_and_finish(user, n, rng):
    reasons = []
    for _ in range(n):
        task = claim_next_task(user=user, rng=rng)
        if task is None:
            break
        reasons.append(task.reason)
        ReviewTask.objects.filter(pk=task.pk).update(completed_at=timezone.now())
    return reasons


def test_audits_reach_analysts_in_the_documented_share_despite_a_backlog(categories, settings):
    settings.TRIAGE_AUDIT_SHARE = 0.25
    for _ in range(300):
        make_task(reason=LOW, priority=10)
    audits = [make_task(reason=AUDIT, priority=0) for _ in range(80)]
    reasons = _claim_and_finish(make_user(), 200, random.Random(7))
    share = reasons.count(AUDIT) / len(reasons)
    # Binomial(200, 0.25): 99.9% of runs land within ±3.3 standard deviations (0.10).
    assert 0.15 <= share <= 0.35, share
    # Audits are taken oldest first, so none waits forever behind newer ones.
    claimed = list(
        ReviewTask.objects.filter(reason=AUDIT, completed_at__isnull=False)
        .order_by("completed_at", "id")
        .values_list("pk", flat=True)
    )
    assert claimed == [a.pk for a in audits[: len(claimed)]]


def test_with_one_kind_waiting_every_claim_takes_it(categories):
    for _ in range(5):
        make_task(reason=AUDIT)
    assert _claim_and_finish(make_user(), 10, random.Random(1)) == [AUDIT] * 5
    for _ in range(5):
        make_task(reason=LOW)
    assert _claim_and_finish(make_user(), 10, random.Random(1)) == [LOW] * 5


@pytest.mark.needs_postgres("SKIP LOCKED")
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_of_mixed_tasks_never_hand_out_a_task_twice(categories):
    tasks = {make_task(reason=AUDIT if i % 3 == 0 else LOW).pk for i in range(45)}
    users = [make_user() for _ in range(6)]
    claimed: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(len(users))

    def work(user, seed):
        rng = random.Random(seed)
        try:
            start.wait()
            while (task := claim_next_task(user=user, rng=rng)) is not None:
                with lock:
                    claimed.append(task.pk)
                ReviewTask.objects.filter(pk=task.pk).update(completed_at=timezone.now())
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(u, i)) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(claimed) == len(set(claimed)), "a task was claimed twice"
    assert set(claimed) == tasks
