"""Retraining, the promotion gate, promotion and roll back, and evaluation.

The promotion gate: a candidate becomes champion only if its macro-F1 on the
held-out examples is at least the champion's on the very same examples, each
scored the way it would serve (its own encoder, its own calibration). That
makes a new encoder (the int8 fast path, a fine-tuned encoder) or a ready
sequence-classification model pass the same test as a retrained head.
"""

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reviews.models import TrainingExample

from .ml.calibration import (
    ReliabilityBin,
    expected_calibration_error,
    fit_temperature,
    reliability_table,
    softmax,
)
from .ml.encoder import configured_spec, encoder_for
from .ml.evaluation import score_metrics
from .ml.heads import ArtifactError, LinearHead, load_head, save_head, train_logistic_head
from .models import AuditLog, ModelVersion, RoutingPolicy
from .policy import Automation, HoldoutPredictions, automation_at, thresholds_snapshot
from .scoring import ClassificationError, embed_items, version_scores

logger = logging.getLogger(__name__)


class RetrainError(Exception):
    pass


@dataclass(frozen=True)
class RetrainResult:
    version: ModelVersion
    promoted: bool
    message: str


@dataclass(frozen=True)
class Examples:
    train: list[TrainingExample]
    holdout: list[TrainingExample]
    counts: dict[str, int]  # train examples per category
    left_out: list[str]  # categories with too few examples for this version


def snapshot_examples() -> Examples:
    """The active examples, checked for enough data to train and to measure."""
    examples = list(
        TrainingExample.objects.active()
        .filter(category__is_active=True)
        .select_related("item", "category")
        .order_by("pk")
    )
    minimum = settings.TRIAGE_MIN_EXAMPLES_PER_CATEGORY
    counts = Counter(ex.category.slug for ex in examples if ex.split == TrainingExample.Split.TRAIN)
    usable = {slug for slug, n in counts.items() if n >= minimum}
    if len(usable) < 2:
        held = Counter(
            ex.category.slug for ex in examples if ex.split == TrainingExample.Split.HOLDOUT
        )
        have = (
            ", ".join(
                f"{slug} {counts.get(slug, 0)}"
                + (f" (+{held[slug]} held out)" if slug in held else "")
                for slug in sorted(set(counts) | set(held))
            )
            or "none"
        )
        raise RetrainError(
            f"too few examples to retrain: need at least {minimum} training examples in each "
            f"of at least two categories; have {have}"
        )
    holdout = [ex for ex in examples if ex.split == TrainingExample.Split.HOLDOUT]
    if not holdout:
        raise RetrainError(
            f"no holdout examples yet ({len(examples)} examples, all in train); "
            "the gate needs held-out examples to measure a new model"
        )
    return Examples(
        train=[ex for ex in examples if ex.split == "train" and ex.category.slug in usable],
        holdout=holdout,
        counts=dict(sorted(counts.items())),
        left_out=sorted(set(counts) - usable),
    )


