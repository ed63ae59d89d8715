"""Training candidates: a cross-fitted head, a fine-tuned encoder, a ready classifier.

Cross-fitting: K heads each score the examples they did not train on, giving
out-of-fold (OOF) predictions for every labelled example; the served head is
trained on all of them. The OOF predictions calibrate the temperature and are
the evidence thresholds are certified on. The assumption this adds: a head
trained on all n examples is at least as precise above a threshold as the heads
trained on (K-1)/K of them, so evidence about the fold heads carries over to
the served head. benchmarks/quality.py measures how far it strays.
"""

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from triage.classify.scoring import embed_items
from triage.ml.artifacts import file_sha256
from triage.ml.calibration import expected_calibration_error, fit_temperature, softmax
from triage.ml.encoder import Encoder, encoder_for
from triage.ml.evaluation import score_metrics
from triage.ml.heads import (
    EMBEDDING_C,
    EMBEDDING_WEIGHT,
    EnsembleHead,
    Head,
    LinearHead,
    save_head,
    train_logistic_head,
)
from triage.ml.knn import KNN_WEIGHT, train_knn_head
from triage.ml.tfidf import train_tfidf_head
from triage.models import ModelVersion
from triage.routing.evidence import HoldoutPredictions
from triage.training.models import TrainingExample
from triage.training.snapshot import (
    TRAINED_ON_ALL,
    TRAINED_ON_NONE,
    Examples,
    RetrainError,
)

FOLDS = 5


@dataclass(frozen=True)
class CrossFit:
    head: Head  # trained on everything, with the temperature fitted out of fold
    oof_probs: np.ndarray  # calibrated out-of-fold probabilities, in head.labels order
    oof_logits: np.ndarray  # the same before the temperature
    ece_uncalibrated: float  # out-of-fold ECE before temperature scaling


# What a fold fit returns: its labels and its logits on the held-out fold.
FoldFit = Callable[[np.ndarray, np.ndarray], tuple[tuple[str, ...], np.ndarray]]


def out_of_fold_logits(
    labels: Sequence[str], classes: Sequence[str], fit_fold: FoldFit, *, folds: int, seed: int
) -> np.ndarray:
    """Each example's logits (in ``classes`` order) from a model fitted without its fold."""
    from sklearn.model_selection import StratifiedKFold

    k = max(2, min(folds, min(list(labels).count(label) for label in classes)))
    y = np.array(labels)
    oof = np.zeros((len(labels), len(classes)))
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # A class with fewer than k members is allowed: its fold heads simply miss it.
        warnings.filterwarnings("ignore", message="The least populated class")
        splits = list(splitter.split(np.zeros(len(y)), y))
    for train_idx, test_idx in splits:
        if len(set(y[train_idx])) < 2:
            oof[test_idx] = 0.0  # nothing learnable: a uniform guess
            continue
        fold_labels, fold_logits = fit_fold(train_idx, test_idx)
        # A fold may miss a rare class; give it a logit no softmax will pick.
        oof[test_idx] = -1e4
        for j, label in enumerate(fold_labels):
            oof[test_idx, list(classes).index(label)] = fold_logits[:, j]
    return oof


