"""Multi-step writes: ingest, classify-and-route, retrain, promote, roll back."""

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from reviews.models import ReviewTask, TrainingExample, split_for

from . import routing
from .intake import ItemIn
from .ml.calibration import fit_temperature
from .ml.encoder import Encoder, get_encoder
from .ml.evaluation import holdout_metrics
from .ml.heads import (
    ArtifactError,
    LinearHead,
    load_head,
    save_head,
    train_logistic_head,
    zero_shot_proba,
)
from .models import AuditLog, Category, Embedding, Item, ModelVersion, Prediction, RoutingPolicy

logger = logging.getLogger(__name__)

TOP_K = 3
# SQL parameter lists are chunked so huge batches stay under database limits.
IN_CHUNK = 900


class IngestConflict(Exception):
    """An external id arrived again with different text: ingest is idempotent, not an update."""

    def __init__(self, conflicts: Sequence[tuple[int, str]]) -> None:
        self.conflicts = list(conflicts)
        super().__init__(
            "; ".join(
                f"item {index}: external_id {eid!r} already exists with different text"
                for index, eid in conflicts
            )
        )


class ClassificationError(Exception):
    pass


class NotConfigured(Exception):
    """The system cannot accept items yet (for example, no categories exist)."""


class RetrainError(Exception):
    pass


@dataclass(frozen=True)
class IngestResult:
    created: list[Item]
    existing: list[Item]

    @property
    def items(self) -> list[Item]:
        return self.created + self.existing


def _existing_by_external_id(external_ids: Iterable[str]) -> dict[str, Item]:
    ids = list(external_ids)
    found: dict[str, Item] = {}
    for start in range(0, len(ids), IN_CHUNK):
        for item in Item.objects.filter(external_id__in=ids[start : start + IN_CHUNK]):
            found[item.external_id] = item
    return found


def find_conflicts(
    items: Sequence[ItemIn], existing: dict[str, Item] | None = None
) -> list[tuple[int, str]]:
    """(index, external_id) of items whose id is stored, or repeated, with other text."""
    if existing is None:
        existing = _existing_by_external_id(i.external_id for i in items)
    seen: dict[str, str] = {}
    conflicts: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        stored = existing.get(item.external_id)
        earlier = seen.setdefault(item.external_id, item.text)
        if (stored is not None and stored.text != item.text) or earlier != item.text:
            conflicts.append((index, item.external_id))
    return conflicts


def _split_new_and_existing(items: Sequence[ItemIn]) -> tuple[list[ItemIn], dict[str, Item]]:
    """New items (deduplicated), and the stored ones; raise on any text conflict."""
    existing = _existing_by_external_id(i.external_id for i in items)
    conflicts = find_conflicts(items, existing)
    if conflicts:
        raise IngestConflict(conflicts)
    new = {i.external_id: i for i in items if i.external_id not in existing}
    return list(new.values()), existing


def _queue_classification(item_ids: list[int]) -> Callable[[], None]:
    from .tasks import classify_items

    def queue_classification() -> None:
        classify_items.delay(item_ids)

    return queue_classification


def ingest_items(*, items: Sequence[ItemIn], source: str = Item.Source.API) -> IngestResult:
    """Store items, then queue their classification once the rows are committed.

    The same external id with the same text returns the stored item; with
    different text the whole batch is refused and nothing is written.
    """
    if not Category.objects.filter(is_active=True).exists():
        raise NotConfigured(
            "no active categories: an admin must create at least one before items can be routed"
        )
    for attempt in range(2):
        try:
            with transaction.atomic():
                new, existing = _split_new_and_existing(items)
                created = Item.objects.bulk_create(
                    Item(external_id=i.external_id, text=i.text, metadata=i.metadata, source=source)
                    for i in new
                )
                ids = [item.pk for item in created]
                chunk = settings.TRIAGE_CLASSIFY_CHUNK
                for start in range(0, len(ids), chunk):
                    # robust: the items are stored whatever happens next; a failed
                    # hand-off is logged and the sweep (classify_stuck) retries it.
                    transaction.on_commit(
                        _queue_classification(ids[start : start + chunk]), robust=True
                    )
            break
        except IntegrityError:
            # A concurrent request stored one of these ids between our read and
            # write; read again so it is reported as existing (or a conflict).
            if attempt == 1:
                raise
    by_id = {i.external_id: i for i in created} | existing
    ordered = list(dict.fromkeys(i.external_id for i in items))
    return IngestResult(
        created=[by_id[e] for e in ordered if e not in existing],
        existing=[by_id[e] for e in ordered if e in existing],
    )


