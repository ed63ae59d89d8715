"""Similar items: the nearest resolved items (and open tasks) by cached embedding.

Two indexes, "resolved" and "open" (reviews.similar_rows), each per embedding space:

- the host's shared file (reviews.similar_files): built in the background, mapped by every
  web process, so the vectors are in memory once per host, not once per process. A web
  process never builds it on a request: without a file (or with a damaged one) it logs
  why, queues a build and answers from what it has meanwhile;
- each process's delta: the rows newer than the file (items resolved, tasks opened since
  its build), read every TRIAGE_SIMILAR_REFRESH_SECONDS into a small in-process matrix,
  searched exactly up to TRIAGE_SIMILAR_EXACT_MAX rows, by a FAISS inverted file beyond.

A query searches both and merges them. Final categories, deciders and task states are
read from the database at query time, so an item reopened or a task closed since the
file was built drops out at once; the next build leaves it out of the file.

No text is embedded here: an item without a cached vector simply has no neighbours, and
the web process never loads the encoder for this panel.
"""

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User

from reviews import similar_files
from reviews.similar_files import IndexUnreadable, MappedIndex, trained_inverted_file
from reviews.similar_rows import LOADERS, LoadState, unit_rows, watermark_now
from triage.access import under_check
from triage.models import Embedding, Item, ModelVersion, ReviewTask

logger = logging.getLogger(__name__)

# A build older than this many rebuild intervals means the schedule is not running: the
# delta would grow without end, so a process asks for one itself.
OVERDUE = 3


@dataclass
class _Matrix:
    """Unit vectors in memory, searched exactly up to TRIAGE_SIMILAR_EXACT_MAX rows and by
    a FAISS inverted file beyond: a process's delta over the shared file."""

    encoder: str
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    vectors: np.ndarray | None = None
    size: int = 0
    known: set[int] = field(default_factory=set)
    ivf: Any = None  # a faiss.IndexIVFFlat over rows [0, ivf_rows), built on demand
    ivf_rows: int = 0
    ivf_trained_on: int = 0

    def append(self, ids: Sequence[int], blobs: Sequence[bytes]) -> None:
        new = [(i, b) for i, b in zip(ids, blobs, strict=True) if i not in self.known]
        if not new:
            return
        rows = unit_rows([b for _, b in new])
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

    def nearest(self, query: np.ndarray, take: int) -> list[tuple[int, float]]:
        if self.vectors is None or self.size == 0 or query.shape[0] != self.vectors.shape[1]:
            return []
        positions, scores = self.search(query, min(take, self.size))
        return [(int(self.ids[p]), float(s)) for p, s in zip(positions, scores, strict=True)]

    def _inverted_file(self) -> Any:
        assert self.vectors is not None
        if self.ivf is None or self.size >= 2 * self.ivf_trained_on:
            ivf = trained_inverted_file(self.vectors[: self.size])
            self.ivf, self.ivf_rows, self.ivf_trained_on = ivf, 0, self.size
        if self.ivf_rows < self.size:
            rows = np.arange(self.ivf_rows, self.size)
            self.ivf.add_with_ids(self.vectors[self.ivf_rows : self.size], rows)
            self.ivf_rows = self.size
        return self.ivf


@dataclass
class _Space:
    """What one process holds of one kind in one embedding space."""

    mapped: MappedIndex | None  # None while the kind has no usable file
    delta: _Matrix
    state: LoadState  # where the delta's next load starts
    checked: float  # when the pointer was last read (monotonic)
    refreshed: float = -1e18  # when the delta last loaded (monotonic)


class SharedIndex:
    """One kind's vectors per embedding space: the host's mapped file plus this process's
    delta of newer rows."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._spaces: dict[str, _Space] = {}
        self._lock = threading.Lock()

    def _latest(self, encoder: str, current: MappedIndex | None) -> tuple[MappedIndex | None, str]:
        """The newest readable build (`current` when the pointer has not moved), and why
        there is none that can be used, if so."""
        try:
            pointer = similar_files.read_pointer(self.kind, encoder)
            if pointer is None:
                return current, "not built yet"
            if current is not None and pointer["index"] == current.name:
                return current, ""
            return similar_files.open_index(pointer), ""
        except IndexUnreadable as exc:
            return current, f"unusable: {exc}"

    def _check_file(self, encoder: str, space: _Space | None, clock: float) -> _Space:
        """Switch to a newer build when the pointer names one; queue a build when there is
        none, or none that can be read, or the last is overdue (beat not running)."""
        latest, problem = self._latest(encoder, space.mapped if space else None)
        if problem:
            self._queue_build(encoder, problem)
            # In-process (eager) tasks have just built it: read it now.
            latest, _ = self._latest(encoder, latest)
        elif latest is not None and time.time() - latest.built_at > OVERDUE * max(
            settings.TRIAGE_SIMILAR_REBUILD_SECONDS, 60
        ):
            self._queue_build(encoder, "overdue (is celery beat running?)")
        if space is not None and latest is space.mapped:
            space.checked = clock
            return space
        if latest is None:
            # No file: only rows from now on, never the whole kind read on a request.
            return _Space(
                mapped=None,
                delta=space.delta if space else _Matrix(encoder=encoder),
                state=space.state if space else watermark_now(self.kind),
                checked=clock,
            )
        # A new build holds everything up to its watermark: the delta starts again there.
        return _Space(
            mapped=latest, delta=_Matrix(encoder=encoder), state=latest.state, checked=clock
        )

    def _queue_build(self, encoder: str, problem: str) -> None:
        from reviews.tasks import build_similar_index

        logger.warning(
            "similar items: the %s index for %s is %s (%s); queued a build",
            self.kind,
            encoder,
            problem,
            similar_files.pointer_path(self.kind, encoder),
        )
        try:
            build_similar_index.delay(self.kind, encoder, requested_at=time.time())
        except Exception:  # the panel must answer even when the broker does not
            logger.exception("similar items: could not queue the %s index build", self.kind)

    def _current(self, encoder: str) -> _Space:
        clock = time.monotonic()
        refresh = settings.TRIAGE_SIMILAR_REFRESH_SECONDS
        space = self._spaces.get(encoder)
        if space is None or clock - space.checked >= refresh:
            space = self._check_file(encoder, space, clock)
            self._spaces[encoder] = space
        if clock - space.refreshed >= refresh:
            ids, blobs, space.state = LOADERS[self.kind](encoder, space.state)
            space.delta.append(ids, blobs)
            space.refreshed = clock
        return space

    def nearest(
        self, encoder: str, query: np.ndarray, *, count: int, exclude: int | None = None
    ) -> list[tuple[int, float]]:
        """Up to `count` (item id, cosine) pairs, most similar first."""
        norm = float(np.linalg.norm(query))
        unit = (query / norm if norm else query).astype(np.float32)
        with self._lock:  # the delta's FAISS index must not be searched while rows are added
            space = self._current(encoder)
            found = space.delta.nearest(unit, count + 1)
            if space.mapped is not None:
                found += space.mapped.search(unit, count + 1)
        best: dict[int, float] = {}
        for pk, score in found:
            if pk != exclude and score > best.get(pk, -np.inf):
                best[pk] = score
        return sorted(best.items(), key=lambda pair: -pair[1])[:count]

    def mapped(self, encoder: str) -> MappedIndex | None:
        """The build this process searches (for tests and benchmarks)."""
        space = self._spaces.get(encoder)
        return space.mapped if space else None

    def clear(self) -> None:
        with self._lock:
            self._spaces.clear()


resolved_index = SharedIndex("resolved")
open_index = SharedIndex("open")


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
