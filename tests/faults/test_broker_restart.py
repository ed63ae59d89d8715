"""The broker (a private redis-server, without persistence) stopped and restarted while
items are being ingested: every request is answered, every item stored once, and the
hand-offs the outage lost are re-queued by the stuck-item sweep within its bound."""

import time

from django.db.models import Count
from django.test import Client

from triage.models import Item

from .conftest import report, wait_until

# Short, so the test need not wait the production bound (120 s + 30 s): the sweep runs in
# the worker's own beat every SWEEP seconds and re-queues items STUCK_AFTER seconds old.
STUCK_AFTER, SWEEP = 2, 1


def test_a_broker_restart_during_ingest_loses_nothing(
    categories, token, publish_to, running, capsys
):
    running.worker(
        publish_to.url,
        beat=True,
        TRIAGE_STUCK_AFTER_SECONDS=str(STUCK_AFTER),
        TRIAGE_STUCK_SWEEP_SECONDS=str(SWEEP),
    )
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    rounds, size = 24, 20
    statuses = []
    restarted_at = 0.0
    started = time.monotonic()
    for r in range(rounds):
        if r == 8:
            publish_to.stop()  # everything queued so far is lost with it
        if r == 16:
            # Nothing could be handed off while it was down (nor re-queued by the sweep).
            lost = Item.objects.filter(
                status=Item.Status.RECEIVED, external_id__regex=r"^b(8|9|1[0-5])-"
            )
            assert lost.count() == 8 * size
            publish_to.start()
            restarted_at = time.monotonic()
        batch = [{"external_id": f"b{r}-{i}", "text": f"server down {r} {i}"} for i in range(size)]
        response = client.post("/api/items", batch, content_type="application/json", **headers)
        statuses.append(response.status_code)
    ingest_seconds = time.monotonic() - started
    # Stored whatever the broker did: the hand-off is after the commit, and a failed one
    # is logged, not raised.
    assert statuses == [201] * rounds
    assert Item.objects.count() == rounds * size
    recovered_after = wait_until(
        lambda: not Item.objects.filter(status=Item.Status.RECEIVED).exists(),
        60,
        "the sweep to re-queue the lost hand-offs",
    )
    recovery = time.monotonic() - restarted_at
    per_item = Item.objects.annotate(p=Count("predictions")).values_list("p", flat=True)
    assert sorted(set(per_item)) == [1]  # each classified once
    report(
        capsys,
        f"broker stopped during 8 of {rounds} batch requests, then restarted: all 201 "
        f"({ingest_seconds:.1f}s in all); the {8 * size} hand-offs lost were re-queued by the "
        "sweep; everything "
        f"classified {recovery:.1f}s after the restart ({recovered_after:.1f}s after the last "
        f"request; sweep every {SWEEP}s, stuck after {STUCK_AFTER}s)",
    )
