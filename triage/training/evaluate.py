"""Measuring a model version, as it would serve, on examples it did not train on."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from triage.classify.scoring import version_scores
from triage.ml.calibration import (
    ReliabilityBin,
    expected_calibration_error,
    reliability_table,
    softmax,
)
from triage.ml.evaluation import score_metrics
from triage.models import ModelVersion, RoutingPolicy
from triage.routing.automation import Automation, automation_at
from triage.routing.evidence import HoldoutPredictions, load_evidence
from triage.training.models import TrainingExample
from triage.training.snapshot import RetrainError, unseen_by


@dataclass(frozen=True)
class Evaluation:
    version: ModelVersion
    metrics: dict[str, Any]
    ece_uncalibrated: float | None
    reliability: list[ReliabilityBin]
    automation: list[Automation]
    measured_on: str  # "new examples" or "out-of-fold evidence"


def _top_label_probs(evidence: HoldoutPredictions) -> np.ndarray:
    """Rows whose argmax and maximum are the stored prediction and confidence.

    Top-label ECE and reliability depend on nothing else, so they are exact.
    """
    k = len(evidence.labels)
    rest = (1 - evidence.confidence) / max(k - 1, 1)
    probs = np.repeat(rest[:, None], k, axis=1)
    probs[np.arange(len(evidence)), evidence.predicted] = evidence.confidence
    return probs


def evaluate_version(
    version: ModelVersion, *, targets: Sequence[float] = (0.90, 0.95, 0.97, 0.99)
) -> Evaluation:
    """On the labelled examples added since the version trained, if any; otherwise on the
    out-of-fold evidence it was certified on (cross-fitted heads train on everything)."""
    policy = RoutingPolicy.current()
    examples = unseen_by(
        version,
        examples=list(
            TrainingExample.objects.trusted().select_related("item", "category").order_by("pk")
        ),
    )
    if examples:
        truth = [ex.category.slug for ex in examples]
        scores = version_scores(version, items=[ex.item for ex in examples])
        labels, probs = scores.labels, scores.probs
        # Undo the temperature to show what calibration changed: softmax is shift-invariant,
        # so T * log(p) are the raw logits up to a per-row constant.
        raw = softmax(np.log(np.clip(probs, 1e-300, None)) * version.temperature)
        known = [i for i, t in enumerate(truth) if t in labels]
        targets_idx = np.array([list(labels).index(truth[i]) for i in known])
        evidence = HoldoutPredictions.from_scores(labels, probs, truth)
        ece_raw = expected_calibration_error(raw[known], targets_idx) if known else None
        measured_on = f"{len(examples)} labelled examples it did not train on"
    else:
        stored = load_evidence(version)
        if stored is None:
            raise RetrainError(f"{version} has no evidence and no new examples to evaluate on")
        evidence = stored
        labels = stored.labels
        known = [i for i, t in enumerate(stored.truth) if t >= 0]
        probs = _top_label_probs(stored)
        truth = [labels[t] if t >= 0 else "(unknown)" for t in stored.truth]
        targets_idx = stored.truth[known]
        ece_raw = version.metrics.get("ece_uncalibrated")
        measured_on = f"its out-of-fold evidence ({len(stored)} examples)"
    return Evaluation(
        version=version,
        metrics=score_metrics(labels, probs, truth),
        ece_uncalibrated=ece_raw,
        reliability=(reliability_table(probs[known], targets_idx) if known else []),
        automation=[
            automation_at(
                evidence,
                t,
                min_support=policy.min_support,
                delta=policy.delta,
                mode=policy.certification,
            )
            for t in targets
        ],
        measured_on=measured_on,
    )
