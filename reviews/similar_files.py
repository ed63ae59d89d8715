"""The similar-items index files: one per kind and embedding space, shared by every web
process on a host through the OS page cache.

Each web process used to keep its own matrix (300 MB at 200,000 open tasks, loaded by its
first query in seconds). Now a background task (reviews.tasks, on Celery beat every
TRIAGE_SIMILAR_REBUILD_SECONDS) reads the kind's vectors, builds a FAISS IVFFlat index
(inner product on unit vectors = cosine) and writes it under TRIAGE_SIMILAR_INDEX_DIR.
Web processes open it with IO_FLAG_MMAP: the vectors stay in the file's pages, which the
kernel keeps once per host however many processes map them.

- Below TRIAGE_SIMILAR_EXACT_MAX rows the index has one list, so a search scans every row
  (exact); beyond, about sqrt(n) lists trained on a sample, TRIAGE_SIMILAR_NPROBE scanned.
- Files are never written in place. An index is written aside, renamed to a name unique to
  its build, and only then does the kind's pointer (`<kind>-<space>.json`: the index's
  name, size, rows and the watermark of what it holds) switch to it, by an atomic rename.
  A process that mapped the previous index keeps reading it, even once it is deleted
  (the kernel keeps a mapped file until it is unmapped); the builder keeps one previous
  index for processes that have just read the old pointer.
- The encoder's id is in the file names: another embedding space is another file.
"""

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from reviews.similar_rows import KINDS, LOADERS, LoadState, unit_rows
from triage.filelock import file_lock

logger = logging.getLogger(__name__)

FORMAT = 1
# Temporary files of a build that died are removed by a later build after this long.
ABANDONED_SECONDS = 3600


class IndexUnreadable(Exception):
    """A pointer or index file that exists but cannot be used (truncated, corrupt, ...)."""


def space_key(encoder: str) -> str:
    """A file-name-safe key of the embedding space: readable prefix, hash for uniqueness."""
    readable = re.sub(r"[^A-Za-z0-9]+", "-", encoder).strip("-")[:40]
    return f"{readable}-{hashlib.sha256(encoder.encode()).hexdigest()[:12]}"


def index_dir() -> Path:
    return Path(settings.TRIAGE_SIMILAR_INDEX_DIR)


def pointer_path(kind: str, encoder: str) -> Path:
    return index_dir() / f"{kind}-{space_key(encoder)}.json"


