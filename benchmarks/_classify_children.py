"""The measuring side of classify_throughput.py: each variant runs in its own subprocess
(`classify_throughput.py --child MODE`), so its peak RSS is its own. The parent spawns
them and prints the table."""

import argparse
import cProfile
import json
import os
import sys
import time

from _django_env import fresh_postgres_database, peak_rss_mb, setup_django

RESULT_PREFIX = "RESULT_JSON "


def _texts(n: int) -> list[tuple[str, str]]:
    from triage.management.demo_data import load_messages

    messages = load_messages("validation") + load_messages("test")
    if n > len(messages):
        print(f"note: only {len(messages)} validation+test messages; using all", file=sys.stderr)
    return [(m.id, m.text) for m in messages[:n]]


def _history(size: int) -> list:
    import random

    from triage.api.intake import ItemIn
    from triage.management.demo_data import load_messages

    train = load_messages("train")
    sample = random.Random(0).sample(train, min(size, len(train)))
    return [ItemIn(external_id=f"hist-{m.id}", text=m.text, label=m.desk) for m in sample]


def _encode_seconds(encoder, texts: list[str], chunk: int) -> float:
    """Wall time of encoder.encode over `texts` in chunks of `chunk`, nothing else."""
    started = time.perf_counter()
    for i in range(0, len(texts), chunk):
        encoder.encode(texts[i : i + chunk])
    return time.perf_counter() - started


def paired_overhead(service: float, before: float, after: float) -> float:
    """The service's seconds against the mean of the bare encodes just before and after it."""
    return service / ((before + after) / 2) - 1


def _train_champion(history_size: int) -> dict:
    from triage import training
    from triage.api import ingest
    from triage.management.demo_data import DESKS
    from triage.models import Category

    for slug, (name, description) in DESKS.items():
        Category.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": description, "action_queue": slug}
        )
    categories = {c.slug: c for c in Category.objects.all()}
    items = _history(history_size)
    for start in range(0, len(items), 1000):
        ingest.import_history(items=items[start : start + 1000], categories=categories)
    started = time.perf_counter()
    result = training.retrain(actor="benchmark")
    return {
        "retrain_s": time.perf_counter() - started,
        "champion": str(result.version),
        "promoted": result.promoted,
        "holdout_macro_f1": result.version.metrics.get("macro_f1"),
    }


def warm_up(champion) -> None:
    """As a worker that has served this version before: its head (and, for an ensemble, its
    vote's voters) loaded once, outside the timed calls, which measure the per-item path."""
    from triage.classify import scoring
    from triage.models import Item

    warm = Item.objects.create(external_id=f"bench-warm-{os.getpid()}", text="warm-up")
    scoring.version_scores(champion, items=[warm])


def child_service(args: argparse.Namespace) -> dict:
    from django.conf import settings

    from triage.classify import service
    from triage.ml.encoder import encoder_for
    from triage.models import Item, ModelVersion, Prediction

    info = _train_champion(args.history)
    champion = ModelVersion.objects.champion()
    assert champion is not None, "retrain did not produce a champion"

    warm_up(champion)
    texts = _texts(args.n)
    tag = f"{args.mode}-{os.getpid()}"
    created = Item.objects.bulk_create(
        [
            Item(external_id=f"bench-{tag}-{i}-{mid}", text=text)
            for i, (mid, text) in enumerate(texts)
        ],
        batch_size=500,
    )
    ids = sorted(item.pk for item in created)
    chunk = settings.TRIAGE_CLASSIFY_CHUNK
    chunks = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]

    # Paired measure of the overhead: the bare encode of each chunk's texts in this process,
    # just before and just after the service classifies that chunk (ABA per chunk, so load
    # that drifts over the run affects both alike). The encoder's own time inside the
    # service is recorded too: the service's seconds less it are the rest of the path.
    encoder = encoder_for(champion.encoder_spec)
    text_of = {item.pk: item.text for item in created}
    encode = encoder.encode
    in_service = [0.0]

    def timed_encode(texts):
        t0 = time.perf_counter()
        try:
            return encode(texts)
        finally:
            in_service[0] += time.perf_counter() - t0

    # BENCH_PROFILE=<file>: cProfile the service calls (not the bare encodes) into that file.
    profile_to = os.environ.get("BENCH_PROFILE")
    profiler = cProfile.Profile() if profile_to else None
    bare_before = bare_after = elapsed = 0.0
    per_chunk: list[float] = []  # each chunk's paired overhead
    routed = 0
    for part in chunks:
        part_texts = [text_of[pk] for pk in part]
        before = _encode_seconds(encoder, part_texts, chunk)
        bare_before += before
        encoder.encode = timed_encode  # type: ignore[method-assign]
        try:
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            routed += service.classify_items(item_ids=part)
            if profiler:
                profiler.disable()
            took = time.perf_counter() - started
            elapsed += took
        finally:
            del encoder.encode  # the class's method again
        after = _encode_seconds(encoder, part_texts, chunk)
        bare_after += after
        per_chunk.append(paired_overhead(took, before, after))
    if profiler and profile_to:
        profiler.dump_stats(f"{profile_to}.{args.mode}")
    predictions = Prediction.objects.filter(item_id__in=ids[:1]).count()
    auto = Item.objects.filter(pk__in=ids, status=Item.Status.ROUTED).count()
    return info | {
        "mode": args.mode,
        "encoder": champion.encoder,
        "items": len(ids),
        "routed": routed,
        "auto_routed": auto,
        "prediction_rows_sample": predictions,
        "chunk": chunk,
        "seconds": elapsed,
        "items_per_s": len(ids) / elapsed,
        "paired_bare_seconds": [bare_before, bare_after],
        "paired_each": per_chunk,
        "encode_in_service_s": in_service[0],
        "peak_rss_mb": peak_rss_mb(),
    }