def import_history(*, items: Sequence[ItemIn], categories: dict[str, Category]) -> IngestResult:
    """Store labelled rows as already-resolved items plus "import" training examples."""
    now = timezone.now()
    with transaction.atomic():
        new, existing = _split_new_and_existing(items)
        created = Item.objects.bulk_create(
            Item(
                external_id=i.external_id,
                text=i.text,
                metadata=i.metadata,
                source=Item.Source.IMPORT,
                status=Item.Status.RESOLVED,
                final_category=categories[i.label or ""],
                decided_by="import",
                decided_at=now,
            )
            for i in new
        )
        TrainingExample.objects.bulk_create(
            TrainingExample(
                item=item,
                text=item.text,
                category=item.final_category,
                source=TrainingExample.Source.IMPORT,
                split=split_for(item.external_id),
            )
            for item in created
        )
    return IngestResult(created=created, existing=list(existing.values()))


def embed_items(items: Sequence[Item], encoder: Encoder | None = None) -> np.ndarray:
    """Vectors for items in order, from the cache where possible; new ones are cached."""
    encoder = encoder or get_encoder()
    ids = [item.pk for item in items]
    cached: dict[int, np.ndarray] = {}
    for start in range(0, len(ids), IN_CHUNK):
        for item_id, blob in Embedding.objects.filter(
            encoder=encoder.encoder_id, item_id__in=ids[start : start + IN_CHUNK]
        ).values_list("item_id", "vector"):
            cached[item_id] = np.frombuffer(bytes(blob), dtype=np.float32)
    missing = [item for item in items if item.pk not in cached]
    if missing:
        fresh = encoder.encode([item.text for item in missing]).astype(np.float32)
        Embedding.objects.bulk_create(
            [
                Embedding(item_id=item.pk, encoder=encoder.encoder_id, vector=vector.tobytes())
                for item, vector in zip(missing, fresh, strict=True)
            ],
            ignore_conflicts=True,
        )
        cached.update((item.pk, vector) for item, vector in zip(missing, fresh, strict=True))
    out = np.zeros((len(items), encoder.dim), dtype=np.float32)
    for row, item in enumerate(items):
        out[row] = cached[item.pk]
    return out


_description_vectors: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}


def _zero_shot_head(encoder: Encoder) -> tuple[list[Category], np.ndarray]:
    categories = list(Category.objects.filter(is_active=True))
    if not categories:
        raise ClassificationError("no active categories: create at least one before ingesting")
    texts = tuple(f"{c.name}. {c.description}" for c in categories)
    key = (encoder.encoder_id, texts)
    if key not in _description_vectors:
        _description_vectors[key] = encoder.encode(list(texts))
    return categories, _description_vectors[key]


def current_policy() -> routing.Policy:
    policy = RoutingPolicy.current()
    overrides = {
        slug: threshold
        for slug, threshold in Category.objects.values_list("slug", "threshold")
        if threshold is not None
    }
    return routing.Policy(
        default_threshold=policy.default_threshold,
        category_thresholds=overrides,
        audit_rate=policy.audit_rate,
    )


