"""Two integrations send batches with the same new ids at the same moment, through
gunicorn with 4 worker processes: every request succeeds, each item is stored and
classified once (this deadlocked into 500s before inserts were ordered and retried)."""

import threading
import time

from django.db.models import Count

from triage.models import Item

from .conftest import report


def test_concurrent_batches_with_overlapping_new_ids_through_gunicorn(
    categories, token, running, capsys
):
    server = running.gunicorn(workers=4)
    rounds, size = 8, 200
    statuses: list[int] = []
    lock = threading.Lock()

    def send(batch: list[dict[str, str]], barrier: threading.Barrier) -> None:
        barrier.wait()
        answer = server.request("POST", "/api/items", batch, token)
        with lock:
            statuses.append(answer.status)

    started = time.monotonic()
    for r in range(rounds):
        batch = [{"external_id": f"o{r}-{i:03d}", "text": f"refund {i}"} for i in range(size)]
        # Two pairs per round, in opposite orders, sharing every id.
        barrier = threading.Barrier(4)
        threads = [
            threading.Thread(target=send, args=(b, barrier))
            for b in [batch, batch[::-1], batch[: size // 2][::-1], batch[size // 2 :]]
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    seconds = time.monotonic() - started

    assert len(statuses) == 4 * rounds and set(statuses) <= {200, 201}, statuses
    assert Item.objects.count() == rounds * size
    # Handed off and classified once each (tasks run inside gunicorn here).
    per_item = Item.objects.annotate(p=Count("predictions")).values_list("p", flat=True)
    assert sorted(set(per_item)) == [1]
    retries = server.log().count("retrying (attempt")
    report(
        capsys,
        f"{4 * rounds} concurrent batches sharing new ids through gunicorn (4 workers): all "
        f"2xx, {rounds * size} items stored and classified once each, {retries} deadlock "
        f"retries, {seconds:.1f}s",
    )
