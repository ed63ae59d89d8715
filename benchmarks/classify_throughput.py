"""Classification throughput through the real service layer, beside a naive baseline.

Each variant runs in its own subprocess, so its peak RSS is its own:

  baseline      transformers pipeline("feature-extraction"), one call per item,
                mean-pool + linear head in numpy; no database (same texts, or a seeded
                random sample of them with --baseline-n)
  service-torch service.classify_items over chunks: embed (fp32 torch) + head +
                routing + DB writes
  service-int8  the same with TRIAGE_ENCODER_RUNTIME=onnx-int8 (champion retrained
                under that runtime so its head matches the int8 embeddings)
  bare-torch    encoder.encode(chunk) on the same chunks, nothing else
  bare-int8     the same for the int8 ONNX encoder
  pool-int8     --workers processes classify at once, as a Celery prefork pool does, each
  pool-torch    with its share of the cores, beside the same processes' bare encode and one
                process's bare encode of every text, phases interleaved (_classify_pool.py);
                needs --postgres; --rounds R: R rounds of bare, service, bare, each paired

Run from the project root:  .venv/bin/python benchmarks/classify_throughput.py [--n 5000]
With --postgres URL, each service variant gets a fresh database on that server.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _classify_children import RESULT_PREFIX, run_child  # noqa: E402

from triage.ml.threads import available_cpus  # noqa: E402

# ---------------------------------------------------------------------------- parent


def spawn(mode: str, args: argparse.Namespace, root: Path, shared_artifacts: Path) -> dict:
    workdir = root / mode
    env = dict(os.environ)
    # One artifact dir for all children, so the int8 ONNX export is built once per run.
    env.setdefault("TRIAGE_ARTIFACT_DIR", str(shared_artifacts))
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--workdir",
        str(workdir),
        "--n",
        str(args.n),
        "--baseline-n",
        str(args.baseline_n),
        "--baseline-head-train",
        str(args.baseline_head_train),
        "--history",
        str(args.history),
        "--max-length",
        str(args.max_length),
        *(["--postgres", args.postgres] if args.postgres else []),
        "--db-prefix",
        args.db_prefix,
        "--workers",
        str(args.workers),
        "--pool-threads",
        args.pool_threads,
        "--rounds",
        str(args.rounds),
    ]
    print(f"[{time.strftime('%H:%M:%S')}] running {mode} ...", flush=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n", file=sys.stderr)
        print(f"  {mode} FAILED (exit {proc.returncode})", flush=True)
        return {"mode": mode, "failed": True}
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    result["process_wall_s"] = wall
    print(f"  done in {wall:.0f}s", flush=True)
    return result


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="items through the service layer")
    parser.add_argument(
        "--baseline-n",
        type=int,
        default=0,
        help="baseline on a seeded random sample of this many of the texts (default: all)",
    )
    parser.add_argument(
        "--baseline-head-train", type=int, default=100, help="history texts for the baseline head"
    )
    parser.add_argument(
        "--history", type=int, default=6000, help="labelled history to import (as manage.py demo)"
    )
    parser.add_argument("--max-length", type=int, default=None, help="tokens (default: settings)")
    parser.add_argument(
        "--variants",
        default="baseline,service-torch,bare-torch,service-int8,bare-int8",
        help="comma-separated subset of variants to run",
    )
    parser.add_argument(
        "--postgres",
        default=None,
        metavar="URL",
        help="PostgreSQL server URL: each service variant gets a fresh database there "
        "(default: a SQLite file per variant)",
    )
    parser.add_argument(
        "--db-prefix",
        default="triage_bench",
        help="with --postgres, service variants get databases <prefix>_<variant> "
        "(default triage_bench), so runs on a shared server do not collide",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=available_cpus(),
        help="processes of the pool-* variants (default: the cores, Celery's default concurrency)",
    )
    parser.add_argument(
        "--pool-threads",
        choices=("share", "default"),
        default="share",
        help="pool-* members' encoder threads: their share of the cores, as a Celery prefork "
        "pool process has (default), or the runtime's default of every core",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="pool-* variants: the items in this many rounds, each its own bare, service, bare "
        "phases (paired per round; the median is printed beside the whole)",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.max_length is None:
        args.max_length = int(os.environ.get("TRIAGE_MAX_LENGTH", 256))
    if args.child:
        args.mode = args.child
        run_child(args)
        return

    if args.baseline_n < 0:
        parser.error(f"--baseline-n must be >= 0, got {args.baseline_n}")
    variants = args.variants.split(",")
    known = {"baseline", "service-torch", "bare-torch", "service-int8", "bare-int8"}
    known |= {"pool-torch", "pool-int8"}
    if unknown := sorted(set(variants) - known):
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {sorted(known)}")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if not args.postgres and any(mode.startswith("pool-") for mode in variants):
        parser.error("the pool-* variants need --postgres: their processes share one database")
    root = Path(tempfile.mkdtemp(prefix="triage-throughput-"))
    batch_tokens = os.environ.get("TRIAGE_BATCH_TOKENS", "settings default")
    print(
        f"classify_throughput: n={args.n} (validation+test), baseline on "
        f"{args.baseline_n or 'all'} of them, history={args.history}, "
        f"max_length={args.max_length}, batch tokens={batch_tokens}, "
        f"cpus={os.cpu_count()}, database={'PostgreSQL' if args.postgres else 'SQLite'}, "
        f"torch/onnx threads=library defaults\nwork dir: {root}",
        flush=True,
    )
    if any(mode.endswith("-int8") for mode in variants):
        # Untimed, in its own process: the export imports torch; serving int8 does not.
        export = spawn("export-int8", args, root, root / "artifacts")
        if not export.get("failed"):
            print(f"  int8 export built in {export['seconds']:.0f}s (untimed)", flush=True)
    results = {mode: spawn(mode, args, root, root / "artifacts") for mode in variants}

    base = results.get("baseline", {}).get("items_per_s")
    rows = []
    for mode in variants:
        r = results[mode]
        if r.get("failed"):
            rows.append((mode, "FAILED", "", "", "", "", "", ""))
            continue
        overhead = paired = None
        if mode.startswith("pool-"):
            alone = sum(r["alone_bare_seconds"]) / 2
            pool_bare = sum(r["pool_bare_seconds"]) / 2  # every round's, before and after
            overhead = (r["seconds"] - alone) / alone
            paired = (r["seconds"] - pool_bare) / pool_bare
        if mode.startswith("service-"):
            bare = results.get("bare-" + mode.split("-", 1)[1], {})
            if bare.get("seconds"):
                overhead = (r["seconds"] - bare["seconds"]) / bare["seconds"]
            paired_bare = sum(r["paired_bare_seconds"]) / 2
            paired = (r["seconds"] - paired_bare) / paired_bare
        speedup = r["items_per_s"] / base if base else None
        rows.append(
            (
                mode,
                str(r["items"]),
                fmt(r["seconds"], ".2f"),
                fmt(r["items_per_s"], ".1f"),
                "-" if speedup is None else f"{speedup:.2f}x",
                "-" if overhead is None else f"{overhead:+.1%}",
                "-" if paired is None else f"{paired:+.1%}",
                fmt(r["peak_rss_mb"], ".0f"),
            )
        )
    header = (
        "variant",
        "items",
        "seconds",
        "items/s",
        "vs baseline",
        "svc overhead",
        "paired overhead",
        "peak RSS MB",
    )
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print()
    for mode in ("service-torch", "service-int8"):
        r = results.get(mode, {})
        if r and not r.get("failed"):
            print(
                f"{mode}: champion {r['champion']} on {r['encoder']} "
                f"(holdout macro-F1 {fmt(r['holdout_macro_f1'], '.3f')}, retrain "
                f"{r['retrain_s']:.0f}s untimed); {r['routed']} routed, "
                f"{r['auto_routed']} automated; chunk={r['chunk']}"
            )
            rest = r["seconds"] - r["encode_in_service_s"]
            each = r["paired_each"]
            if len(each) > 1:
                print(f"  paired overhead per chunk {_each_and_median(each)}")
            print(
                f"  inside the service: encode {r['encode_in_service_s']:.2f}s, the rest "
                f"{rest:.2f}s ({rest / r['items'] * 1000:.3f} ms/item, "
                f"{rest / r['encode_in_service_s']:+.1%} of its encode)"
            )
    for mode in ("pool-torch", "pool-int8"):
        r = results.get(mode, {})
        if r and not r.get("failed"):
            alone, pool_bare = r["alone_bare_seconds"], r["pool_bare_seconds"]
            each = r["paired_each"]
            if len(each) > 1:
                print(f"{mode}: {len(each)} rounds, paired overhead {_each_and_median(each)}")
                pool_bare = [sum(pool_bare[::2]), sum(pool_bare[1::2])]
            print(
                f"{mode}: {r['workers']} processes at once, encoder threads each "
                f"{r['threads_per_member']} (None: the runtime's default), chunk={r['chunk']}; "
                f"{r['routed']} routed, {r['auto_routed']} automated, {r['left_received']} "
                f"left unrouted\n  service {r['seconds']:.2f}s; the pool's bare encode "
                f"{pool_bare[0]:.2f}s before, {pool_bare[1]:.2f}s after; one process's bare "
                f"encode of every text {alone[0]:.2f}s before, {alone[1]:.2f}s after.\n"
                "  svc overhead: against one process's bare encode (all cores); paired "
                "overhead: against the pool's own bare encode"
            )
    print(
        "targets: fp32 >= 3.5x and int8 >= 8x the baseline; service overhead <= 15% over the "
        "bare encode of the same chunks.\n"
        "svc overhead = (service seconds - bare encode seconds) / bare encode seconds, the bare "
        "encode timed in its own bare-* process; paired overhead = the same against the mean of "
        "two bare encodes of each chunk in the service process, just before and just after the "
        "service classifies that chunk (less exposed to drift in load).\n"
        "baseline = one pipeline() call per item on the same texts (or a seeded random "
        "sample of them, --baseline-n).\n"
        "CAVEAT: a shared 2-core machine; other jobs may run meanwhile, so timings are noisy "
        "(single run, no repeats). Variants run one after another, not interleaved."
    )


def _each_and_median(overheads: list[float]) -> str:
    each = ", ".join(f"{p:+.1%}" for p in overheads)
    return f"{each}; median {statistics.median(overheads):+.1%}"


if __name__ == "__main__":
    main()
