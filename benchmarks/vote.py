"""The nearest examples' vote (triage.ml.knn): its cost per item as the voters grow.

    .venv/bin/python benchmarks/vote.py
    .venv/bin/python benchmarks/vote.py --voters 1500,6000,20000 --items 1000 --repeat 5

For each number of voters (the training examples an ensemble keeps, at most
knn.MAX_REFERENCES), the time of KnnHead.log_votes over --items queries, against the
vote as numpy computed it before (one product with every voter, a partial sort per
query, in chunks of 256), in the same run, on the same unit vectors: with one thread
(a Celery prefork process's share of 2 cores) and with every core. The best of --repeat
runs, in ms per 1,000 items (an int8 encode takes about 2,000 ms per 1,000 items on 2
cores, benchmarks/classify_throughput.py). The largest difference between the two
votes' log shares is printed beside them: the same vote, computed another way.
Random unit vectors in 384 dimensions (the encoder's), labels over 7 categories.
"""

import argparse
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage.settings")

DIM = 384
LABELS = tuple("abcdefg")


def numpy_log_votes(head, vectors: np.ndarray, chunk: int = 256) -> np.ndarray:
    """The vote before faiss: numpy's product and argpartition, chunk by chunk."""
    from triage.ml.knn import PRIOR

    n_labels, n_refs = len(head.labels), len(head.targets)
    out = np.empty((len(vectors), n_labels), dtype=np.float64)
    k = min(head.k, n_refs)
    for start in range(0, len(vectors), chunk):
        part = vectors[start : start + chunk]
        votes = np.full((len(part), n_labels), PRIOR, dtype=np.float64)
        similarity = part @ head.vectors.T
        nearest = np.argpartition(similarity, n_refs - k, axis=1)[:, n_refs - k :]
        near = np.take_along_axis(similarity, nearest, axis=1).astype(np.float64)
        weights = np.exp(head.sharpness * near)
        labels = head.targets[nearest]
        for j in range(n_labels):
            votes[:, j] += np.where(labels == j, weights, 0.0).sum(axis=1)
        out[start : start + len(part)] = np.log(votes / votes.sum(axis=1, keepdims=True))
    return out


def best_ms(step: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voters", default="1500,6000,20000")
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import django

    django.setup()
    import faiss
    from threadpoolctl import threadpool_limits

    from triage.ml.knn import train_knn_head

    rng = np.random.default_rng(0)
    cores = os.cpu_count() or 1
    print(f"vote: {args.items} items, best of {args.repeat}, faiss {faiss.__version__}")
    header = (
        f"{'voters':>7} {'threads':>7} {'numpy ms':>9} {'faiss ms':>9} {'speed-up':>8} "
        f"{'max |diff|':>11}"
    )
    print(header)
    for voters in [int(v) for v in args.voters.split(",")]:
        refs = rng.standard_normal((voters, DIM)).astype(np.float32)
        labels = [LABELS[i] for i in rng.integers(0, len(LABELS), voters)]
        head = train_knn_head(refs, labels, classes=LABELS)
        queries = rng.standard_normal((args.items, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        for threads in sorted({1, cores}):
            faiss.omp_set_num_threads(threads)
            with threadpool_limits(threads):
                before = best_ms(partial(numpy_log_votes, head, queries), args.repeat)
                after = best_ms(partial(head.log_votes, queries), args.repeat)
            diff = np.abs(numpy_log_votes(head, queries) - head.log_votes(queries)).max()
            print(
                f"{voters:>7} {threads:>7} {before:>9.1f} {after:>9.1f} {before / after:>7.1f}x "
                f"{diff:>11.1e}"
            )


if __name__ == "__main__":
    main()