def champion_head(encoder: Encoder) -> tuple[ModelVersion, LinearHead] | None:
    champion = ModelVersion.objects.champion()
    if champion is None:
        return None
    if champion.encoder != encoder.encoder_id:
        raise ClassificationError(
            f"champion {champion} was trained on encoder {champion.encoder}, but the "
            f"configured encoder is {encoder.encoder_id}; run `manage.py retrain`"
        )
    return champion, load_head(champion.artifact_path, champion.artifact_sha256)


def classify_items(*, item_ids: Sequence[int]) -> int:
    """Embed, score and route received items; returns how many were routed.

    Safe to run twice on the same ids (a redelivered task): items already past
    `received` are skipped, and rows are locked while they are routed.
    """
    encoder = get_encoder()
    items = list(Item.objects.pending().filter(pk__in=list(item_ids)).order_by("pk"))
    if not items:
        return 0
    # Embedding is the slow part; it happens outside the routing transaction.
    vectors = embed_items(items, encoder)
    champion = champion_head(encoder)
    if champion is None:
        categories, label_vectors = _zero_shot_head(encoder)
        labels = [c.slug for c in categories]
        probs = zero_shot_proba(vectors, label_vectors)
        version = None
    else:
        version, head = champion
        labels = list(head.labels)
        probs = head.predict_proba(vectors)
    policy = current_policy()
    by_slug = Category.objects.in_bulk(labels, field_name="slug")
    row_of = {item.pk: row for row, item in enumerate(items)}
    now = timezone.now()

    with transaction.atomic():
        locked = list(
            Item.objects.pending()
            .select_for_update(skip_locked=True)
            .filter(pk__in=[item.pk for item in items])
        )
        predictions, tasks = [], []
        for item in locked:
            row = probs[row_of[item.pk]]
            top = np.argsort(-row)[:TOP_K]
            label = labels[top[0]]
            scored = routing.ScoredItem(
                label=label, confidence=float(row[top[0]]), cold_start=version is None
            )
            decision = routing.decide(scored, policy, draw=routing.audit_draw(item.external_id))
            predictions.append(
                Prediction(
                    item=item,
                    model_version=version,
                    label=by_slug[label],
                    confidence=scored.confidence,
                    scores=[{"label": labels[i], "confidence": float(row[i])} for i in top],
                    route=decision.route.value,
                    reason=decision.reason.value,
                    threshold=decision.threshold,
                    created_at=now,
                )
            )
            if decision.route is routing.Route.AUTO:
                item.status = Item.Status.ROUTED
                item.final_category = by_slug[label]
                item.decided_by = f"model:v{version.pk}" if version else "model"
                item.decided_at = now
            else:
                item.status = Item.Status.IN_REVIEW
            if decision.route is routing.Route.REVIEW or decision.audit:
                tasks.append(
                    ReviewTask(
                        item=item,
                        reason=_task_reason(decision),
                        priority=0 if decision.audit else 10,
                        created_at=now,
                    )
                )
        Prediction.objects.bulk_create(predictions)
        Item.objects.bulk_update(locked, ["status", "final_category", "decided_by", "decided_at"])
        ReviewTask.objects.bulk_create(tasks)
    return len(locked)


