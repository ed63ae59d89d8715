"""How long a retrain takes with cached embeddings, at 6,000 and 25,000 examples.

For each size: N labelled demo messages are imported (ingest.import_history)
and their real-encoder vectors put into the product's embedding cache; then
training.retrain() is timed twice: the first model (cross-fit K = 5 heads plus
the served head, certification, artifact) and, after 500 more labelled
messages, a retrain that also runs the gate against the champion (scoring it on
the new examples, paired bootstrap). Baselines measured in the same run on the
same vectors: one plain head fit, and the pre-issue-8 fit (head plus 5 fold
heads for the temperature, on 80% of the examples).

Messages come from all splits (26,055 in all): this measures time, not quality.

Run from the project root:  .venv/bin/python benchmarks/retrain_time.py [--sizes 6000,25000]
"""

import argparse
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _django_env import setup_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="6000,25000", help="comma-separated example counts")
    parser.add_argument(
        "--extra", type=int, default=500, help="new examples before the gate run (0: no gate run)"
    )
    args = parser.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    import os

    work = setup_django()
    from _embeddings import message_vectors
    from django.db import transaction

    from triage import training
    from triage.api import ingest
    from triage.management.demo_data import DESKS, load_messages
    from triage.ml.encoder import configured_spec, encoder_for
    from triage.ml.heads import train_logistic_head
    from triage.models import Category, Embedding, Item, ModelVersion
    from triage.training.models import TrainingExample

    encoder = encoder_for(configured_spec())
    messages = load_messages()
    random.Random(0).shuffle(messages)
    if max(sizes) + args.extra > len(messages):
        parser.error(f"at most {len(messages) - args.extra} examples are available")
    vectors = message_vectors(messages, encoder)
    database = os.environ["DATABASE_URL"].split(":")[0]
    print(f"retrain time: {encoder.encoder_id}; {database}; work dir {work}", flush=True)
    categories = {
        slug: Category.objects.update_or_create(slug=slug, defaults={"name": name})[0]
        for slug, (name, _) in DESKS.items()
    }
    rows = []
    for size in sizes:
        ModelVersion.objects.all().delete()
        TrainingExample.objects.all().delete()
        Item.objects.all().delete()

        def load(start: int, stop: int) -> None:
            from triage.api.intake import ItemIn

            with transaction.atomic():
                result = ingest.import_history(
                    items=[
                        ItemIn(external_id=m.id, text=m.text, label=m.desk)
                        for m in messages[start:stop]
                    ],
                    categories=categories,
                )
                by_id = {m.id: i for i, m in enumerate(messages)}
                Embedding.objects.bulk_create(
                    [
                        Embedding(
                            item_id=item.pk,
                            encoder=encoder.encoder_id,
                            vector=vectors[by_id[item.external_id]].tobytes(),
                        )
                        for item in result.created
                    ],
                    batch_size=1000,
                )

        load(0, size)
        x, y = vectors[:size], [m.desk for m in messages[:size]]
        started = time.perf_counter()
        train_logistic_head(x, y)
        plain = time.perf_counter() - started
        cut = int(0.8 * size)
        started = time.perf_counter()
        training.fit_calibrated_head(x[:cut], labels=y[:cut])
        old_style = time.perf_counter() - started
        started = time.perf_counter()
        first = training.retrain(actor="benchmark")
        first_s = time.perf_counter() - started
        second_s, second = float("nan"), first
        if args.extra:
            load(size, size + args.extra)
            started = time.perf_counter()
            second = training.retrain(actor="benchmark")
            second_s = time.perf_counter() - started
        rows.append((size, first_s, second_s, plain, old_style, first, second))
        print(
            f"  {size}: first retrain {first_s:.1f}s, retrain + gate {second_s:.1f}s; "
            f"one head fit {plain:.1f}s, pre-8 fit {old_style:.1f}s ({second.message[:70]}...)",
            flush=True,
        )
    print(
        f"\n{'examples':>9}  {'retrain (first)':>16}  {'retrain + gate':>15}  "
        f"{'one head fit':>13}  {'pre-8 fit (80%)':>16}"
    )
    for size, first_s, second_s, plain, old_style, *_ in rows:
        print(
            f"{size:>9}  {first_s:>15.1f}s  {second_s:>14.1f}s  {plain:>12.1f}s"
            f"  {old_style:>15.1f}s"
        )
    print(
        "\nretrain: snapshot from the database, cached vectors, 5 fold heads + served head, "
        "temperature, certification, artifact, gate (second run: scores the champion on the "
        f"{args.extra} new examples, paired bootstrap). Shared 2-core machine: timings are noisy."
    )


if __name__ == "__main__":
    main()
