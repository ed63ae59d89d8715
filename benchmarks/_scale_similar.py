"""Similar items at scale, for benchmarks/scale.py (or alone): the panel's query through
gunicorn (4 workers, 8 clients) at every open task of the database, with the memory of
each web worker, for the shared index files (reviews.similar_files, one mapped copy per
host) beside the old per-process matrices (benchmarks/_similar_per_process.py) in the
same run.

The open tasks' items get clustered vectors (2,000 topics, neighbours above the bulk
floor of 0.8) in the encoder's space; the resolved items keep scale.py's.

    .venv/bin/python benchmarks/_scale_similar.py --open-tasks 200000   # alone: ~5 minutes
"""

import argparse
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _scale_load import Step  # noqa: E402
from _scale_services import in_threads, percentile, request, start_gunicorn  # noqa: E402

VARIANTS = {
    "per-process matrices (before)": "benchmarks._similar_per_process:make_application()",
    "shared mapped files (now)": "triage.wsgi",
}


def embed_open_tasks(encoder_id: str, dim: int) -> int:
    """Clustered unit vectors for every open task's item that has none."""
    import numpy as np
    from _scale_load import copy_rows
    from django.db import connection

    from triage.models import Embedding, ReviewTask

    items = list(
        ReviewTask.objects.open()
        .exclude(item__embeddings__encoder=encoder_id)
        .order_by("item_id")
        .values_list("item_id", flat=True)
    )
    rng = np.random.default_rng(11)
    topics = rng.standard_normal((2000, dim)).astype(np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)

    def vector(k: int) -> bytes:
        v = topics[k % len(topics)] + 0.4 * rng.standard_normal(dim).astype(np.float32) / np.sqrt(
            dim
        )
        return (v / np.linalg.norm(v)).astype(np.float32).tobytes()

    count = copy_rows(
        Embedding,
        ["item_id", "encoder", "vector"],
        ((item_id, encoder_id, vector(k)) for k, item_id in enumerate(items)),
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE triage_embedding")
    return count


def admin_session() -> str:
    """A logged-in admin's session cookie: an admin may open any task's panel."""
    from django.contrib.auth.models import User
    from django.test import Client

    user, _ = User.objects.get_or_create(
        username="bench-similar-admin", defaults={"is_superuser": True, "is_staff": True}
    )
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def worker_memory(master_pid: int) -> list[dict[str, float]]:
    """Each gunicorn worker's RSS, PSS (shared pages divided among the processes mapping
    them) and anonymous memory, in MB, from /proc/<pid>/smaps_rollup."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    out = []
    for pid in children:
        fields = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, value = line.split(":", 1)
            fields[name] = int(value.split()[0]) / 1024
        out.append({k: fields[k] for k in ("Rss", "Pss", "Anonymous")})
    return out


def measure_variant(work: Path, app: str, task_ids: list[int], cookie: str, queries: int) -> dict:
    # The old path's first panel per worker loads every vector: minutes at a million items.
    gunicorn, url = start_gunicorn(work, workers=4, app=app, timeout=900)
    try:

        def get(pk: int) -> float:
            started = time.perf_counter()
            status, body = request(f"{url}/reviews/tasks/{pk}/similar", cookie=cookie, timeout=900)
            if status != 200:
                raise SystemExit(f"scale: the panel of task {pk} answered {status}: {body[:200]!r}")
            return (time.perf_counter() - started) * 1000

        # Each worker's first panel (the old path loads its matrices then): 4 at a time,
        # until every worker has answered at least once.
        first, _ = in_threads(4, lambda k: [get(pk) for pk in task_ids[k * 4 : k * 4 + 4]])
        each = max(1, queries // 8)
        sample = task_ids[16 : 16 + each * 8]
        timings, wall = in_threads(
            8, lambda k: [get(pk) for pk in sample[k * each : (k + 1) * each]]
        )
        memory = worker_memory(gunicorn.pid)
    finally:
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(60)
    return {
        "first_max_ms": max(first),
        "p50": percentile(timings, 50),
        "p95": percentile(timings, 95),
        "queries": len(timings),
        "per_s": len(timings) / wall,
        "memory": memory,
    }


def index_query_ms(encoder_id: str, queries: int) -> dict[str, list[float]]:
    """The open-tasks index query alone (no view, no database reads after the load), in
    this process: the shared file beside a per-process matrix, over the same vectors."""
    import numpy as np
    from _similar_per_process import PerProcessIndex

    from reviews.similar import open_index
    from triage.models import Embedding, ReviewTask

    items = ReviewTask.objects.open().values_list("item_id", flat=True)[:queries]
    vectors = [
        (item_id, np.frombuffer(bytes(blob), dtype=np.float32))
        for item_id, blob in Embedding.objects.filter(
            encoder=encoder_id, item_id__in=list(items)
        ).values_list("item_id", "vector")
    ]
    out: dict[str, list[float]] = {}
    for label, index in (("before", PerProcessIndex("open")), ("now", open_index)):
        index.nearest(encoder_id, vectors[0][1], count=49)  # the old one loads here
        timings = []
        for item_id, vector in vectors:
            started = time.perf_counter()
            index.nearest(encoder_id, vector, count=196, exclude=item_id)
            timings.append((time.perf_counter() - started) * 1000)
        out[label] = timings
    return out


def measure_similar(work: Path, encoder: Any, queries: int = 400) -> dict[str, Any]:
    """Both variants over the database's open tasks; figures for report()."""
    from django.db import connections

    from reviews.similar_files import build_index
    from triage.models import ReviewTask

    with Step("similar items: vectors for the open tasks"):
        embedded = embed_open_tasks(encoder.encoder_id, encoder.dim)
    open_tasks = ReviewTask.objects.open().count()
    with Step("similar items: build the shared files (the worker's job)") as building:
        build_index("open", encoder.encoder_id)
        build_index("resolved", encoder.encoder_id)
    task_ids = list(
        ReviewTask.objects.open()
        .filter(reason=ReviewTask.Reason.LOW_CONFIDENCE)
        .values_list("pk", flat=True)
    )
    random.Random(3).shuffle(task_ids)
    cookie = admin_session()
    connections.close_all()
    with Step("similar items: the index query alone, in this process"):
        alone = index_query_ms(encoder.encoder_id, queries)
    figures: dict[str, Any] = {
        "open_tasks": open_tasks,
        "embedded": embedded,
        "build_s": building.seconds,
        "alone": alone,
    }
    for label, app in VARIANTS.items():
        with Step(f"similar items panel, {label}"):
            figures[label] = measure_variant(work, app, task_ids, cookie, queries)
    return figures


def report(figures: dict[str, Any]) -> str:
    lines = [
        f"similar-items panel at {figures['open_tasks']:,} open tasks (gunicorn, 4 workers, "
        f"8 clients; the files built in {figures['build_s']:.0f}s by the worker's task):"
    ]
    alone = figures["alone"]
    lines.append(
        "  the open-tasks index query alone (196 nearest, in one process): "
        + "; ".join(
            f"{label} p50 {percentile(alone[label], 50):.1f} ms, "
            f"p95 {percentile(alone[label], 95):.1f} ms"
            for label in ("before", "now")
        )
    )
    for label in VARIANTS:
        run = figures[label]
        memory = run["memory"]
        per_worker = ", ".join(
            f"{m['Rss']:.0f}/{m['Pss']:.0f}/{m['Anonymous']:.0f}" for m in memory
        )
        lines.append(
            f"  {label}: p50 {run['p50']:.0f} ms, p95 {run['p95']:.0f} ms over {run['queries']} "
            f"panels ({run['per_s']:.0f}/s); slowest first panel {run['first_max_ms']:.0f} ms; "
            f"per worker RSS/PSS/anon MB {per_worker}; PSS of all workers "
            f"{sum(m['Pss'] for m in memory):,.0f} MB"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432/")
    parser.add_argument("--name", default="triage_scale_similar")
    parser.add_argument("--open-tasks", type=int, default=200_000)
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    args.items = args.open_tasks + args.examples + 1000 + 10_000
    args.analysts = 8
    import tempfile

    from _django_env import fresh_postgres_database, setup_django

    os.environ["DATABASE_URL"] = fresh_postgres_database(args.server, args.name)
    work = Path(tempfile.mkdtemp(prefix="triage-scale-similar-"))
    setup_django(workdir=str(work))
    from _scale_load import load

    with Step("load"):
        figures = load(args, random.Random(0))
    result = measure_similar(work, figures["encoder"], args.queries)
    print("\n" + report(result))
    from django.db import connections

    connections.close_all()
    if not args.keep:
        import psycopg
        from psycopg import sql

        with psycopg.connect(args.server.rstrip("/") + "/postgres", autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.name))
            )


if __name__ == "__main__":
    main()
