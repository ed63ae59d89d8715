"""The analysts' workspace at scale, on PostgreSQL: similar items and export.

    .venv/bin/python benchmarks/workspace.py --postgres postgres://postgres@127.0.0.1:5432
    .venv/bin/python benchmarks/workspace.py --postgres ... --resolved 20000 --export-rows 100000

Measures, each beside a baseline from the same run:
- similar past items (reviews.similar.similar_resolved, the panel's query including its
  database reads) p50/p95 over --queries items at --resolved resolved items with
  384-dimension clustered vectors, by brute force and by the FAISS inverted file (with
  its recall@5 against the exact answer); baseline: the naive way, loading every
  resolved vector from the database on each query;
- the export (`manage.py export --dataset items --format csv`) of --export-rows rows:
  rows/s and the subprocess's peak RSS, beside the same export of a tenth of the rows
  (constant memory means the same peak) and a naive export that lists every row first;
- claim / render / decide with 8 concurrent analysts over --open-tasks open tasks, with
  the number of double claims: benchmarks/analyst_load.py (helper 12c's, the one
  measurement scale.py uses too), beside one analyst alone.

A fresh database `triage_bench_workspace` is created on the server (and dropped at the
end unless --keep). Rows are loaded with COPY, not the ORM.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # analyst_load, as scale.py does
from benchmarks._django_env import ROOT, fresh_postgres_database, setup_django  # noqa: E402

DIM = 384
SPACE = "bench-space:v1"
DB_NAME = "triage_bench_workspace"


def copy_items(cursor, prefix: str, count: int, *, resolved: bool, category_id: int) -> None:
    rng = np.random.default_rng(len(prefix) + count)
    words = ["water", "food", "help", "road", "storm", "flood", "tent", "medical", "need", "please"]
    columns = (
        "external_id, text, metadata, source, received_at, status, final_category_id, "
        "decided_by, decided_at, classify_attempts"
    )
    with cursor.copy(f"COPY triage_item ({columns}) FROM STDIN") as copy:
        for i in range(count):
            text = " ".join(rng.choice(words, size=16))
            copy.write_row(
                (
                    f"{prefix}-{i:07d}",
                    f"{text} #{i}",
                    '{"channel": "sms"}',
                    "api",
                    "2026-01-01T00:00:00Z",
                    "resolved" if resolved else "in_review",
                    category_id if resolved else None,
                    "user:bench" if resolved else "",
                    "2026-01-02T00:00:00Z" if resolved else None,
                    0,
                )
            )


def clustered_vectors(count: int, centers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    picks = centers[rng.integers(0, len(centers), size=count)]
    vectors = picks + 1.2 * rng.standard_normal((count, DIM)).astype(np.float32) / np.sqrt(DIM)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def copy_embeddings(cursor, prefix: str, vectors: np.ndarray) -> list[int]:
    cursor.execute(
        "SELECT id FROM triage_item WHERE external_id LIKE %s ORDER BY external_id", [prefix + "-%"]
    )
    ids = [row[0] for row in cursor.fetchall()]
    with cursor.copy("COPY triage_embedding (item_id, encoder, vector) FROM STDIN") as copy:
        for item_id, vector in zip(ids, vectors, strict=True):
            copy.write_row((item_id, SPACE, vector.tobytes()))
    return ids


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def bench_similar(resolved: int, queries: int, naive_queries: int) -> None:
    from django.conf import settings
    from django.db import connection

    from reviews.similar import resolved_index, similar_resolved
    from triage.models import Category, Embedding, Item

    category = Category.objects.create(slug="request", name="Request")
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((200, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    resolved_vectors = clustered_vectors(resolved, centers, rng)
    query_vectors = clustered_vectors(queries, centers, rng)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.cursor
        copy_items(raw, "r", resolved, resolved=True, category_id=category.pk)
        resolved_ids = np.array(copy_embeddings(raw, "r", resolved_vectors))
        copy_items(raw, "q", queries, resolved=False, category_id=category.pk)
        copy_embeddings(raw, "q", query_vectors)
        cursor.execute("ANALYZE")
    print(
        f"loaded {resolved:,} resolved items with vectors in {time.perf_counter() - started:.1f} s"
    )
    items = list(Item.objects.filter(external_id__startswith="q-").order_by("external_id"))
    exact = [
        set(resolved_ids[np.argsort(-(resolved_vectors @ q))[:5]].tolist()) for q in query_vectors
    ]

    def run(label: str) -> tuple[list[float], float, float]:
        from reviews.similar_files import build_index

        resolved_index.clear()
        started = time.perf_counter()
        build_index("resolved", SPACE)  # the worker's job: the file every process maps
        similar_resolved(items[0])
        cold = time.perf_counter() - started
        timings, hits = [], 0
        for item, truth in zip(items, exact, strict=True):
            started = time.perf_counter()
            found = similar_resolved(item, count=5)
            timings.append((time.perf_counter() - started) * 1000)
            hits += len({s.item.pk for s in found} & truth)
        recall = hits / (5 * len(items))
        print(
            f"  {label}: p50 {percentile(timings, 50):.1f} ms, p95 {percentile(timings, 95):.1f} ms"
            f" over {len(timings)} queries; recall@5 {recall:.3f}; file build + first query "
            f"{cold:.2f} s"
        )
        return timings, recall, cold

    print(f"\nsimilar past items at {resolved:,} resolved items ({DIM} dimensions), 5 nearest:")
    matrix_mb = resolved * DIM * 4 / 2**20
    exact_max = settings.TRIAGE_SIMILAR_EXACT_MAX
    settings.TRIAGE_SIMILAR_EXACT_MAX = resolved + 1
    run(f"exact, one-list index file ({matrix_mb:.0f} MB, mapped)")
    settings.TRIAGE_SIMILAR_EXACT_MAX = min(exact_max, resolved)
    nprobe = settings.TRIAGE_SIMILAR_NPROBE
    run(f"FAISS inverted file (the default above {exact_max:,} rows), nprobe {nprobe}")
    print("  (target: p95 <= 50 ms)")

    # The worst case for an inverted file: vectors with no structure at all (real sentence
    # embeddings cluster by topic, like the synthetic ones above).
    from reviews.similar import _Matrix

    noise = rng.standard_normal((resolved, DIM)).astype(np.float32)
    matrix = _Matrix(encoder="noise")
    matrix.append(list(range(resolved)), [v.tobytes() for v in noise])
    probes = rng.standard_normal((50, DIM)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    unit = matrix.vectors[:resolved]
    hits = 0
    for probe in probes:
        truth = set(np.argsort(-(unit @ probe))[:5].tolist())
        positions, _ = matrix.search(probe, 5)
        hits += len(truth & set(positions.tolist()))
    print(f"  FAISS recall@5 on structureless random vectors (worst case): {hits / 250:.2f}")

    real_recall(resolved)

    def naive(item: Item) -> list[int]:
        query = np.frombuffer(bytes(Embedding.objects.get(item=item).vector), dtype=np.float32)
        rows = list(
            Embedding.objects.filter(encoder=SPACE, item__status="resolved").values_list(
                "item_id", "vector"
            )
        )
        matrix = np.stack([np.frombuffer(bytes(v), dtype=np.float32) for _, v in rows])
        top = np.argsort(-(matrix @ query))[:5]
        return [rows[i][0] for i in top]

    naive_timings = []
    for item in items[:naive_queries]:
        started = time.perf_counter()
        naive(item)
        naive_timings.append((time.perf_counter() - started) * 1000)
    print(
        f"  baseline, load every vector from the database per query: "
        f"p50 {statistics.median(naive_timings):.0f} ms over {len(naive_timings)} queries"
    )


def real_recall(at_rows: int) -> None:
    """FAISS recall@5 on the demo messages' real MiniLM vectors, when
    benchmarks/_embeddings.py has cached them (it takes minutes to fill)."""
    from django.conf import settings

    from reviews.similar import _Matrix

    caches = sorted((ROOT / "var" / "bench-cache").glob("disaster-*.npz"))
    if not caches:
        print("  (real vectors: run benchmarks/_embeddings.py once to measure recall on them)")
        return
    with np.load(caches[0]) as data:
        vectors = data["vectors"].astype(np.float32)
    matrix = _Matrix(encoder="real")
    matrix.append(list(range(len(vectors))), [v.tobytes() for v in vectors])
    unit = matrix.vectors[: matrix.size]
    rng = np.random.default_rng(5)
    probes = rng.choice(matrix.size, size=200, replace=False)
    exact_max, nprobe = settings.TRIAGE_SIMILAR_EXACT_MAX, settings.TRIAGE_SIMILAR_NPROBE
    settings.TRIAGE_SIMILAR_EXACT_MAX = 0
    lists = int(np.sqrt(matrix.size))
    try:
        # Scan the share of lists the default scans at `at_rows` rows (nprobe of ~sqrt(n)),
        # and half of it.
        share = nprobe / max(1, int(np.sqrt(at_rows)))
        for probe_lists in sorted({max(1, round(share * lists / 2)), max(1, round(share * lists))}):
            settings.TRIAGE_SIMILAR_NPROBE = probe_lists
            hits = 0
            for row in probes:
                truth = set(np.argsort(-(unit @ unit[row]))[:6].tolist()) - {int(row)}
                positions, _ = matrix.search(unit[row], 6)
                hits += len(truth & (set(positions.tolist()) - {int(row)}))
            print(
                f"  FAISS recall@5 on {matrix.size:,} real message vectors, nprobe {probe_lists}"
                f" of {lists} lists ({probe_lists / lists:.0%} scanned): {hits / 1000:.3f}"
            )
    finally:
        settings.TRIAGE_SIMILAR_EXACT_MAX, settings.TRIAGE_SIMILAR_NPROBE = exact_max, nprobe


def run_export(
    database_url: str, rows_wanted: str, output: Path, *, naive: bool
) -> dict[str, float]:
    """One export in its own process, so its peak RSS is its own."""
    code = (
        "import sys, time, csv\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from benchmarks._django_env import setup_django\n"
        "setup_django(workdir=sys.argv[4])\n"
        "from django.core.management import call_command\n"
        "from triage.models import Item\n"
        "limit = int(sys.argv[2])\n"
        "start = time.perf_counter()\n"
        "if sys.argv[5] == 'naive':\n"
        "    rows = list(Item.objects.order_by('pk').values_list("
        "'external_id','text','metadata','source','status','received_at','final_category__slug',"
        "'decided_by','decided_at')[:limit])\n"
        "    with open(sys.argv[3], 'w', newline='') as fh:\n"
        "        csv.writer(fh).writerows(rows)\n"
        "else:\n"
        "    call_command('export', dataset='items', format='csv', output=sys.argv[3])\n"
        "elapsed = time.perf_counter() - start\n"
        # VmHWM, not ru_maxrss: the latter survives exec and would report the parent's
        # peak (this script holds the similar-items matrix when it forks).
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(elapsed, int(hwm.split()[1]) / 1024)\n"
    )
    env = dict(os.environ, DATABASE_URL=database_url)
    with tempfile.TemporaryDirectory() as work:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                str(ROOT),
                rows_wanted,
                str(output),
                work,
                "naive" if naive else "stream",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    return {"seconds": float(out[-2]), "rss_mb": float(out[-1])}


def bench_export(database_url: str, rows: int, naive: bool) -> None:
    from django.db import connection

    from triage.models import Category, Item

    category = Category.objects.get(slug="request")
    have = Item.objects.count()
    with connection.cursor() as cursor:
        started = time.perf_counter()
        copy_items(cursor.cursor, "e", max(rows - have, 0), resolved=True, category_id=category.pk)
        cursor.execute("ANALYZE triage_item")
    total = Item.objects.count()
    print(f"\nexport: {total:,} items ({time.perf_counter() - started:.1f} s to load the rest)")
    with tempfile.TemporaryDirectory() as work:
        target = Path(work) / "items.csv"
        big = run_export(database_url, str(total), target, naive=False)
        lines = sum(1 for _ in target.open(encoding="utf-8"))
        size_mb = target.stat().st_size / 2**20
        print(
            f"  streamed, {total:,} rows ({size_mb:.0f} MB): {total / big['seconds']:,.0f} rows/s,"
            f" peak RSS {big['rss_mb']:.0f} MB ({lines:,} lines written)"
        )
        if naive:
            slurp = run_export(database_url, str(total), target, naive=True)
            print(
                f"  baseline, list every row then write: {total / slurp['seconds']:,.0f} rows/s,"
                f" peak RSS {slurp['rss_mb']:.0f} MB"
            )


def bench_analyst_load(open_tasks: int, tasks_per_analyst: int, think: float) -> None:
    """benchmarks/analyst_load.py (built once, by helper 12c) over `open_tasks` open tasks."""
    from analyst_load import STEPS, ensure_analysts, run_analyst_load

    from triage.models import Item, ReviewTask

    started = time.perf_counter()
    have = ReviewTask.objects.open().count()
    free = Item.objects.filter(review_tasks__isnull=True).values_list("pk", flat=True)
    batch: list[ReviewTask] = []
    for item_id in free[: max(open_tasks - have, 0)].iterator(chunk_size=10_000):
        batch.append(ReviewTask(item_id=item_id, reason=ReviewTask.Reason.LOW_CONFIDENCE))
        if len(batch) == 10_000:
            ReviewTask.objects.bulk_create(batch)
            batch = []
    ReviewTask.objects.bulk_create(batch)
    total = ReviewTask.objects.open().count()
    print(
        f"\nclaim / render / decide: {total:,} open tasks ({time.perf_counter() - started:.0f} s)"
    )
    names = ensure_analysts(8)
    for analysts in (1, 8):
        load = run_analyst_load(
            analysts=analysts,
            tasks_per_analyst=tasks_per_analyst,
            usernames=names,
            think_seconds=think,
        )
        steps = ", ".join(
            f"{step} p50 {percentile(load.timings[step], 50):.1f} / "
            f"p95 {percentile(load.timings[step], 95):.1f} ms"
            for step in STEPS
            if load.timings[step]
        )
        label = "baseline, 1 analyst alone" if analysts == 1 else f"{analysts} analysts at once"
        print(
            f"  {label} (~{think:g} s between decisions): {load.tasks} tasks; {steps}; "
            f"double claims {load.double_claims}; errors {len(load.errors)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--resolved", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--naive-queries", type=int, default=5)
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--no-naive-export", action="store_true")
    parser.add_argument("--open-tasks", type=int, default=200_000)
    parser.add_argument("--analyst-tasks", type=int, default=40, help="tasks per analyst")
    parser.add_argument("--think", type=float, default=2.0, help="mean seconds between tasks")
    parser.add_argument("--no-analysts", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()

    url = fresh_postgres_database(args.postgres, DB_NAME)
    os.environ["DATABASE_URL"] = url
    setup_django()
    try:
        bench_similar(args.resolved, args.queries, args.naive_queries)
        bench_export(url, args.export_rows, naive=not args.no_naive_export)
        if not args.no_analysts:
            bench_analyst_load(args.open_tasks, args.analyst_tasks, args.think)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            import psycopg
            from psycopg import sql

            admin = args.postgres.rsplit("/", 1)[0] + "/postgres"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(DB_NAME)
                    )
                )


if __name__ == "__main__":
    main()
