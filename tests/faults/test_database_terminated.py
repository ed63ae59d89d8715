"""Database connections terminated (pg_terminate_backend) while gunicorn serves batch
ingests: answers are 2xx or 503 with Retry-After (JSON), never a 500; no batch is
half-written; a retry stores what a 503 did not; the next request after the burst works."""

import threading
import time
from collections import Counter
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from triage.classify import service, sweep
from triage.models import Item

from .conftest import report, terminate_other_backends, wait_until


def test_terminated_connections_mid_request_give_503s_and_nothing_half_written(
    categories, token, running, capsys
):
    server = running.gunicorn(workers=2, threads=4)
    size = 50
    answers: dict[str, list] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def batch(name: str) -> list[dict[str, str]]:
        return [{"external_id": f"{name}-{i}", "text": f"refund my card {i}"} for i in range(size)]

    def sender(n: int) -> None:
        k = 0
        while not stop.is_set():
            name = f"s{n}-{k}"
            answer = server.request("POST", "/api/items", batch(name), token)
            with lock:
                answers[name] = [answer]
            k += 1

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    terminated, started = 0, time.monotonic()
    # Terminate every connection of the test database, over and over, until requests have
    # demonstrably been cut mid-way (a 503), or 20 s have passed.
    while time.monotonic() - started < 20:
        time.sleep(0.2)
        terminated += terminate_other_backends()
        with lock:
            cut = sum(a[0].status == 503 for a in answers.values())
        if cut >= 3 and time.monotonic() - started > 2:
            break
    burst_ended = time.monotonic()
    # The first request after the burst: a dropped connection is replaced, not a 500.
    first_ok = server.request("POST", "/api/items", batch("after"), token)
    recovery = time.monotonic() - burst_ended
    stop.set()
    for t in threads:
        t.join(60)
    assert first_ok.status == 201, first_ok.body

    statuses = [a[0].status for a in answers.values()]
    assert set(statuses) <= {200, 201, 503}, statuses
    unavailable = [a[0] for a in answers.values() if a[0].status == 503]
    assert unavailable, "no request was cut mid-way: the fault was not exercised"
    for answer in unavailable:
        assert answer.headers.get("Retry-After") == "5"
        assert "database is unavailable" in answer.body["error"]
    # All or nothing per batch, whatever the answer.
    stored = Counter(
        eid.rsplit("-", 1)[0] for eid in Item.objects.values_list("external_id", flat=True)
    )
    for name, [answer] in answers.items():
        assert stored.get(name, 0) in {0, size}, (name, answer.status, stored.get(name))
        if answer.status != 503:
            assert stored.get(name) == size
    # A client retries its 503s (idempotent): then everything is stored exactly once.
    for name, [answer] in answers.items():
        if answer.status == 503:
            assert server.request("POST", "/api/items", batch(name), token).status in {200, 201}
    assert Item.objects.count() == (len(answers) + 1) * size
    # A hand-off cut with its connection left items `received`: the sweep re-queues them.
    later = timezone.now() + timedelta(hours=1)
    service.classify_items(item_ids=sweep.requeue_stuck_items(now=later))
    wait_until(lambda: not Item.objects.pending().exists(), 10, "every item classified")
    per_item = Item.objects.annotate(p=Count("predictions")).values_list("p", flat=True)
    assert sorted(set(per_item)) == [1]
    assert "Internal Server Error" not in server.log()
    report(
        capsys,
        f"{terminated} database connections terminated during {len(answers)} batch requests: "
        f"{len(unavailable)} answered 503 + Retry-After, the rest 2xx, none 500, none half-"
        f"written; the next request after the burst succeeded in {recovery * 1000:.0f} ms",
    )
