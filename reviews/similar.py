"""Similar items: the nearest resolved items (and open tasks) by cached embedding.

Each process keeps the unit vectors of one embedding space in a float32 matrix.
Up to TRIAGE_SIMILAR_EXACT_MAX rows the query is multiplied into all of them (exact
cosine). Beyond that a brute-force pass reads the whole matrix per query (150 MB at
100,000 × 384), which is memory-bound and too slow on a busy machine, so the rows also
go into a FAISS inverted-file index (IndexIVFFlat, inner product on unit vectors =
cosine): about sqrt(n) k-means lists, of which TRIAGE_SIMILAR_NPROBE nearest are
scanned exactly. It is approximate; benchmarks/workspace.py measures its recall@5
against the exact answer, and its p95 beside brute force.

The matrix picks up new rows every TRIAGE_SIMILAR_REFRESH_SECONDS and is rebuilt whole
every TRIAGE_SIMILAR_REBUILD_SECONDS (the FAISS lists are re-trained when the rows have
doubled since). Between refreshes a just-resolved item may be missing, which costs
nothing worse than a slightly older neighbourhood. Final categories, deciders and task
states are read from the database at query time, so they are never stale.

No text is embedded here: an item without a cached vector simply has no neighbours, and
the web process never loads the encoder for this panel.
"""

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from triage.access import under_check
from triage.models import Embedding, Item, ModelVersion, ReviewTask

# A resolution that committed late may carry an earlier decided_at: look back this far.
LATE_COMMIT_SLACK = timedelta(minutes=2)


@dataclass
class _LoadState:
    last_embedding_pk: int = 0
    last_task_pk: int = 0
    since: datetime | None = None


Loader = Callable[[str, _LoadState], tuple[list[int], list[bytes], _LoadState]]


def _load_resolved(encoder: str, state: _LoadState) -> tuple[list[int], list[bytes], _LoadState]:
    """Resolved items' vectors: new cache rows, plus items resolved since the last load."""
    started = timezone.now()
    rows = Embedding.objects.filter(encoder=encoder, item__status=Item.Status.RESOLVED)
    fresh = Q(pk__gt=state.last_embedding_pk)
    if state.since is not None:
        fresh |= Q(item__decided_at__gte=state.since - LATE_COMMIT_SLACK)
    ids: list[int] = []
    blobs: list[bytes] = []
    last_pk = state.last_embedding_pk
    for pk, item_id, blob in (
        rows.filter(fresh).values_list("pk", "item_id", "vector").iterator(chunk_size=5000)
    ):
        ids.append(item_id)
        blobs.append(bytes(blob))
        last_pk = max(last_pk, pk)
    return ids, blobs, _LoadState(last_embedding_pk=last_pk, since=started)


def _load_open(encoder: str, state: _LoadState) -> tuple[list[int], list[bytes], _LoadState]:
    """Vectors of items with a task opened since the last load (closed ones are filtered
    at query time)."""
    tasks = ReviewTask.objects.open().filter(pk__gt=state.last_task_pk)
    last_task = tasks.order_by("-pk").values_list("pk", flat=True).first()
    if last_task is None:
        return [], [], state
    item_ids = tasks.filter(pk__lte=last_task).values("item_id")
    ids: list[int] = []
    blobs: list[bytes] = []
    for item_id, blob in (
        Embedding.objects.filter(encoder=encoder, item_id__in=item_ids)
        .values_list("item_id", "vector")
        .iterator(chunk_size=5000)
    ):
        ids.append(item_id)
        blobs.append(bytes(blob))
    return ids, blobs, _LoadState(last_task_pk=last_task)


