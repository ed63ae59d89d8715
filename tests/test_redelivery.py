"""A classify batch whose worker died: its items are retried in groups, then alone, and
an item that keeps killing its worker goes to review unscored with an alert
(triage.classify.redelivery).

A dead worker cannot be staged in-process; it is what `plan_start` without a finish
leaves behind (the start is counted before the work). tests/faults/test_poison_batch.py
kills real workers."""

import pytest

from triage.classify import redelivery, service, tasks
from triage.models import Item, ReviewTask
from triage.monitoring.models import Alert

from .factories import make_item
from .test_security_settings import run

pytestmark = pytest.mark.django_db
GROUP = redelivery.SUSPECT_GROUP


@pytest.fixture
def calls(monkeypatch):
    """The item ids of each classification, in order (the real one still runs)."""
    seen: list[list[int]] = []
    real = service.classify_items

    def recording(*, item_ids, unscored=False):
        seen.append(sorted(item_ids) + (["unscored"] if unscored else []))
        return real(item_ids=item_ids, unscored=unscored)

    monkeypatch.setattr(service, "classify_items", recording)
    return seen


def batch(n=3):
    return [make_item(f"refund my card {i}").pk for i in range(n)]


def died(ids):
    """A delivery whose worker died mid-batch: the start counted, nothing finished."""
    start = redelivery.plan_start(ids)
    assert start.now == sorted(ids), "the test meant this delivery to run these items"


def test_a_first_delivery_classifies_the_batch_together(categories, calls):
    ids = batch(GROUP + 4)
    tasks.classify_items(ids)
    assert calls == [ids]
    assert not Item.objects.pending().exists()


def test_after_a_dead_worker_the_batch_is_retried_in_small_groups(categories, calls):
    ids = batch(GROUP + 4)
    died(ids)
    tasks.classify_items(ids)  # the broker hands the batch out again
    assert calls == [ids[:GROUP], ids[GROUP:]]
    assert not Item.objects.pending().exists()
    assert not Alert.objects.exists()


def test_after_its_group_died_too_each_item_is_classified_alone(categories, calls):
    ids = batch(3)
    died(ids)  # in the batch
    died(ids)  # in its group
    tasks.classify_items(ids)
    assert calls == [[pk] for pk in ids]
    assert not Item.objects.pending().exists()


def test_new_items_beside_suspects_stay_together(categories, calls):
    ids = batch(GROUP + 4)
    died(ids[:2])
    died(ids[:2])
    tasks.classify_items(ids)
    assert calls == [ids[:1], ids[1:2], ids[2:]]


def test_an_item_that_killed_its_worker_max_times_goes_to_review_unscored(categories, calls):
    poison, *others = batch()
    died([poison, *others])  # in its batch
    died([poison, *others])  # in its group
    died([poison])  # alone
    tasks.classify_items([poison, *others])
    assert calls == [[pk] for pk in others] + [[poison, "unscored"]]
    task = ReviewTask.objects.get(item_id=poison)
    assert task.reason == ReviewTask.Reason.MODEL_UNAVAILABLE
    alert = Alert.objects.get(kind="classification_crashed")
    assert Item.objects.get(pk=poison).external_id in alert.message
    assert not Item.objects.pending().exists()


def test_one_death_short_of_the_limit_is_retried_alone_not_given_up(categories, calls):
    (item,) = batch(1)
    died([item])
    died([item])
    tasks.classify_items([item])
    assert calls == [[item]]
    assert not Alert.objects.exists()
    assert ReviewTask.objects.filter(item_id=item).exclude(reason="model_unavailable").exists()


def test_an_exception_is_not_a_dead_worker_its_start_is_taken_back(categories, monkeypatch):
    ids = batch(GROUP + 4)

    def fails(*, item_ids, unscored=False):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(service, "classify_items", fails)
    with pytest.raises(RuntimeError):
        tasks.classify_items(ids)
    assert set(Item.objects.filter(pk__in=ids).values_list("classify_started", flat=True)) == {0}
    # So the retry runs the batch together again, as the first delivery did.
    assert redelivery.plan_start(ids).now == ids


def test_a_limit_under_three_is_refused_at_start_up():
    done = run(
        ["manage.py", "check"], DEBUG="1", TRIAGE_ENV_FILE="", TRIAGE_CLASSIFY_MAX_CRASHES="2"
    )
    assert done.returncode != 0
    assert "TRIAGE_CLASSIFY_MAX_CRASHES=2 is under 3" in done.stderr
