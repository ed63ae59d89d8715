"""The pool variants of classify_throughput.py (`pool-int8`, `pool-torch`): W processes
classify at once, as a Celery worker's prefork pool of W processes does, each with its share
of the cores (triage.ml.threads.share_cores, as triage.celery sets it in a pool process),
or with the runtime's default when `--pool-threads default`.

One coordinating child trains the champion and stores the items; it splits them evenly
among W member processes (spawned, each with Django of its own, on the same database) in
chunks of at most TRIAGE_CLASSIFY_CHUNK. Every member warms up (encoder, head, vote), then
all run the same phases together, started and ended by one barrier, the coordinator timing
each phase:

  alone    the coordinator encodes every text by itself (one process, all cores; members
           wait): the fastest bare encode of one process, the single-process variants' bare
  bare     each member encodes its chunks' texts, nothing else (the pool's bare encode)
  service  each member classifies its chunks (service.classify_items)

in the order alone, bare, service, bare, alone, so drift in the machine's load touches the
service phase and the means of the bare phases around it alike. With `--rounds R` the items
are split into R rounds, and each round is its own bare, service, bare between the two
alone phases: R paired measures of the same path, whose median a burst of load on the
shared machine moves less than it moves one.
"""

import argparse
import math
import multiprocessing
import time
from typing import Any


def child_pool(args: argparse.Namespace) -> dict[str, Any]:
    from _classify_children import _texts, _train_champion, paired_overhead
    from django.conf import settings
    from django.db import connections

    from triage.ml.encoder import encoder_for
    from triage.models import Item, ModelVersion

    info = _train_champion(args.history)
    champion = ModelVersion.objects.champion()
    assert champion is not None, "retrain did not produce a champion"
    texts = _texts(args.n)
    created = Item.objects.bulk_create(
        [Item(external_id=f"pool-{i}-{mid}", text=text) for i, (mid, text) in enumerate(texts)],
        batch_size=500,
    )
    ids = sorted(item.pk for item in created)
    text_of = {item.pk: item.text for item in created}
    workers, rounds = args.workers, args.rounds
    per_round = math.ceil(len(ids) / rounds)
    per_member = math.ceil(per_round / workers)
    # Equal chunks, none over the setting: 3,000 items on 2 members are 2 x 2 x 750.
    chunks_each = math.ceil(per_member / settings.TRIAGE_CLASSIFY_CHUNK)
    chunk = math.ceil(per_member / chunks_each)
    plans: list[list[list[list[int]]]] = [[] for _ in range(workers)]  # member, round, chunk
    for r in range(rounds):
        batch = ids[r * per_round : (r + 1) * per_round]
        for k in range(workers):
            share = batch[k * per_member : (k + 1) * per_member]
            plans[k].append([share[i : i + chunk] for i in range(0, len(share), chunk)])

    encoder = encoder_for(champion.encoder_spec)  # this process alone: the runtime's default
    all_texts = [text for _, text in texts]
    encoder.encode(all_texts[:64])
    connections.close_all()  # the members open their own

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers + 1)
    results = context.Queue()
    members = [
        context.Process(
            target=_member,
            args=(
                args,
                plan,
                [[[text_of[pk] for pk in part] for part in round_] for round_ in plan],
                barrier,
                results,
            ),
        )
        for plan in plans
    ]
    for member in members:
        member.start()
    barrier.wait(timeout=600)  # every member warm

    def phase(work: Any = None) -> float:
        started = time.perf_counter()
        if work is not None:
            work()
        barrier.wait(timeout=1800)
        return time.perf_counter() - started

    def alone() -> None:
        for i in range(0, len(all_texts), settings.TRIAGE_CLASSIFY_CHUNK):
            encoder.encode(all_texts[i : i + settings.TRIAGE_CLASSIFY_CHUNK])

    # The members wait at the barrier (blocked, not spinning) while the coordinator encodes.
    seconds: dict[str, list[float]] = {"alone": [phase(alone)], "bare": [], "service": []}
    for _ in range(rounds):
        seconds["bare"].append(phase())
        seconds["service"].append(phase())
        seconds["bare"].append(phase())
    seconds["alone"].append(phase(alone))
    reports = [results.get(timeout=60) for _ in members]
    for member in members:
        member.join(60)
    auto = Item.objects.filter(pk__in=ids, status=Item.Status.ROUTED).count()
    left = Item.objects.filter(pk__in=ids, status=Item.Status.RECEIVED).count()
    service = sum(seconds["service"])
    return (
        info
        | {
            "mode": args.mode,
            "encoder": champion.encoder,
            "items": len(ids),
            "routed": sum(r["routed"] for r in reports),
            "auto_routed": auto,
            "left_received": left,
            "chunk": chunk,
            "workers": workers,
            "threads_per_member": sorted({r["threads"] for r in reports}, key=str),
            "seconds": service,
            "items_per_s": len(ids) / service,
            "pool_bare_seconds": seconds["bare"],  # before and after each round, in turn
            "paired_each": [  # each round's
                paired_overhead(took, before, after)
                for took, before, after in zip(
                    seconds["service"], seconds["bare"][::2], seconds["bare"][1::2], strict=True
                )
            ],
            "alone_bare_seconds": seconds["alone"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in reports),
        }
    )


def _member(
    args: argparse.Namespace,
    plan: list[list[list[int]]],
    plan_texts: list[list[list[str]]],
    barrier: Any,
    results: Any,
) -> None:
    from _django_env import peak_rss_mb, setup_django

    setup_django(runtime="onnx-int8" if args.mode == "pool-int8" else "torch", workdir=args.workdir)
    from _classify_children import warm_up

    from triage.classify import service
    from triage.ml.encoder import encoder_for
    from triage.ml.threads import encoder_threads, share_cores
    from triage.models import ModelVersion

    if args.pool_threads == "share":
        share_cores(args.workers)  # as triage.celery does in each prefork pool process
    champion = ModelVersion.objects.champion()
    assert champion is not None
    encoder = encoder_for(champion.encoder_spec)
    warm_up(champion)
    encoder.encode(plan_texts[0][0][:64])

    def bare(round_texts: list[list[str]]) -> None:
        for texts in round_texts:
            encoder.encode(texts)

    barrier.wait(timeout=600)  # warm
    barrier.wait(timeout=1800)  # the coordinator encodes alone
    routed = 0
    for round_, round_texts in zip(plan, plan_texts, strict=True):
        bare(round_texts)
        barrier.wait(timeout=1800)
        routed += sum(service.classify_items(item_ids=part) for part in round_)
        barrier.wait(timeout=1800)
        bare(round_texts)
        barrier.wait(timeout=1800)
    barrier.wait(timeout=1800)  # the coordinator encodes alone again
    results.put({"routed": routed, "threads": encoder_threads(), "peak_rss_mb": peak_rss_mb()})
