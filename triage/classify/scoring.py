"""Turning items into calibrated category probabilities, for any kind of model version.

Embeddings are cached per item and embedding space, so an item is embedded
once per encoder, whether for classification, retraining or evaluation.
"""

import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from triage.ml.calibration import softmax
from triage.ml.encoder import Encoder, encoder_for, get_encoder
from triage.ml.heads import (
    EnsembleHead,
    check_artifact,
    head_proba,
    load_head,
    zero_shot_proba,
)
from triage.ml.threads import encoder_threads
from triage.models import Category, Embedding, Item, ModelVersion, among
from triage.models.bulk import insert_values

if TYPE_CHECKING:
    from triage.ml.seqcls import SequenceClassifier

# SQL parameter lists are chunked so huge batches stay under database limits.
IN_CHUNK = 900


class ClassificationError(Exception):
    pass


@dataclass(frozen=True)
class Scores:
    labels: tuple[str, ...]
    probs: np.ndarray  # (n_items, n_labels), rows sum to 1
    _tops: dict[int, list[list[tuple[str, float]]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def top(self, row: int, k: int) -> list[tuple[str, float]]:
        """The row's k most probable labels, most probable first, with their probabilities.

        Every row's are found at the first call, in one sort of the whole array rather
        than one per row, and kept (a batch's rows are each read once, in turn)."""
        ranked = self._tops.get(k)
        if ranked is None:
            order = np.argsort(-self.probs, axis=1, kind="stable")[:, :k]
            probs = np.take_along_axis(self.probs, order, axis=1).tolist()
            ranked = [
                [(self.labels[i], p) for i, p in zip(o, q, strict=True)]
                for o, q in zip(order.tolist(), probs, strict=True)
            ]
            self._tops[k] = ranked
        return ranked[row]


def embed_items(items: Sequence[Item], *, encoder: Encoder) -> np.ndarray:
    """Vectors for items in order, from the cache where possible; new ones are cached."""
    ids = [item.pk for item in items]
    cached: dict[int, np.ndarray] = {}
    # One array parameter on PostgreSQL (among); elsewhere lists within the limits.
    step = max(len(ids), 1) if connection.vendor == "postgresql" else IN_CHUNK
    for start in range(0, len(ids), step):
        for item_id, blob in Embedding.objects.filter(
            encoder=encoder.encoder_id, item_id__in=among(ids[start : start + step])
        ).values_list("item_id", "vector"):
            cached[item_id] = np.frombuffer(bytes(blob), dtype=np.float32)
    missing = [item for item in items if item.pk not in cached]
    if missing:
        fresh = encoder.encode([item.text for item in missing]).astype(np.float32)
        _insert_cached(
            [
                {"item_id": item.pk, "encoder": encoder.encoder_id, "vector": vector.tobytes()}
                for item, vector in zip(missing, fresh, strict=True)
            ]
        )
        cached.update((item.pk, vector) for item, vector in zip(missing, fresh, strict=True))
    out = np.zeros((len(items), encoder.dim), dtype=np.float32)
    for row, item in enumerate(items):
        out[row] = cached[item.pk]
    return out


def _insert_cached(rows: list[dict[str, Any]]) -> None:
    """The embedding cache is a cache: when its rows are a transaction of their own, that
    commit need not wait for the disk. A crash of the database server can lose the rows of
    its last fraction of a second (never half of one, never a decision): embed_items embeds
    them again when a retrain or an evaluation asks, and until then the similar-items panel
    has no vector for those items. Inside a caller's transaction, its durability stands."""
    own = not connection.in_atomic_block
    with transaction.atomic():
        if own and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        insert_values(Embedding, rows, ignore_conflicts=True)


@functools.cache
def _description_vectors(encoder_id: str, texts: tuple[str, ...]) -> np.ndarray:
    return get_encoder().encode(list(texts))


def zero_shot_scores(items: Sequence[Item]) -> Scores:
    """Cold start: similarity to each category's description. Never auto-acts."""
    categories = list(Category.objects.filter(is_active=True))
    if not categories:
        raise ClassificationError("no active categories: create at least one before ingesting")
    encoder = get_encoder()
    texts = tuple(f"{c.name}. {c.description}" for c in categories)
    label_vectors = _description_vectors(encoder.encoder_id, texts)
    probs = zero_shot_proba(embed_items(items, encoder=encoder), label_vectors)
    return Scores(tuple(c.slug for c in categories), probs)


@functools.lru_cache(maxsize=4)
def _sequence_classifier(spec_json: str, categories: tuple[str, ...]) -> "SequenceClassifier":
    from triage.ml.seqcls import SequenceClassifier

    spec = json.loads(spec_json)
    return SequenceClassifier(
        Path(spec["path"]),
        label_map=spec.get("label_map", {}),
        categories=categories,
        max_length=spec.get("max_length", 256),
        max_tokens=settings.TRIAGE_BATCH_TOKENS,
        threads=encoder_threads(),
    )


def version_scores(version: ModelVersion, *, items: Sequence[Item]) -> Scores:
    """Calibrated probabilities of a model version for these items."""
    if version.kind == ModelVersion.Kind.SEQUENCE_CLASSIFIER:
        classifier = _sequence_classifier(
            json.dumps(version.encoder_spec, sort_keys=True), tuple(version.labels)
        )
        if classifier.model_id != version.encoder:
            raise ClassificationError(
                f"{version} was measured as {version.encoder}, but the model files now read "
                f"{classifier.model_id}; refusing to serve a model that changed"
            )
        logits = classifier.logits([item.text for item in items])
        return Scores(tuple(classifier.labels), softmax(logits, version.temperature))
    encoder = encoder_for(version.encoder_spec)
    if encoder.encoder_id != version.encoder:
        raise ClassificationError(
            f"{version} was trained on embeddings {version.encoder}, but its encoder now "
            f"produces {encoder.encoder_id}; the encoder files changed — retrain or roll back"
        )
    # Before every batch, not only at the first load: this process may have cached the
    # head before its file was replaced or tampered with, or before a roll back to it.
    # A head file is a few kilobytes, so the check costs microseconds.
    check_artifact(version.artifact_path, version.artifact_sha256)
    head = load_head(version.artifact_path, version.artifact_sha256)
    if isinstance(head, EnsembleHead) and head.knn is not None and head.knn.vectors is None:
        head = _with_voters(
            version.artifact_path,
            version.artifact_sha256,
            json.dumps(version.encoder_spec, sort_keys=True),
        )
    vectors = embed_items(items, encoder=encoder)
    # An ensemble head also reads the text (its TF-IDF half); a linear head ignores it.
    return Scores(
        head.labels,
        head_proba(head, vectors, [item.text for item in items], [item.pk for item in items]),
    )


# The champion and one more (a rolled-back or compared version): at 20,000 voters each
# holds about 30 MB of vectors.
@functools.lru_cache(maxsize=2)
def _with_voters(path: str, sha256: str, spec_json: str) -> EnsembleHead:
    """The ensemble with its vote's references loaded: the cached embeddings of the items
    it names whose text is still kept (a forgotten or pruned item no longer votes).

    Read once per version and process, like the head; a worker keeps the vectors in
    memory until it serves another version or restarts, and writes them nowhere."""
    head = load_head(path, sha256)
    assert isinstance(head, EnsembleHead) and head.knn is not None
    assert head.knn.items is not None
    encoder = encoder_for(json.loads(spec_json))
    ids = [int(i) for i in head.knn.items]
    found: dict[int, np.ndarray] = {}
    step = max(len(ids), 1) if connection.vendor == "postgresql" else IN_CHUNK
    for start in range(0, len(ids), step):
        part = among(ids[start : start + step])
        found.update(
            (item_id, np.frombuffer(bytes(blob), dtype=np.float32))
            for item_id, blob in Embedding.objects.filter(
                encoder=encoder.encoder_id,
                item_id__in=part,
                item__forgotten_at__isnull=True,
                item__pruned_at__isnull=True,
            ).values_list("item_id", "vector")
        )
    # A vector the cache lost (its lazy commit, or a changed cache) is embedded again, as
    # for any item whose text is still kept.
    lost = [i for i in ids if i not in found]
    if lost:
        kept: list[Item] = []
        for start in range(0, len(lost), step):
            kept += Item.objects.filter(
                pk__in=among(lost[start : start + step]),
                forgotten_at__isnull=True,
                pruned_at__isnull=True,
            ).only("id", "text")
        found.update(
            zip((item.pk for item in kept), embed_items(kept, encoder=encoder), strict=True)
        )
    return dataclasses.replace(head, knn=head.knn.attached(found))


def clear_caches() -> None:
    _description_vectors.cache_clear()
    _sequence_classifier.cache_clear()
    load_head.cache_clear()
    _with_voters.cache_clear()