def fit_calibrated_head(vectors: np.ndarray, labels: Sequence[str]) -> tuple[LinearHead, float]:
    """Train on all examples; fit the temperature on out-of-fold logits.

    Calibrating on held-out folds of the training set leaves the holdout
    untouched, so the gate and the thresholds are measured on data neither the
    model nor its calibration saw. Returns the head and the out-of-fold ECE
    before calibration.
    """
    from sklearn.model_selection import StratifiedKFold

    labels = list(labels)
    head = train_logistic_head(vectors, labels)
    folds = min(5, min(labels.count(label) for label in head.labels))
    if folds < 2:
        return head, float("nan")
    y = np.array(labels)
    oof = np.zeros((len(labels), len(head.labels)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    for train_idx, test_idx in splitter.split(vectors, y):
        fold_head = train_logistic_head(vectors[train_idx], list(y[train_idx]))
        fold_logits = fold_head.logits(vectors[test_idx])
        # A fold may miss a rare class; give it a logit no softmax will pick.
        oof[test_idx] = -1e4
        for j, label in enumerate(fold_head.labels):
            oof[test_idx, head.labels.index(label)] = fold_logits[:, j]
    targets = np.array([head.labels.index(label) for label in labels])
    temperature = fit_temperature(oof, targets)
    ece_before = expected_calibration_error(softmax(oof), targets)
    return LinearHead(head.labels, head.weights, head.bias, temperature), ece_before


@dataclass
class Candidate:
    """A measured model, not yet recorded: what the gate compares with the champion."""

    kind: str
    labels: tuple[str, ...]
    temperature: float
    spec: dict[str, Any]
    model_id: str  # the embedding space (heads) or the model's own id
    metrics: dict[str, Any]
    holdout: HoldoutPredictions
    # Writes the artifact (given a suggested path and metadata to embed in it)
    # and returns (path, sha256).
    save: Callable[[Path, dict[str, Any]], tuple[str, str]]


def _save_head(head: LinearHead, spec: dict[str, Any]) -> Callable[..., tuple[str, str]]:
    def save(path: Path, metadata: dict[str, Any]) -> tuple[str, str]:
        metadata = metadata | {
            "encoder_spec": spec,
            "label_map": list(head.labels),
            "calibration": {"method": "temperature", "temperature": head.temperature},
        }
        return str(path), save_head(head, path, metadata=metadata)

    return save


def train_head_candidate(spec: dict[str, Any], examples: Examples) -> Candidate:
    encoder = encoder_for(spec)
    items = [ex.item for ex in examples.train + examples.holdout]
    vectors = embed_items(items, encoder)
    x_train, x_holdout = vectors[: len(examples.train)], vectors[len(examples.train) :]
    y_train = [ex.category.slug for ex in examples.train]
    y_holdout = [ex.category.slug for ex in examples.holdout]
    head, ece_before = fit_calibrated_head(x_train, y_train)
    probs = head.predict_proba(x_holdout)
    metrics = score_metrics(head.labels, probs, y_holdout)
    metrics["ece_uncalibrated"] = score_metrics(
        head.labels, softmax(head.logits(x_holdout)), y_holdout
    )["ece"]
    metrics["ece_out_of_fold_uncalibrated"] = ece_before
    return Candidate(
        kind=ModelVersion.Kind.HEAD,
        labels=head.labels,
        temperature=head.temperature,
        spec=spec,
        model_id=encoder.encoder_id,
        metrics=metrics,
        holdout=HoldoutPredictions.from_scores(head.labels, probs, y_holdout),
        save=_save_head(head, spec),
    )


def train_fine_tuned_candidate(
    examples: Examples, *, progress: Callable[[int, int], None] | None = None
) -> Candidate:
    """Fine-tune the encoder end to end, then fit a head on its own embeddings."""
    from .ml.encoder import resolve_model_dir
    from .ml.finetune import fine_tune_encoder

    base = configured_spec()
    if base["class"] != "triage.ml.encoder.TransformerEncoder":
        raise RetrainError(
            "--fine-tune needs the torch encoder runtime (TRIAGE_ENCODER_RUNTIME=torch)"
        )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
    out_dir = Path(settings.TRIAGE_ARTIFACT_DIR) / f"encoder-{stamp}"
    fine_tune_encoder(
        resolve_model_dir(base["path"]),
        [ex.text for ex in examples.train],
        [ex.category.slug for ex in examples.train],
        out_dir=out_dir,
        max_length=min(int(base["max_length"]), 128),
        progress=progress,
    )
    return train_head_candidate(base | {"path": str(out_dir)}, examples)


def champion_f1_on(examples: Examples, champion: ModelVersion | None) -> float | None:
    if champion is None:
        return None
    holdout_items = [ex.item for ex in examples.holdout]
    try:
        scores = version_scores(champion, holdout_items)
    except (ArtifactError, ClassificationError):
        logger.exception("champion %s cannot be scored; the candidate is measured alone", champion)
        return None
    truth = [ex.category.slug for ex in examples.holdout]
    return float(score_metrics(scores.labels, scores.probs, truth)["macro_f1"])


def retrain(
    *,
    actor: str = "system",
    fine_tune: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RetrainResult:
    """Train a candidate on the active examples and promote it only if not worse."""
    examples = snapshot_examples()
    candidate = train_head_candidate(configured_spec(), examples)
    notes = []
    if fine_tune:
        tuned = train_fine_tuned_candidate(examples, progress=progress)
        better = tuned.metrics["macro_f1"] > candidate.metrics["macro_f1"]
        notes.append(
            f"fine-tuned macro-F1 {tuned.metrics['macro_f1']:.3f} vs head-only "
            f"{candidate.metrics['macro_f1']:.3f}: kept {'fine-tuned' if better else 'head-only'}"
        )
        if better:
            candidate = tuned
    return gate_and_record(candidate, examples, actor=actor, notes=notes)


def gate_and_record(
    candidate: Candidate, examples: Examples, *, actor: str, notes: list[str]
) -> RetrainResult:
    champion = ModelVersion.objects.champion()
    champion_f1 = champion_f1_on(examples, champion)
    f1 = candidate.metrics["macro_f1"]
    n = len(examples.holdout)
    if champion is None:
        promote, message = True, f"first model: holdout macro-F1 {f1:.3f}"
    elif champion_f1 is None:
        promote, message = True, f"champion {champion} cannot be scored; macro-F1 {f1:.3f}"
    elif f1 >= champion_f1:
        promote = True
        message = f"holdout macro-F1 {f1:.3f} ≥ champion's {champion_f1:.3f} on the same {n}"
    else:
        promote = False
        message = (
            f"kept champion {champion}: candidate holdout macro-F1 {f1:.3f} "
            f"< champion's {champion_f1:.3f} on the same {n} holdout examples"
        )
    if examples.left_out:
        notes.append(f"left out, too few examples: {', '.join(examples.left_out)}")
    if notes:
        message += " (" + "; ".join(notes) + ")"
    metrics = candidate.metrics | {"champion_macro_f1_same_holdout": champion_f1}
    snapshot = {
        "train": len(examples.train),
        "holdout": n,
        "per_category": examples.counts,
        "left_out_categories": examples.left_out,
        "max_example_id": max(ex.pk for ex in examples.train + examples.holdout),
    }
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
    path, sha = candidate.save(
        Path(settings.TRIAGE_ARTIFACT_DIR) / f"head-{stamp}.safetensors",
        {
            "encoder": candidate.model_id,
            "snapshot": snapshot,
            "metrics": {k: v for k, v in metrics.items() if k != "per_class"},
        },
    )
    with transaction.atomic():
        version = ModelVersion.objects.create(
            kind=candidate.kind,
            encoder=candidate.model_id,
            encoder_spec=candidate.spec,
            labels=list(candidate.labels),
            artifact_path=path,
            artifact_sha256=sha,
            temperature=candidate.temperature,
            metrics=metrics,
            holdout=candidate.holdout.as_json(),
            training_snapshot=snapshot,
            gate_decision=message,
        )
        record_gate(version, promote=promote, message=message, actor=actor)
    logger.info("retrain: %s", message)
    return RetrainResult(version=version, promoted=promote, message=message)


def record_gate(version: ModelVersion, *, promote: bool, message: str, actor: str) -> None:
    version.thresholds = thresholds_snapshot(version)
    version.save(update_fields=["thresholds"])
    if promote:
        _make_champion(version, actor=actor, action="promote", reason=message)
    else:
        before = version.status
        version.status = ModelVersion.Status.REJECTED
        version.save(update_fields=["status"])
        AuditLog.record_change(
            actor=actor,
            action="reject",
            target=f"model version {version.pk}",
            before={"status": before},
            after={"status": version.status},
            version=version.pk,
            reason=message,
        )


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
    AuditLog.record_change(
        actor=actor,
        action=action,
        target="champion",
        before={"champion": previous_ids},
        after={"champion": [version.pk]},
        version=version.pk,
        reason=reason,
    )


def _check_loadable(version: ModelVersion) -> None:
    if version.kind == ModelVersion.Kind.HEAD:
        load_head(version.artifact_path, version.artifact_sha256)


def promote_version(*, version: ModelVersion, actor: str) -> None:
    """An admin's explicit promotion, bypassing the gate (recorded in the audit log)."""
    _check_loadable(version)  # refuse a broken artifact
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
    _check_loadable(previous)
    with transaction.atomic():
        _make_champion(
            previous,
            actor=actor,
            action="rollback",
            reason="rolled back by an admin",
            old_champion_becomes=ModelVersion.Status.REJECTED,
        )
    return previous


def sequence_classifier_candidate(
    model_dir: Path, label_map: dict[str, str], examples: Examples
) -> Candidate:
    """A ready sequence-classification model, calibrated and measured like a head.

    It never saw our examples, so its temperature is fitted on the training
    split and it is measured on the holdout, as every candidate is.
    """
    from .ml.encoder import file_sha256
    from .ml.seqcls import SequenceClassifier

    categories = sorted({ex.category.slug for ex in examples.train + examples.holdout})
    spec = {"path": str(model_dir), "label_map": label_map, "max_length": 256}
    classifier = SequenceClassifier(
        model_dir,
        label_map=label_map,
        categories=categories,
        max_tokens=settings.TRIAGE_BATCH_TOKENS,
    )
    labels = tuple(classifier.labels)
    train_logits = classifier.logits([ex.text for ex in examples.train])
    index = {label: i for i, label in enumerate(labels)}
    known = [i for i, ex in enumerate(examples.train) if ex.category.slug in index]
    targets = np.array([index[examples.train[i].category.slug] for i in known])
    temperature = fit_temperature(train_logits[known], targets) if known else 1.0
    holdout_logits = classifier.logits([ex.text for ex in examples.holdout])
    y_holdout = [ex.category.slug for ex in examples.holdout]
    probs = softmax(holdout_logits, temperature)
    metrics = score_metrics(labels, probs, y_holdout)
    metrics["ece_uncalibrated"] = score_metrics(labels, softmax(holdout_logits), y_holdout)["ece"]
    weights = model_dir / "model.safetensors"
    return Candidate(
        kind=ModelVersion.Kind.SEQUENCE_CLASSIFIER,
        labels=labels,
        temperature=temperature,
        spec=spec,
        model_id=classifier.model_id,
        metrics=metrics,
        holdout=HoldoutPredictions.from_scores(labels, probs, y_holdout),
        save=lambda path, metadata: (str(weights), file_sha256(weights)),
    )


def register_sequence_classifier(
    *, model_dir: Path, label_map: dict[str, str], actor: str = "command"
) -> RetrainResult:
    """Measure a ready classifier on the holdout; it is promoted only through the gate."""
    examples = snapshot_examples()
    candidate = sequence_classifier_candidate(model_dir.resolve(), label_map, examples)
    return gate_and_record(candidate, examples, actor=actor, notes=[f"ready model {model_dir}"])


@dataclass(frozen=True)
class Evaluation:
    version: ModelVersion
    metrics: dict[str, Any]
    ece_uncalibrated: float | None
    reliability: list[ReliabilityBin]
    automation: list[Automation]


def evaluate_version(
    version: ModelVersion, *, targets: Sequence[float] = (0.90, 0.95, 0.97, 0.99)
) -> Evaluation:
    """Measure a version on today's holdout examples, as it would serve."""
    holdout = list(
        TrainingExample.objects.active()
        .filter(split=TrainingExample.Split.HOLDOUT)
        .select_related("item", "category")
        .order_by("pk")
    )
    if not holdout:
        raise RetrainError("no holdout examples to evaluate on")
    truth = [ex.category.slug for ex in holdout]
    scores = version_scores(version, [ex.item for ex in holdout])
    # Undo the temperature to show what calibration changed: softmax is shift-invariant,
    # so T * log(p) are the raw logits up to a per-row constant.
    raw = softmax(np.log(np.clip(scores.probs, 1e-300, None)) * version.temperature)
    known = [i for i, t in enumerate(truth) if t in scores.labels]
    targets_idx = np.array([scores.labels.index(truth[i]) for i in known])
    predictions = HoldoutPredictions.from_scores(scores.labels, scores.probs, truth)
    min_support = RoutingPolicy.current().min_support
    return Evaluation(
        version=version,
        metrics=score_metrics(scores.labels, scores.probs, truth),
        ece_uncalibrated=(expected_calibration_error(raw[known], targets_idx) if known else None),
        reliability=(reliability_table(scores.probs[known], targets_idx) if known else []),
        automation=[automation_at(predictions, t, min_support=min_support) for t in targets],
    )
