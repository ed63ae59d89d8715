"""A Celery worker SIGKILLed in the middle of classifying a batch: the batch is handed
out again after the broker's visibility timeout and classified once, nothing half-written."""

import signal

from django.db.models import Count

from triage.api import ingest
from triage.api.intake import ItemIn
from triage.models import Item, Prediction, ReviewTask

from .conftest import report, wait_until

SLOW = "tests.faults.slow_encoder.SlowEncoder"
# Short, so the test need not wait the production 300 s: what is tested is that the
# broker hands the task out again once its visibility timeout has passed.
VISIBILITY = "3"


def test_a_worker_killed_mid_classification_loses_nothing(
    categories, publish_to, running, tmp_path, capsys
):
    marker = tmp_path / "encoding-started"
    broker_env = {
        "TRIAGE_VISIBILITY_TIMEOUT_SECONDS": VISIBILITY,
        "TRIAGE_BROKER_RESTORE_SECONDS": "1",
    }
    doomed = running.worker(
        publish_to.url,
        TRIAGE_ENCODER_CLASS=SLOW,
        TRIAGE_TEST_ENCODE_MARKER=str(marker),
        TRIAGE_TEST_ENCODE_SECONDS="60",
        **broker_env,
    )
    n = 300
    ingest.ingest_items(items=[ItemIn(external_id=f"k-{i}", text=f"refund {i}") for i in range(n)])
    wait_until(marker.exists, 60, "the worker to start encoding")

    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    # Killed mid-batch: nothing of it was written, every item is still waiting.
    assert Item.objects.filter(status=Item.Status.RECEIVED).count() == n
    assert not Prediction.objects.exists() and not ReviewTask.objects.exists()

    running.worker(publish_to.url, **broker_env)
    recovery = wait_until(
        lambda: not Item.objects.filter(status=Item.Status.RECEIVED).exists(),
        60,
        "the batch to be classified by the new worker",
    )
    # Once each: one prediction and one review task per item (cold start: all to review).
    per_item = Item.objects.annotate(p=Count("predictions", distinct=True)).values_list(
        "p", flat=True
    )
    assert sorted(set(per_item)) == [1]
    assert ReviewTask.objects.count() == n
    report(
        capsys,
        f"worker SIGKILLed mid-classification of {n} items: all classified once, "
        f"{recovery:.1f}s after the kill (visibility timeout {VISIBILITY}s, new worker's start "
        "included)",
    )