def child_export(args: argparse.Namespace) -> dict:
    """Build the int8 ONNX export once, untimed, so the int8 variants only serve from it."""
    from triage.ml.encoder import configured_spec, encoder_for

    started = time.perf_counter()
    encoder = encoder_for(configured_spec())
    return {
        "mode": args.mode,
        "encoder": encoder.encoder_id,
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": peak_rss_mb(),
    }


def child_bare(args: argparse.Namespace) -> dict:
    from django.conf import settings

    from triage.ml.encoder import configured_spec, encoder_for

    encoder = encoder_for(configured_spec())  # builds (and for int8, exports) untimed
    texts = [text for _, text in _texts(args.n)]
    encoder.encode(texts[:64])  # warm-up, as the service child is warm after retrain
    chunk = settings.TRIAGE_CLASSIFY_CHUNK
    elapsed = _encode_seconds(encoder, texts, chunk)
    return {
        "mode": args.mode,
        "encoder": encoder.encoder_id,
        "items": len(texts),
        "chunk": chunk,
        "seconds": elapsed,
        "items_per_s": len(texts) / elapsed,
        "peak_rss_mb": peak_rss_mb(),
    }


def child_baseline(args: argparse.Namespace) -> dict:
    import numpy as np
    from transformers import pipeline

    from triage.ml.encoder import packaged_model_dir
    from triage.ml.heads import train_logistic_head

    extractor = pipeline(
        "feature-extraction",
        model=str(packaged_model_dir()),
        framework="pt",
        device=-1,
        tokenize_kwargs={"truncation": True, "max_length": args.max_length},
    )

    def embed_one(text: str) -> np.ndarray:
        hidden = np.asarray(extractor(text)[0], dtype=np.float32)  # (tokens, dim), no padding
        pooled = hidden.mean(axis=0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)

    # Untimed: warm the pipeline and fit a head on its own embeddings of some history.
    history = _history(args.baseline_head_train)
    vectors = np.stack([embed_one(h.text) for h in history])
    head = train_logistic_head(vectors, [h.label for h in history])

    texts = [text for _, text in _texts(args.n)]
    if 0 < args.baseline_n < len(texts):
        import random

        # A seeded random sample, so its length mix matches the texts the others embed.
        texts = random.Random(0).sample(texts, args.baseline_n)
    started = time.perf_counter()
    labels = []
    for text in texts:
        probs = head.predict_proba(embed_one(text)[None, :])[0]
        labels.append(head.labels[int(probs.argmax())])
    elapsed = time.perf_counter() - started
    return {
        "mode": args.mode,
        "items": len(texts),
        "mean_chars": sum(map(len, texts)) / len(texts),
        "seconds": elapsed,
        "items_per_s": len(texts) / elapsed,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_child(args: argparse.Namespace) -> None:
    from _classify_pool import child_pool

    int8 = {"service-int8", "bare-int8", "export-int8", "pool-int8"}
    runtime = "onnx-int8" if args.mode in int8 else "torch"
    os.environ["TRIAGE_MAX_LENGTH"] = str(args.max_length)
    if args.postgres and args.mode.startswith(("service-", "pool-")):
        name = f"{args.db_prefix}_" + args.mode.replace("-", "_")
        os.environ["DATABASE_URL"] = fresh_postgres_database(args.postgres, name)
    setup_django(runtime=runtime, workdir=args.workdir)
    fn = {
        "baseline": child_baseline,
        "service-torch": child_service,
        "service-int8": child_service,
        "bare-torch": child_bare,
        "bare-int8": child_bare,
        "export-int8": child_export,
        "pool-torch": child_pool,
        "pool-int8": child_pool,
    }[args.mode]
    print(RESULT_PREFIX + json.dumps(fn(args)), flush=True)