@dataclass(frozen=True)
class MappedIndex:
    """One build of a kind's index, mapped: searched by every query of this process."""

    kind: str
    encoder: str
    name: str  # the index file's name: unique to its build
    rows: int
    dim: int
    state: LoadState
    built_at: float  # seconds since the epoch
    index: Any  # faiss.IndexIVFFlat over the mapped file, or None for an empty kind

    def search(self, query: np.ndarray, take: int) -> list[tuple[int, float]]:
        """Up to `take` (item id, cosine) pairs, best first."""
        if self.index is None or self.rows == 0 or query.shape[0] != self.dim:
            return []
        import faiss

        params = faiss.SearchParametersIVF()
        params.nprobe = settings.TRIAGE_SIMILAR_NPROBE
        scores, ids = self.index.search(query.reshape(1, -1), min(take, self.rows), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


def read_pointer(kind: str, encoder: str) -> dict[str, Any] | None:
    """The kind's pointer, or None when no build has finished yet."""
    path = pointer_path(kind, encoder)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        pointer = json.loads(text)
        if pointer.get("format") != FORMAT or pointer.get("encoder") != encoder:
            raise ValueError(f"format {pointer.get('format')!r} for {pointer.get('encoder')!r}")
        return dict(pointer)
    except (ValueError, AttributeError) as exc:
        raise IndexUnreadable(f"{path}: not a similar-items pointer ({exc})") from None


def open_index(pointer: dict[str, Any]) -> MappedIndex:
    """Map the index a pointer names; IndexUnreadable when it is missing or damaged."""
    import faiss

    name = pointer.get("index")
    index = None
    if name is not None:
        path = index_dir() / str(name)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise IndexUnreadable(f"{path}: missing (named by its pointer)") from None
        if size != pointer.get("bytes"):
            raise IndexUnreadable(f"{path}: {size:,} bytes, its pointer says {pointer['bytes']}")
        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError as exc:
            raise IndexUnreadable(f"{path}: FAISS cannot read it ({exc})") from None
        if index.ntotal != pointer.get("rows") or index.d != pointer.get("dim"):
            raise IndexUnreadable(
                f"{path}: {index.ntotal} rows of {index.d} dimensions, its pointer says "
                f"{pointer.get('rows')} of {pointer.get('dim')}"
            )
    return MappedIndex(
        kind=str(pointer["kind"]),
        encoder=str(pointer["encoder"]),
        name=str(name),
        rows=int(pointer["rows"]),
        dim=int(pointer["dim"]),
        state=LoadState.from_json(pointer["state"]),
        built_at=float(pointer["built_at"]),
        index=index,
    )


def trained_inverted_file(vectors: np.ndarray) -> Any:
    """An empty FAISS inverted file (inner product, sqrt(n) lists), its lists found by
    k-means on a sample of `vectors`: 40 points a list is plenty, and keeps training to
    seconds. The host's files and each process's delta (reviews.similar) both use it."""
    import faiss

    size, dim = vectors.shape
    lists = max(1, int(np.sqrt(size)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    rng = np.random.default_rng(0)
    sample = rng.choice(size, size=min(size, 40 * lists), replace=False)
    index.train(vectors[np.sort(sample)])
    return index


def _faiss_index(vectors: np.ndarray, ids: np.ndarray) -> Any:
    import faiss

    size, dim = vectors.shape
    if size < settings.TRIAGE_SIMILAR_EXACT_MAX:
        # One list holding every row: each search scans them all, exactly.
        quantizer = faiss.IndexFlatIP(dim)
        quantizer.add(np.zeros((1, dim), dtype=np.float32))
        index = faiss.IndexIVFFlat(quantizer, dim, 1, faiss.METRIC_INNER_PRODUCT)
    else:
        index = trained_inverted_file(vectors)
    index.add_with_ids(vectors, ids)
    return index


def _write_aside(target: Path, write: Any) -> None:
    """Write `target` under a temporary name, flush it to disk, then rename it into place."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        with temporary.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def _build_lock(kind: str, encoder: str) -> Iterator[bool]:
    """One build of a kind's index at a time on this host; True when this caller has it."""
    with file_lock(index_dir() / f".{kind}-{space_key(encoder)}.lock") as mine:
        yield mine


def build_index(kind: str, encoder: str, *, requested_at: float | None = None) -> str:
    """Build the kind's index file from the database and switch its pointer to it.

    `requested_at`: a build asked for by a web process (no file, or a damaged one) is
    skipped when another finished since the request.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown similar-items index {kind!r}; known: {', '.join(KINDS)}")
    index_dir().mkdir(parents=True, exist_ok=True)
    with _build_lock(kind, encoder) as mine:
        if not mine:
            return f"skipped: a build of the {kind} index for {encoder} is running"
        if requested_at is not None and _built_since(kind, encoder, requested_at):
            return f"skipped: the {kind} index for {encoder} was built since it was asked for"
        started = time.monotonic()
        ids, blobs, state = LOADERS[kind](encoder, LoadState())
        unique = dict(zip(ids, blobs, strict=True))
        key = space_key(encoder)
        pointer: dict[str, Any] = {
            "format": FORMAT,
            "kind": kind,
            "encoder": encoder,
            "index": None,
            "bytes": 0,
            "rows": len(unique),
            "dim": 0,
            "state": state.as_json(),
            "built_at": time.time(),
        }
        if unique:
            vectors = unit_rows(list(unique.values()))
            index = _faiss_index(vectors, np.fromiter(unique, dtype=np.int64, count=len(unique)))
            import faiss

            stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
            target = index_dir() / f"{kind}-{key}.{stamp}.faiss"
            _write_aside(target, lambda path: faiss.write_index(index, str(path)))
            pointer |= {"index": target.name, "bytes": target.stat().st_size}
            pointer["dim"] = int(vectors.shape[1])
        _write_aside(
            pointer_path(kind, encoder),
            lambda path: path.write_text(json.dumps(pointer), encoding="utf-8"),
        )
        _remove_old_builds(kind, key, keep=pointer["index"])
    seconds = time.monotonic() - started
    logger.info(
        "similar items: built the %s index for %s, %d rows, in %.1fs",
        kind,
        encoder,
        pointer["rows"],
        seconds,
    )
    return f"built the {kind} index for {encoder}: {pointer['rows']} rows in {seconds:.1f}s"


def _built_since(kind: str, encoder: str, moment: float) -> bool:
    try:
        pointer = read_pointer(kind, encoder)
    except IndexUnreadable:
        return False
    return pointer is not None and float(pointer.get("built_at", 0)) >= moment


def spaces_in_use() -> list[str]:
    """The embedding spaces to rebuild on schedule: the champion's, and every space a
    process has asked for (each has a pointer)."""
    from triage.models import ModelVersion

    spaces: set[str] = set()
    champion = ModelVersion.objects.champion()
    if champion is not None and champion.encoder:
        spaces.add(champion.encoder)
    for path in index_dir().glob("*.json"):
        try:
            spaces.add(str(json.loads(path.read_text(encoding="utf-8"))["encoder"]))
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("similar items: %s is not a pointer; ignored", path)
    return sorted(spaces)


def build_all() -> list[str]:
    """Every kind's index in every space in use: what the schedule runs."""
    return [build_index(kind, encoder) for encoder in spaces_in_use() for kind in KINDS]


def _remove_old_builds(kind: str, key: str, *, keep: str | None) -> None:
    """All but the current build and the one before it (a process may have just read the
    previous pointer); a process that mapped an older one keeps its mapping."""
    builds = sorted(p for p in index_dir().glob(f"{kind}-{key}.*.faiss") if p.name != keep)
    for old in builds[:-1]:
        old.unlink(missing_ok=True)
    cutoff = time.time() - ABANDONED_SECONDS
    for temporary in index_dir().glob(f".{kind}-{key}*.tmp"):
        if temporary.stat().st_mtime < cutoff:
            temporary.unlink(missing_ok=True)