def cross_fit_head(
    vectors: np.ndarray,
    *,
    labels: Sequence[str],
    folds: int = FOLDS,
    seed: int = 0,
    c: float = EMBEDDING_C,
) -> CrossFit:
    """Served head on all examples; K fold heads give calibrated out-of-fold probabilities."""
    labels = list(labels)
    head = train_logistic_head(vectors, labels, c=c)
    y = np.array(labels)

    def fit_fold(train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        fold_head = train_logistic_head(vectors[train_idx], list(y[train_idx]), c=c)
        return fold_head.labels, fold_head.logits(vectors[test_idx])

    oof = out_of_fold_logits(labels, head.labels, fit_fold, folds=folds, seed=seed)
    targets = np.array([head.labels.index(label) for label in labels])
    temperature = fit_temperature(oof, targets)
    return CrossFit(
        head=LinearHead(head.labels, head.weights, head.bias, temperature),
        oof_probs=softmax(oof, temperature),
        oof_logits=oof,
        ece_uncalibrated=expected_calibration_error(softmax(oof), targets),
    )


def cross_fit_ensemble(
    vectors: np.ndarray,
    texts: Sequence[str],
    *,
    labels: Sequence[str],
    folds: int = FOLDS,
    seed: int = 0,
    c: float = EMBEDDING_C,
    weight: float = EMBEDDING_WEIGHT,
    knn_weight: float = KNN_WEIGHT,
    items: Sequence[int] | None = None,
) -> CrossFit:
    """cross_fit_head for the ensemble: each fold fits every part (its own TF-IDF
    vocabulary, its own voters) without the fold; one temperature on the combined
    out-of-fold logits. ``c`` and ``weight``: the embedding head's regularisation and
    share of the linear logits; ``knn_weight``: the vote's (0: no vote). ``items``: the
    item of each example, which the served head's vote is saved by."""
    labels, texts = list(labels), list(texts)
    y = np.array(labels)

    def ensemble(rows: np.ndarray, rows_items: Sequence[int] | None = None) -> EnsembleHead:
        rows_labels = list(y[rows])
        embedding = train_logistic_head(vectors[rows], rows_labels, c=c)
        tfidf = train_tfidf_head([texts[i] for i in rows], rows_labels)
        knn = (
            train_knn_head(vectors[rows], rows_labels, classes=embedding.labels, items=rows_items)
            if knn_weight
            else None
        )
        return EnsembleHead(embedding, tfidf, weight=weight, knn=knn, knn_weight=knn_weight)

    head = ensemble(np.arange(len(labels)), items)

    def fit_fold(train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        fold = ensemble(train_idx)
        return fold.labels, fold.logits(vectors[test_idx], [texts[i] for i in test_idx])

    oof = out_of_fold_logits(labels, head.labels, fit_fold, folds=folds, seed=seed)
    targets = np.array([head.labels.index(label) for label in labels])
    temperature = fit_temperature(oof, targets)
    return CrossFit(
        head=dataclasses.replace(head, temperature=temperature),
        oof_probs=softmax(oof, temperature),
        oof_logits=oof,
        ece_uncalibrated=expected_calibration_error(softmax(oof), targets),
    )


def fit_calibrated_head(vectors: np.ndarray, *, labels: Sequence[str]) -> tuple[LinearHead, float]:
    """Train on all examples with the temperature fitted out of fold (kept for benchmarks)."""
    fit = cross_fit_head(vectors, labels=labels)
    assert isinstance(fit.head, LinearHead)
    return fit.head, fit.ece_uncalibrated


@dataclass
class Candidate:
    """A measured model, not yet recorded: what the gate compares with the champion.

    ``evidence`` are its calibrated predictions on examples it did not train on
    (``evidence_probs`` the full rows, for the gate); ``trained_on`` says which
    examples it learned from (see snapshot.unseen_by).
    """

    kind: str
    labels: tuple[str, ...]
    temperature: float
    spec: dict[str, Any]
    model_id: str  # the embedding space (heads) or the model's own id
    metrics: dict[str, Any]
    evidence: HoldoutPredictions
    evidence_probs: np.ndarray
    trained_on: str
    # Writes the artifact (given a suggested path and metadata to embed in it)
    # and returns (path, sha256).
    save: Callable[[Path, dict[str, Any]], tuple[str, str]]

    def probs_for(self, example_ids: Sequence[int]) -> np.ndarray:
        row = {pk: i for i, pk in enumerate(self.evidence.example_ids)}
        return self.evidence_probs[[row[pk] for pk in example_ids]]


def _save_head(head: Head, spec: dict[str, Any]) -> Callable[..., tuple[str, str]]:
    def save(path: Path, metadata: dict[str, Any]) -> tuple[str, str]:
        metadata = metadata | {
            "encoder_spec": spec,
            "label_map": list(head.labels),
            "calibration": {"method": "temperature", "temperature": head.temperature},
        }
        return str(path), save_head(head, path, metadata=metadata)

    return save


def _evidence_metrics(
    labels: Sequence[str], probs: np.ndarray, examples: Sequence[TrainingExample]
) -> dict[str, Any]:
    return score_metrics(labels, probs, [ex.category.slug for ex in examples])


def cross_fit_examples(
    examples: Sequence[TrainingExample], *, encoder: Encoder, ensemble: bool
) -> CrossFit:
    """The examples' cached embeddings cross-fitted as a head: the ensemble (which also
    reads their training text, masked by the privacy rules, as the model should learn it,
    and votes by their items) or the embedding head alone."""
    vectors = embed_items([ex.item for ex in examples], encoder=encoder)
    truth = [ex.category.slug for ex in examples]
    if not ensemble:
        return cross_fit_head(vectors, labels=truth)
    return cross_fit_ensemble(
        vectors,
        [ex.text for ex in examples],
        labels=truth,
        items=[ex.item_id for ex in examples],
    )


def train_head_candidate(
    spec: dict[str, Any], *, examples: Examples, ensemble: bool = False
) -> Candidate:
    """A head over cached embeddings, cross-fitted on every example.

    ``ensemble``: averaged with a TF-IDF head over the examples' texts (TRIAGE_HEAD).
    """
    encoder = encoder_for(spec)
    truth = [ex.category.slug for ex in examples.all]
    fit = cross_fit_examples(examples.all, encoder=encoder, ensemble=ensemble)
    metrics = _evidence_metrics(fit.head.labels, fit.oof_probs, examples.all)
    metrics["ece_uncalibrated"] = fit.ece_uncalibrated
    metrics["measured_on"] = "out_of_fold"
    metrics["head"] = "ensemble" if ensemble else "embedding"
    if isinstance(fit.head, EnsembleHead) and fit.head.knn is not None:
        metrics["voters"] = len(fit.head.knn.targets)
    return Candidate(
        kind=ModelVersion.Kind.HEAD,
        labels=fit.head.labels,
        temperature=fit.head.temperature,
        spec=spec,
        model_id=encoder.encoder_id,
        metrics=metrics,
        evidence=HoldoutPredictions.from_scores(
            fit.head.labels, fit.oof_probs, truth, [ex.pk for ex in examples.all]
        ),
        evidence_probs=fit.oof_probs,
        trained_on=TRAINED_ON_ALL,
        save=_save_head(fit.head, spec),
    )


def _need_both_splits(examples: Examples, what: str) -> None:
    if not examples.train or not examples.holdout:
        raise RetrainError(
            f"{what} needs examples in both the train and the holdout split; have "
            f"{len(examples.train)} train and {len(examples.holdout)} holdout"
        )


def sequence_classifier_candidate(
    model_dir: Path, *, label_map: dict[str, str], examples: Examples
) -> Candidate:
    """A ready sequence-classification model, calibrated and measured like a head.

    It never saw our examples: its temperature is fitted on the train split and
    the holdout split is its evidence.
    """
    from triage.ml.seqcls import SequenceClassifier

    _need_both_splits(examples, "a ready classifier")
    categories = sorted({ex.category.slug for ex in examples.all})
    spec = {"path": str(model_dir), "label_map": label_map, "max_length": 256}
    classifier = SequenceClassifier(
        model_dir,
        label_map=label_map,
        categories=categories,
        max_tokens=settings.TRIAGE_BATCH_TOKENS,
    )
    labels = tuple(classifier.labels)
    train, holdout = examples.train, examples.holdout
    train_logits = classifier.logits([ex.text for ex in train])
    index = {label: i for i, label in enumerate(labels)}
    known = [i for i, ex in enumerate(train) if ex.category.slug in index]
    targets = np.array([index[train[i].category.slug] for i in known])
    temperature = fit_temperature(train_logits[known], targets) if known else 1.0
    holdout_logits = classifier.logits([ex.text for ex in holdout])
    truth = [ex.category.slug for ex in holdout]
    probs = softmax(holdout_logits, temperature)
    metrics = _evidence_metrics(labels, probs, holdout)
    metrics["ece_uncalibrated"] = score_metrics(labels, softmax(holdout_logits), truth)["ece"]
    metrics["measured_on"] = "holdout_split"
    weights = model_dir / "model.safetensors"
    return Candidate(
        kind=ModelVersion.Kind.SEQUENCE_CLASSIFIER,
        labels=labels,
        temperature=temperature,
        spec=spec,
        model_id=classifier.model_id,
        metrics=metrics,
        evidence=HoldoutPredictions.from_scores(labels, probs, truth, [ex.pk for ex in holdout]),
        evidence_probs=probs,
        trained_on=TRAINED_ON_NONE,
        save=lambda path, metadata: (str(weights), file_sha256(weights)),
    )
