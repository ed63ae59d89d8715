"""An item whose classification kills the worker's process, in a batch of good ones: the
batch is handed out again at once (reject_on_worker_lost), its items are then classified
in small groups, the poison one's group alone, and the poison item goes to review
unscored, with an alert, after TRIAGE_CLASSIFY_MAX_CRASHES (3) deaths: in its batch, in
its group, alone (triage.classify.redelivery). Before, it was redelivered forever and took its
whole batch down each time."""

from triage.api import ingest
from triage.api.intake import ItemIn
from triage.models import Item, ReviewTask
from triage.monitoring.models import Alert

from .conftest import report, wait_until

POISON = "tests.faults.slow_encoder.PoisonEncoder"


def test_a_poison_item_is_isolated_and_sent_to_review_and_its_batch_is_classified(
    categories, publish_to, running, tmp_path, capsys
):
    worker = running.worker(
        publish_to.url,
        pool="prefork",
        TRIAGE_ENCODER_CLASS=POISON,
        TRIAGE_TEST_POISON="EXPLODE",
    )
    n = 40
    ingest.ingest_items(
        items=[ItemIn(external_id=f"p-{i}", text=f"refund {i}") for i in range(n)]
        + [ItemIn(external_id="poison", text="refund EXPLODE")]
    )
    recovery = wait_until(
        lambda: not Item.objects.filter(status=Item.Status.RECEIVED).exists(),
        90,
        "every item to leave `received`",
    )
    assert worker.poll() is None, "the worker itself must survive its children's deaths"
    # In the batch, in its group, alone: TRIAGE_CLASSIFY_MAX_CRASHES.
    deaths = (tmp_path / "worker-0.log").read_text(errors="replace").count("exited with 'signal 9")
    assert deaths == 3
    poison = Item.objects.get(external_id="poison")
    assert poison.classify_started == 3
    assert poison.review_tasks.get().reason == ReviewTask.Reason.MODEL_UNAVAILABLE
    assert "poison" in Alert.objects.get(kind="classification_crashed").message
    # The good items were scored (cold start: to review on their similarity), once each.
    good = ReviewTask.objects.exclude(item=poison)
    assert good.count() == n
    assert set(good.values_list("reason", flat=True)) == {ReviewTask.Reason.COLD_START}
    report(
        capsys,
        f"a poison item in a batch of {n + 1}: {deaths} worker deaths (batch, group, alone), "
        f"{n} items classified, the poison one to review with an alert, {recovery:.1f}s "
        "after ingest",
    )
