"""HTTP batch ingest for benchmarks/scale.py (or alone): items/s through gunicorn with the
COPY path (triage.api.ingest_copy) beside the ORM path (TRIAGE_INGEST_COPY_MIN=0) in the
same run, and the classification hand-off counted: every stored item must be queued
exactly once, read back from the broker's queue (a private redis-server no worker reads).

    .venv/bin/python benchmarks/_scale_ingest.py --ingest-items 40000    # alone: ~2 minutes
"""

import argparse
import base64
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _scale_load import Step, sentence  # noqa: E402
from _scale_services import in_threads, percentile, request, start_gunicorn  # noqa: E402


def queued_item_ids(broker: str) -> Counter[int]:
    """How many times each item id was handed to classification: the classify_items
    messages waiting in the broker's default queue (read, not consumed)."""
    import redis

    client = redis.Redis.from_url(broker)
    counts: Counter[int] = Counter()
    for raw in client.lrange("celery", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] != "triage.classify.tasks.classify_items":
            continue
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        counts.update(args[0])
    return counts


def check_handoff(broker: str, prefix: str) -> tuple[int, int]:
    """(items stored under `prefix`, of which queued exactly once); raises if any item was
    queued twice or not at all."""
    from triage.models import Item

    stored = set(Item.objects.filter(external_id__startswith=prefix).values_list("pk", flat=True))
    counts = queued_item_ids(broker)
    once = {pk for pk in stored if counts.get(pk) == 1}
    if once != stored:
        missing = len(stored - set(counts))
        twice = sum(1 for pk in stored if counts.get(pk, 0) > 1)
        raise SystemExit(f"scale: hand-off: {missing:,} stored items never queued, {twice:,} twice")
    return len(stored), len(once)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used (Linux /proc), those gone ignored."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def serving_pids(gunicorn_pid: int | None) -> list[int]:
    """The gunicorn workers and every other backend of this database: whose CPU an
    ingest costs (this process's own backend left out)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        backends = [row[0] for row in cursor.fetchall()]
    workers = []
    if gunicorn_pid is not None:
        path = Path(f"/proc/{gunicorn_pid}/task/{gunicorn_pid}/children")
        workers = [int(pid) for pid in path.read_text().split()]
    return workers + backends


def run_ingest(
    url: str, token: str, bodies: list[list[dict[str, str]]], gunicorn_pid: int | None = None
) -> dict[str, float]:
    # One small batch per client first: every worker has imported and connected.
    warm = [[{"external_id": f"warm-{time.time_ns()}-{k}", "text": "warm up"}] for k in range(8)]
    in_threads(8, lambda k: [request(f"{url}/api/items", "POST", warm[k], token)[0]])
    before = serving_pids(gunicorn_pid)
    cpu_before = cpu_seconds(before)

    def ingest(k: int) -> list[float]:
        out = []
        for body in bodies[k::8]:
            started = time.perf_counter()
            status, raw = request(f"{url}/api/items", "POST", body, token)
            out.append((time.perf_counter() - started) * 1000)
            if status != 201:
                raise SystemExit(f"scale: POST /api/items answered {status}: {raw[:200]!r}")
        return out

    batch_ms, wall = in_threads(8, ingest)
    after = serving_pids(gunicorn_pid)
    cpu = cpu_seconds(after) - cpu_before + cpu_seconds([p for p in before if p not in after])
    items = sum(map(len, bodies))
    return {
        "items_per_s": items / wall,
        "batch_p95": percentile(batch_ms, 95),
        "cpu_ms_per_1000": cpu / items * 1e6,
    }


def raw_copy_cpu(bodies: list[list[dict[str, str]]]) -> dict[str, float]:
    """benchmarks/scale.py's raw COPY of the same items, with the CPU it took: this
    process's and its backend's."""
    from django.db import connection
    from scale import raw_copy_rate

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    cpu_before = time.process_time() + cpu_seconds([backend])
    rate = raw_copy_rate(bodies)
    cpu = time.process_time() + cpu_seconds([backend]) - cpu_before
    return {"items_per_s": rate, "cpu_ms_per_1000": cpu / sum(map(len, bodies)) * 1e6}


def measure_orm_path(work: Path, token: str, batches: int, rng: random.Random) -> dict:
    """The same kind of batches (new ids) through the ORM path: the baseline."""
    bodies = [
        [{"external_id": f"orm-{b}-{i}", "text": sentence(rng)} for i in range(1000)]
        for b in range(batches)
    ]
    os.environ["TRIAGE_INGEST_COPY_MIN"] = "0"
    try:
        gunicorn, url = start_gunicorn(work, workers=4)
    finally:
        del os.environ["TRIAGE_INGEST_COPY_MIN"]
    try:
        with Step(f"HTTP ingest, ORM path (baseline): {batches} batches of 1,000, 8 clients"):
            figures = run_ingest(url, token, bodies, gunicorn.pid)
    finally:
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(60)
    return figures


def report(copy_path: dict, orm: dict, raw: dict, stored: int, once: int) -> str:
    return (
        "HTTP batch ingest (1,000 a request, 8 clients, gunicorn 4 workers):\n"
        f"  COPY path {copy_path['items_per_s']:,.0f} items/s (batch p95 "
        f"{copy_path['batch_p95']:.0f} ms), {copy_path['items_per_s'] / raw['items_per_s']:.1%} "
        f"of raw COPY {raw['items_per_s']:,.0f}/s; {stored:,} stored, {once:,} of them queued "
        "for classification exactly once\n"
        f"  ORM path (baseline) {orm['items_per_s']:,.0f} items/s (batch p95 "
        f"{orm['batch_p95']:.0f} ms)\n"
        "  CPU per 1,000 items (a figure other work on the machine disturbs less): "
        f"COPY path {copy_path['cpu_ms_per_1000']:.0f} ms, ORM path "
        f"{orm['cpu_ms_per_1000']:.0f} ms (web workers + database backends); raw COPY "
        f"{raw['cpu_ms_per_1000']:.0f} ms (its Python client + backend)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432/")
    parser.add_argument("--name", default="triage_scale_ingest")
    parser.add_argument("--ingest-items", type=int, default=40_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    from _django_env import fresh_postgres_database, setup_django
    from _scale_services import start_redis

    os.environ["DATABASE_URL"] = fresh_postgres_database(args.server, args.name)
    work = Path(tempfile.mkdtemp(prefix="triage-scale-ingest-"))
    redis_process, broker = start_redis(work)
    os.environ["CELERY_BROKER_URL"] = broker
    try:
        setup_django(workdir=str(work))
        from django.db import connections

        from triage.models import ApiToken, Category

        for slug in ("request", "information", "not_relevant"):
            Category.objects.create(slug=slug, name=slug)
        _, token = ApiToken.issue("bench-ingest")
        rng = random.Random(0)
        batches = max(8, args.ingest_items // 1000)
        bodies = [
            [{"external_id": f"ing-{b}-{i}", "text": sentence(rng)} for i in range(1000)]
            for b in range(batches)
        ]
        connections.close_all()
        gunicorn, url = start_gunicorn(work, workers=4)
        try:
            with Step(f"HTTP ingest, COPY path: {batches} batches of 1,000, 8 clients"):
                copy_path = run_ingest(url, token, bodies, gunicorn.pid)
        finally:
            os.killpg(gunicorn.pid, signal.SIGTERM)
            gunicorn.wait(60)
        stored, once = check_handoff(broker, "ing-")
        orm = measure_orm_path(work, token, batches, rng)
        with Step("raw COPY of the same items"):
            raw = raw_copy_cpu(bodies)
        print("\n" + report(copy_path, orm, raw, stored, once))
    finally:
        redis_process.terminate()
        redis_process.wait(10)
        from django.db import connections

        connections.close_all()
        if not args.keep:
            import psycopg
            from psycopg import sql

            with psycopg.connect(args.server.rstrip("/") + "/postgres", autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(args.name)
                    )
                )


if __name__ == "__main__":
    main()