def stuck_item_ids(*, older_than: timedelta, limit: int = 10_000) -> list[int]:
    """Items still `received` well after ingest: their classification was lost or failed."""
    cutoff = timezone.now() - older_than
    return list(
        Item.objects.pending()
        .filter(received_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def _task_reason(decision: routing.Decision) -> str:
    if decision.audit:
        return ReviewTask.Reason.AUDIT_SAMPLE
    if decision.reason is routing.Reason.COLD_START:
        return ReviewTask.Reason.COLD_START
    return ReviewTask.Reason.LOW_CONFIDENCE


# --- Retraining and the promotion gate -------------------------------------


@dataclass(frozen=True)
class RetrainResult:
    version: ModelVersion
    promoted: bool
    message: str


def _fit_calibrated_head(vectors: np.ndarray, labels: list[str]) -> LinearHead:
    """Train on all train examples; fit the temperature on out-of-fold logits.

    Calibrating on held-out folds of the training set keeps the holdout
    untouched, so the gate and the thresholds are measured on data the model
    and its calibration never saw.
    """
    from sklearn.model_selection import StratifiedKFold

    head = train_logistic_head(vectors, labels)
    counts = {label: labels.count(label) for label in head.labels}
    folds = min(5, min(counts.values()))
    if folds < 2:
        return head
    oof_logits = np.zeros((len(labels), len(head.labels)))
    y = np.array(labels)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    for train_idx, test_idx in splitter.split(vectors, y):
        fold_head = train_logistic_head(vectors[train_idx], list(y[train_idx]))
        fold_logits = fold_head.logits(vectors[test_idx])
        # A fold may miss a rare class; place its columns where the full head expects them.
        for j, label in enumerate(fold_head.labels):
            oof_logits[test_idx, head.labels.index(label)] = fold_logits[:, j]
        missing = [i for i, label in enumerate(head.labels) if label not in fold_head.labels]
        oof_logits[np.ix_(test_idx, missing)] = -1e4
    targets = np.array([head.labels.index(label) for label in labels])
    temperature = fit_temperature(oof_logits, targets)
    return LinearHead(head.labels, head.weights, head.bias, temperature)


def retrain(*, actor: str = "system") -> RetrainResult:
    """Train a candidate on the active examples and promote it only if not worse.

    The gate compares holdout macro-F1 of the candidate and the champion on
    the same holdout examples. The first model is promoted if it trains.
    """
    encoder = get_encoder()
    examples = list(
        TrainingExample.objects.active()
        .filter(category__is_active=True)
        .select_related("item", "category")
        .order_by("pk")
    )
    minimum = settings.TRIAGE_MIN_EXAMPLES_PER_CATEGORY
    train_counts: dict[str, int] = {}
    for ex in examples:
        if ex.split == TrainingExample.Split.TRAIN:
            train_counts[ex.category.slug] = train_counts.get(ex.category.slug, 0) + 1
    usable = sorted(slug for slug, n in train_counts.items() if n >= minimum)
    if len(usable) < 2:
        have = ", ".join(f"{slug} {n}" for slug, n in sorted(train_counts.items())) or "none"
        raise RetrainError(
            f"too few examples to retrain: need at least {minimum} training examples in each "
            f"of at least two categories; have {have}"
        )
    train = [ex for ex in examples if ex.split == "train" and ex.category.slug in usable]
    holdout = [ex for ex in examples if ex.split == "holdout"]
    if not holdout:
        raise RetrainError(
            f"no holdout examples yet ({len(examples)} examples, all in train); "
            "the gate needs held-out examples to measure a new model"
        )
    left_out = sorted(set(train_counts) - set(usable))

    vectors = embed_items([ex.item for ex in train + holdout], encoder)
    x_train, x_holdout = vectors[: len(train)], vectors[len(train) :]
    y_train = [ex.category.slug for ex in train]
    y_holdout = [ex.category.slug for ex in holdout]

    head = _fit_calibrated_head(x_train, y_train)
    metrics = holdout_metrics(head, x_holdout, y_holdout)
    snapshot = {
        "train": len(train),
        "holdout": len(holdout),
        "per_category": dict(sorted(train_counts.items())),
        "left_out_categories": left_out,
        "max_example_id": max(ex.pk for ex in examples),
    }
    champion = ModelVersion.objects.champion()
    champion_f1 = _champion_f1(champion, encoder, x_holdout, y_holdout)
    candidate_f1 = metrics["macro_f1"]
    if champion is None:
        promote, message = True, f"first model: holdout macro-F1 {candidate_f1:.3f}"
    elif champion_f1 is None:
        promote = True
        message = (
            f"champion {champion} cannot be scored on encoder {encoder.encoder_id}; "
            f"candidate macro-F1 {candidate_f1:.3f}"
        )
    elif candidate_f1 >= champion_f1:
        promote = True
        message = f"holdout macro-F1 {candidate_f1:.3f} ≥ champion's {champion_f1:.3f}"
    else:
        promote = False
        message = (
            f"kept champion {champion}: candidate holdout macro-F1 {candidate_f1:.3f} "
            f"< champion's {champion_f1:.3f} on the same {len(holdout)} holdout examples"
        )
    if left_out:
        message += f" (left out, too few examples: {', '.join(left_out)})"
    if champion_f1 is not None:
        metrics["champion_macro_f1_same_holdout"] = champion_f1

    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
    path = settings.TRIAGE_ARTIFACT_DIR / f"head-{stamp}.safetensors"
    sha = save_head(head, path, metadata={"encoder": encoder.encoder_id, "snapshot": snapshot})
    with transaction.atomic():
        version = ModelVersion.objects.create(
            status=ModelVersion.Status.CANDIDATE,
            encoder=encoder.encoder_id,
            labels=list(head.labels),
            artifact_path=str(path),
            artifact_sha256=sha,
            temperature=head.temperature,
            metrics=metrics,
            training_snapshot=snapshot,
            gate_decision=message,
        )
        if promote:
            _make_champion(version, actor=actor, action="promote", reason=message)
        else:
            version.status = ModelVersion.Status.REJECTED
            version.save(update_fields=["status"])
            AuditLog.record(actor=actor, action="reject", version=version.pk, reason=message)
    logger.info("retrain: %s", message)
    return RetrainResult(version=version, promoted=promote, message=message)


def _champion_f1(
    champion: ModelVersion | None, encoder: Encoder, vectors: np.ndarray, labels: list[str]
) -> float | None:
    if champion is None or champion.encoder != encoder.encoder_id:
        return None
    try:
        head = load_head(champion.artifact_path, champion.artifact_sha256)
    except ArtifactError:
        logger.exception("champion %s cannot be loaded; the candidate is measured alone", champion)
        return None
    return float(holdout_metrics(head, vectors, labels)["macro_f1"])


def _make_champion(
    version: ModelVersion,
    *,
    actor: str,
    action: str,
    reason: str,
    old_champion_becomes: str = ModelVersion.Status.RETIRED,
) -> None:
    previous = ModelVersion.objects.select_for_update().filter(status=ModelVersion.Status.CHAMPION)
    previous_ids = list(previous.values_list("pk", flat=True))
    previous.update(status=old_champion_becomes)
    version.status = ModelVersion.Status.CHAMPION
    # A rolled-back-to version keeps its first promotion time, so a second
    # roll back goes one step further back instead of flip-flopping.
    version.promoted_at = version.promoted_at or timezone.now()
    version.save(update_fields=["status", "promoted_at"])
    AuditLog.record(
        actor=actor, action=action, version=version.pk, previous=previous_ids, reason=reason
    )


def promote_version(*, version: ModelVersion, actor: str) -> None:
    """An admin's explicit promotion, bypassing the gate (recorded in the audit log)."""
    load_head(version.artifact_path, version.artifact_sha256)  # refuse a broken artifact
    with transaction.atomic():
        _make_champion(version, actor=actor, action="promote", reason="promoted by an admin")


def rollback(*, actor: str) -> ModelVersion:
    """Reject the champion and bring back the one that served before it."""
    previous = (
        ModelVersion.objects.filter(status=ModelVersion.Status.RETIRED)
        .exclude(promoted_at__isnull=True)
        .order_by("-promoted_at")
        .first()
    )
    if previous is None:
        raise RetrainError("nothing to roll back to: no earlier champion")
    load_head(previous.artifact_path, previous.artifact_sha256)
    with transaction.atomic():
        _make_champion(
            previous,
            actor=actor,
            action="rollback",
            reason="rolled back by an admin",
            old_champion_becomes=ModelVersion.Status.REJECTED,
        )
    return previous