@dataclass
class _Matrix:
    encoder: str
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    vectors: np.ndarray | None = None
    size: int = 0
    known: set[int] = field(default_factory=set)
    state: _LoadState = field(default_factory=_LoadState)
    refreshed: float = 0.0
    built: float = 0.0
    ivf: Any = None  # a faiss.IndexIVFFlat over rows [0, ivf_rows), built on demand
    ivf_rows: int = 0
    ivf_trained_on: int = 0

    def append(self, ids: Sequence[int], blobs: Sequence[bytes]) -> None:
        new = [(i, b) for i, b in zip(ids, blobs, strict=True) if i not in self.known]
        if not new:
            return
        rows = np.stack([np.frombuffer(b, dtype=np.float32) for _, b in new])
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        rows = (rows / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        needed = self.size + len(rows)
        if self.vectors is None or self.vectors.shape[1] != rows.shape[1]:
            self.vectors = np.zeros((max(needed, 1024), rows.shape[1]), dtype=np.float32)
            self.ids = np.zeros(len(self.vectors), dtype=np.int64)
        elif needed > len(self.vectors):
            # Grow geometrically so a steady trickle of rows costs amortised O(1) copies.
            capacity = max(needed, 2 * len(self.vectors))
            grown = np.zeros((capacity, self.vectors.shape[1]), dtype=np.float32)
            grown[: self.size] = self.vectors[: self.size]
            grown_ids = np.zeros(capacity, dtype=np.int64)
            grown_ids[: self.size] = self.ids[: self.size]
            self.vectors, self.ids = grown, grown_ids
        self.vectors[self.size : needed] = rows
        self.ids[self.size : needed] = [i for i, _ in new]
        self.known.update(i for i, _ in new)
        self.size = needed

    def search(self, query: np.ndarray, take: int) -> tuple[np.ndarray, np.ndarray]:
        """Row positions and cosines of the `take` nearest rows, best first."""
        assert self.vectors is not None
        if self.size < settings.TRIAGE_SIMILAR_EXACT_MAX:
            scores = self.vectors[: self.size] @ query
            top = np.argpartition(-scores, take - 1)[:take]
            top = top[np.argsort(-scores[top])]
            return top, scores[top]
        ivf = self._inverted_file()
        ivf.nprobe = settings.TRIAGE_SIMILAR_NPROBE
        scores, positions = ivf.search(query.reshape(1, -1), take)
        keep = positions[0] >= 0
        return positions[0][keep], scores[0][keep]

    def _inverted_file(self) -> Any:
        import faiss

        assert self.vectors is not None
        if self.ivf is None or self.size >= 2 * self.ivf_trained_on:
            dim = self.vectors.shape[1]
            lists = max(1, int(np.sqrt(self.size)))
            quantizer = faiss.IndexFlatIP(dim)
            ivf = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
            ivf.cp.niter = 10
            # k-means on a sample: 40 points a list is plenty, and keeps training to seconds.
            rng = np.random.default_rng(0)
            sample = rng.choice(self.size, size=min(self.size, 40 * lists), replace=False)
            ivf.train(self.vectors[np.sort(sample)])
            self.ivf, self.ivf_rows, self.ivf_trained_on = ivf, 0, self.size
        if self.ivf_rows < self.size:
            rows = np.arange(self.ivf_rows, self.size)
            self.ivf.add_with_ids(self.vectors[self.ivf_rows : self.size], rows)
            self.ivf_rows = self.size
        return self.ivf


class VectorIndex:
    """One kind of item's vectors per embedding space, for exact cosine search."""

    def __init__(self, load: Loader) -> None:
        self._load = load
        self._matrices: dict[str, _Matrix] = {}
        self._rebuilding: set[str] = set()
        self._lock = threading.Lock()

    def _current(self, encoder: str) -> _Matrix:
        clock = time.monotonic()
        matrix = self._matrices.get(encoder)
        if matrix is None:
            # The process's first query pays for the load (seconds at 100,000 rows).
            matrix = self._build(encoder)
            self._matrices[encoder] = matrix
            return matrix
        if (
            clock - matrix.built > settings.TRIAGE_SIMILAR_REBUILD_SECONDS
            and encoder not in self._rebuilding
        ):
            # Later rebuilds happen aside while the old matrix keeps answering.
            self._rebuilding.add(encoder)
            threading.Thread(target=self._rebuild_aside, args=(encoder,), daemon=True).start()
        if clock - matrix.refreshed > settings.TRIAGE_SIMILAR_REFRESH_SECONDS:
            ids, blobs, matrix.state = self._load(encoder, matrix.state)
            matrix.append(ids, blobs)
            matrix.refreshed = clock
        return matrix

    def _build(self, encoder: str) -> _Matrix:
        clock = time.monotonic()
        matrix = _Matrix(encoder=encoder, built=clock, refreshed=clock)
        ids, blobs, matrix.state = self._load(encoder, matrix.state)
        matrix.append(ids, blobs)
        if matrix.size >= settings.TRIAGE_SIMILAR_EXACT_MAX:
            matrix._inverted_file()
        return matrix

    def _rebuild_aside(self, encoder: str) -> None:
        try:
            fresh = self._build(encoder)
            with self._lock:
                self._matrices[encoder] = fresh
        finally:
            self._rebuilding.discard(encoder)
            connection.close()  # this thread's own connection

    def nearest(
        self, encoder: str, query: np.ndarray, *, count: int, exclude: int | None = None
    ) -> list[tuple[int, float]]:
        """Up to `count` (item id, cosine) pairs, most similar first."""
        with self._lock:  # FAISS indexes must not be searched while rows are added
            matrix = self._current(encoder)
            if matrix.vectors is None or matrix.size == 0:
                return []
            if query.shape[0] != matrix.vectors.shape[1]:
                return []
            norm = float(np.linalg.norm(query))
            unit = (query / norm if norm else query).astype(np.float32)
            positions, scores = matrix.search(unit, min(count + 1, matrix.size))
            ids = matrix.ids
        found = [(int(ids[p]), float(score)) for p, score in zip(positions, scores, strict=True)]
        return [(pk, score) for pk, score in found if pk != exclude][:count]

    def clear(self) -> None:
        with self._lock:
            self._matrices.clear()


resolved_index = VectorIndex(_load_resolved)
open_index = VectorIndex(_load_open)


def item_vector(item: Item) -> tuple[str, np.ndarray] | None:
    """The item's cached vector, in the champion's embedding space when it has one."""
    rows = dict(Embedding.objects.filter(item=item).values_list("encoder", "vector"))
    if not rows:
        return None
    champion = ModelVersion.objects.champion()
    encoder = champion.encoder if champion and champion.encoder in rows else sorted(rows)[0]
    return encoder, np.frombuffer(bytes(rows[encoder]), dtype=np.float32)


@dataclass(frozen=True)
class SimilarItem:
    item: Item
    similarity: float


def similar_resolved(item: Item, *, count: int = 5) -> list[SimilarItem]:
    """The `count` nearest resolved items, with their final category and who decided."""
    found = item_vector(item)
    if found is None:
        return []
    encoder, vector = found
    # Oversample: a candidate may have been reopened or forgotten since the last refresh.
    candidates = resolved_index.nearest(encoder, vector, count=count * 4, exclude=item.pk)
    items = under_check(Item.objects.select_related("final_category")).in_bulk(
        [pk for pk, _ in candidates]
    )
    # An item under second review or disagreement is not final: its first decision is
    # shown nowhere until the check closes (triage.access).
    out = [
        SimilarItem(items[pk], score)
        for pk, score in candidates
        if pk in items
        and items[pk].status == Item.Status.RESOLVED
        and not items[pk].text_removed
        and not items[pk].under_check  # type: ignore[attr-defined]  # annotated
    ]
    return out[:count]


@dataclass(frozen=True)
class SimilarTask:
    task: ReviewTask
    similarity: float


def similar_open_tasks(
    task: ReviewTask, *, user: User, senior: bool, count: int, floor: float
) -> list[SimilarTask]:
    """Open tasks on items at least `floor` similar to this one (cosine) that the user
    could decide in bulk now, most similar first.

    Without a floor the panel filled up with whatever was nearest, and an analyst
    ticking down the list decided unrelated items with one category.
    """
    from reviews.bulk import bulk_candidates

    found = item_vector(task.item)
    if found is None:
        return []
    encoder, vector = found
    candidates = [
        (pk, score)
        for pk, score in open_index.nearest(encoder, vector, count=count * 4, exclude=task.item_id)
        if score >= floor
    ]
    scores = dict(candidates)
    tasks = bulk_candidates(user=user, senior=senior).filter(item_id__in=scores).exclude(pk=task.pk)
    ranked = sorted(tasks.select_related("item"), key=lambda t: -scores[t.item_id])
    return [SimilarTask(t, scores[t.item_id]) for t in ranked[:count]]


def clear_indexes() -> None:
    resolved_index.clear()
    open_index.clear()
