"""Part 2 of benchmarks/delivery.py: what the outbox costs the decision path.

Ingest-and-classify of fresh batches, alternating rounds with no endpoint and with one
active endpoint whose delivery tasks are queued and never consumed.
"""

import statistics
import time


def classify_cost(rounds: int, batch: int, history: int) -> dict:
    import random

    from triage import training
    from triage.actions.models import Endpoint, Event
    from triage.api import ingest
    from triage.api.intake import ItemIn
    from triage.classify import service
    from triage.management.demo_data import DESKS, load_messages
    from triage.models import Category, RoutingPolicy

    categories = {c.slug: c for c in Category.objects.all()}
    train = load_messages("train")
    sample = random.Random(0).sample(train, history)
    hist = [ItemIn(external_id=f"h-{m.id}", text=m.text, label=m.desk) for m in sample]
    for start in range(0, len(hist), 1000):
        ingest.import_history(items=hist[start : start + 1000], categories=categories)
    training.retrain(actor="benchmark")
    # Every item auto-routed: each decision writes an event (the most the outbox can cost).
    RoutingPolicy.objects.update_or_create(
        pk=1, defaults={"default_threshold": 0.0, "target_precision": None, "audit_rate": 0}
    )
    texts = [m.text for m in load_messages("validation") + load_messages("test")]
    assert set(DESKS) <= set(categories)
    Endpoint.objects.update(is_active=False)
    endpoint = Endpoint.objects.create(url="http://127.0.0.1:9/never-consumed", is_active=False)

    def one_round(label: str, offset: int) -> float:
        Endpoint.objects.filter(pk=endpoint.pk).update(is_active=label == "endpoint")
        items = [
            ItemIn(external_id=f"c-{label}-{offset}-{i}", text=texts[(offset + i) % len(texts)])
            for i in range(batch)
        ]
        started = time.perf_counter()
        result = ingest.ingest_items(items=items)
        service.classify_items(item_ids=[i.pk for i in result.created])
        return time.perf_counter() - started

    one_round("warm-up", 0)
    times: dict[str, list[float]] = {"none": [], "endpoint": []}
    ratios = []
    for r in range(rounds):
        # Back to back, in alternating order: a load swing on a shared machine hits both.
        order = ["none", "endpoint"] if r % 2 == 0 else ["endpoint", "none"]
        pair = {}
        for label in order:
            pair[label] = one_round(label, (r * 2 + order.index(label) + 1) * batch)
            times[label].append(pair[label])
        ratios.append(pair["endpoint"] / pair["none"])
    none = sum(times["none"])
    with_endpoint = sum(times["endpoint"])
    return {
        "batch": batch,
        "rounds": rounds,
        "items_per_s_none": rounds * batch / none,
        "items_per_s_endpoint": rounds * batch / with_endpoint,
        "overhead_pct": 100 * (with_endpoint / none - 1),
        "paired_median_overhead_pct": 100 * (statistics.median(ratios) - 1),
        "paired_ratios": [round(x, 3) for x in ratios],
        "events_written": Event.objects.filter(item__external_id__startswith="c-endpoint").count(),
    }
