"""A vote of the nearest training examples: the ensemble's third part.

For each item, the ``k`` training examples whose embeddings are most similar (cosine)
vote for their own labels, each with weight exp(sharpness · similarity). The score of a
category is the log of its share of the vote, smoothed by ``PRIOR`` pseudo-votes each.
A linear layer over the same embeddings draws one boundary per category; the vote follows
the local shape of the labelled examples (a cluster of one desk's messages inside
another's region), and averaged in, it ranks the predictions better: more of them can be
certified at the same target (benchmarks/model_quality.py, README "Which model").

The references are the training examples' items: at most ``MAX_REFERENCES`` of them (a
fixed random subset beyond that), so the cost per item is bounded: an exact search of
every reference, by faiss (no torch: the ONNX serving path never imports it). An
artifact stores only which items vote and for which label, never their embeddings:
serving reads those from the embedding cache (triage.classify.scoring), so an item's
vector still lives exactly as long as its text, and a forgotten or pruned item no longer
votes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from triage.ml.threads import encoder_threads

# Chosen by benchmarks/model_quality.py on random 6,000-label samples of the demo's train
# split other than the one benchmarks/quality.py reports on (README "Which model").
K = 60
SHARPNESS = 10.0
PRIOR = 0.5  # pseudo-votes per category: no category's share is ever 0
# The vote's share of the ensemble's logits (added to the linear heads' weighted average).
KNN_WEIGHT = 0.5
# The most training examples kept as voters, so the vote's cost per item stays bounded (an
# exact search of every voter: about 0.06 ms per item at 6,000 voters and 0.18 ms at
# 20,000 with one thread, benchmarks/vote.py); beyond it, a fixed random subset.
MAX_REFERENCES = 20_000


@dataclass(frozen=True)
class KnnHead:
    labels: tuple[str, ...]
    targets: np.ndarray  # (n,) int64: each reference's label index
    items: np.ndarray | None = None  # (n,) int64: the item each reference is (None: unknown)
    vectors: np.ndarray | None = None  # (n, dim) float32 unit length; None until loaded
    k: int = K
    sharpness: float = SHARPNESS

    def __post_init__(self) -> None:
        if self.items is not None and len(self.items) != len(self.targets):
            raise ValueError("the vote's items and their labels differ in number")
        if self.vectors is not None and (
            self.vectors.ndim != 2 or len(self.vectors) != len(self.targets)
        ):
            raise ValueError("the vote's references and their labels differ in number")
        if len(self.targets) and not (
            0 <= self.targets.min() <= self.targets.max() < len(self.labels)
        ):
            raise ValueError("a reference's label index is outside the head's labels")
        if self.k < 1 or not np.isfinite(self.sharpness):
            raise ValueError(f"k must be >= 1 and sharpness finite, got {self.k}, {self.sharpness}")

    def attached(self, found: Mapping[int, np.ndarray]) -> KnnHead:
        """The head with its references' vectors, from {item id: vector}; items not found
        (forgotten, pruned) no longer vote."""
        if self.items is None:
            raise ValueError("a vote without its items cannot load their vectors")
        keep = np.array([int(i) in found for i in self.items], dtype=bool)
        items = self.items[keep]
        vectors = (
            _unit(np.stack([found[int(i)] for i in items]))
            if len(items)
            else np.zeros((0, 0), dtype=np.float32)
        )
        return replace(self, targets=self.targets[keep], items=items, vectors=vectors)

    def log_votes(self, vectors: np.ndarray, items: Sequence[int] | None = None) -> np.ndarray:
        """(len(vectors), len(labels)): the log of each category's smoothed share of the vote.

        ``items``: the items these vectors are, when known. An item that is itself a voter
        (one labelled again since the head was trained, scored by the gate or an
        evaluation) does not vote for itself, as no example did in the out-of-fold
        evidence."""
        if self.vectors is None:
            raise ValueError("the vote's references are not loaded (KnnHead.attached)")
        n_labels, n_refs = len(self.labels), len(self.targets)
        queries = _unit(np.asarray(vectors, dtype=np.float32))
        n = len(queries)
        votes = np.full((n, n_labels), PRIOR, dtype=np.float64)
        k = min(self.k, n_refs)
        if k and n:
            own = self._own_rows(items) if items is not None else {}
            # Enough neighbours that k remain once an item's own rows are set aside.
            extra = max(map(len, own.values()), default=0)
            similarity, nearest = nearest_references(queries, self.vectors, min(k + extra, n_refs))
            counted = np.ones(nearest.shape, dtype=bool)
            for row, voters in own.items():
                counted[row] = ~np.isin(nearest[row], voters)
            if own:
                counted &= np.cumsum(counted, axis=1) <= k  # the k nearest of the others
            weights = np.exp(self.sharpness * similarity.astype(np.float64))
            weights[~counted] = 0.0
            cells = np.arange(n)[:, None] * n_labels + self.targets[nearest]
            votes += np.bincount(
                cells.ravel(), weights=weights.ravel(), minlength=n * n_labels
            ).reshape(n, n_labels)
        shares: np.ndarray = np.log(votes / votes.sum(axis=1, keepdims=True))
        return shares

    def _own_rows(self, items: Sequence[int]) -> dict[int, list[int]]:
        """{query row: the reference rows that are the same item}, for queries that vote."""
        return {
            q: self._rows_of_item[int(item)]
            for q, item in enumerate(items)
            if int(item) in self._rows_of_item
        }

    @functools.cached_property
    def _rows_of_item(self) -> dict[int, list[int]]:
        rows: dict[int, list[int]] = {}
        for row, item in enumerate([] if self.items is None else self.items.tolist()):
            rows.setdefault(item, []).append(row)
        return rows


def train_knn_head(
    vectors: np.ndarray,
    labels: Sequence[str],
    *,
    classes: Sequence[str],
    items: Sequence[int] | None = None,
) -> KnnHead:
    """The examples as voters, in the label order ``classes`` of the heads beside it.

    ``items``: the item each example is, so a saved head can find its vectors again."""
    index = {label: i for i, label in enumerate(classes)}
    targets = np.array([index[label] for label in labels], dtype=np.int64)
    refs = _unit(np.asarray(vectors, dtype=np.float32))
    ids = None if items is None else np.asarray(items, dtype=np.int64)
    if len(refs) > MAX_REFERENCES:
        keep = np.sort(np.random.default_rng(0).choice(len(refs), MAX_REFERENCES, replace=False))
        refs, targets = refs[keep], targets[keep]
        ids = None if ids is None else ids[keep]
    return KnnHead(labels=tuple(classes), targets=targets, items=ids, vectors=refs)


def nearest_references(
    queries: np.ndarray, references: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each query, its k most similar references, most similar first: (similarities,
    reference rows), each of shape (len(queries), k). The queries and references are
    float32 and unit length; k <= len(references).

    An exact search (every reference compared: no index, no approximation), by faiss: a
    blocked matrix product and a heap per query. numpy's product and partial sort of every
    row took 1.3 to 2 times as long with one thread, 1.7 to 2.9 with two, from 1,500 to
    20,000 references (benchmarks/vote.py). Its threads are the process's share of the
    cores, as the encoder's (triage.ml.threads).
    """
    import faiss

    threads = encoder_threads()
    if threads is not None:
        faiss.omp_set_num_threads(threads)
    similarity, rows = faiss.knn(
        np.ascontiguousarray(queries, dtype=np.float32),
        np.ascontiguousarray(references, dtype=np.float32),
        k,
        metric=faiss.METRIC_INNER_PRODUCT,
    )
    return similarity, rows.astype(np.int64, copy=False)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = vectors / np.where(norms > 0, norms, 1.0)
    return np.ascontiguousarray(unit, dtype=np.float32)
