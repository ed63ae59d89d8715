"""The rows of the similar-items indexes: which items' vectors each kind holds, read in
pages from the embedding cache, and where a load left off (its watermark).

Two kinds: "resolved" (past items with their final category, for context) and "open"
(items with an open task, for bulk decisions). A load from an empty watermark reads the
whole kind (the background build of the shared file, reviews.similar_files); a load from
a file's watermark reads only what is newer than the file (each web process's delta).
"""

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db.models import Max, Q
from django.utils import timezone

from triage.models import Embedding, Item, ReviewTask

# A resolution that committed late may carry an earlier decided_at: look back this far.
LATE_COMMIT_SLACK = timedelta(minutes=2)

KINDS = ("resolved", "open")


@dataclass
class LoadState:
    last_embedding_pk: int = 0
    last_task_pk: int = 0
    since: datetime | None = None

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> "LoadState":
        since = data.get("since")
        return cls(
            last_embedding_pk=int(data.get("last_embedding_pk") or 0),  # type: ignore[call-overload]
            last_task_pk=int(data.get("last_task_pk") or 0),  # type: ignore[call-overload]
            since=datetime.fromisoformat(since) if isinstance(since, str) else None,
        )


Loader = Callable[[str, LoadState], tuple[list[int], list[bytes], LoadState]]


def load_resolved(encoder: str, state: LoadState) -> tuple[list[int], list[bytes], LoadState]:
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
    return ids, blobs, LoadState(last_embedding_pk=last_pk, since=started)


def load_open(encoder: str, state: LoadState) -> tuple[list[int], list[bytes], LoadState]:
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
    return ids, blobs, LoadState(last_task_pk=last_task)


LOADERS: dict[str, Loader] = {"resolved": load_resolved, "open": load_open}


def watermark_now(kind: str) -> LoadState:
    """Where a load that should skip everything stored so far starts: used while a kind has
    no file yet, so that a web process never reads the whole kind on a request."""
    if kind == "open":
        return LoadState(last_task_pk=ReviewTask.objects.aggregate(m=Max("pk"))["m"] or 0)
    return LoadState(
        last_embedding_pk=Embedding.objects.aggregate(m=Max("pk"))["m"] or 0,
        since=timezone.now(),
    )


def unit_rows(blobs: Sequence[bytes]) -> np.ndarray:
    """The vectors as rows of unit length (cosine = inner product), float32."""
    rows = np.stack([np.frombuffer(b, dtype=np.float32) for b in blobs])
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.where(norms > 0, norms, 1.0)).astype(np.float32)
