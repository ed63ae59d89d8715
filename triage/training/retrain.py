"""Retrain: snapshot, fit, gate against the champion, record."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from triage.classify.scoring import ClassificationError, version_scores
from triage.ml.encoder import configured_spec
from triage.ml.heads import ArtifactError
from triage.models import Category, ModelVersion
from triage.routing.automation import automation_now
from triage.routing.derive import derived, reports_for
from triage.routing.evidence import evidence_path_for, write_evidence
from triage.training.fit import (
    Candidate,
    sequence_classifier_candidate,
    train_head_candidate,
)
from triage.training.gate import GateInputs, PairedComparison, decide, paired_bootstrap
from triage.training.promote import record_gate
from triage.training.snapshot import (
    Examples,
    examples_trained_on,
    snapshot_examples,
    snapshot_record,
    unseen_by,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainResult:
    version: ModelVersion
    promoted: bool
    message: str
    held: bool = False


def _restricted(labels: Sequence[str], probs: np.ndarray, active: list[str]) -> np.ndarray:
    """Predicted index into ``active`` once the model may only choose active categories."""
    columns = [i for i, label in enumerate(labels) if label in active]
    if not columns:
        return np.full(len(probs), -1)
    best = np.asarray(probs)[:, columns].argmax(axis=1)
    return np.array([active.index(labels[columns[b]]) for b in best])


def _automated_share(
    labels: Sequence[str], probs: np.ndarray, thresholds: dict[str, float | None]
) -> float:
    """Share of these items a model's certified rules would act on: its top label, with a
    threshold, at or above it (as routing decides)."""
    if not len(probs):
        return 0.0
    top = np.asarray(probs).argmax(axis=1)
    confidence = np.asarray(probs).max(axis=1)
    limit = np.array([thresholds.get(labels[k]) or np.inf for k in top], dtype=float)
    return float((confidence >= limit).mean())


@dataclass(frozen=True)
class SharedAutomation:
    """Each model's certified rules applied to the same examples neither trained on."""

    candidate: float
    champion: float
    n: int


def compare_with_champion(
    candidate: Candidate, *, examples: Examples, champion: ModelVersion
) -> tuple[PairedComparison | None, SharedAutomation | None]:
    """Both models on the examples neither trained on, over today's active categories:
    their macro-F1, and the share each one's certified rules automate there.

    Automation is compared on the same items: each model's share of its *own* evidence is
    not comparable (a champion certified on fewer examples has a different, smaller and
    noisier evidence set), and comparing those held better candidates for ever."""
    active = sorted(Category.objects.filter(is_active=True).values_list("slug", flat=True))
    evidence = set(candidate.evidence.example_ids)
    shared = [
        ex
        for ex in unseen_by(champion, examples=examples.all)
        if ex.pk in evidence and ex.category.slug in active
    ]
    if not shared:
        return None, None
    scores = version_scores(champion, items=[ex.item for ex in shared])
    truth = np.array([active.index(ex.category.slug) for ex in shared])
    candidate_pred = _restricted(
        candidate.labels, candidate.probs_for([ex.pk for ex in shared]), active
    )
    champion_pred = _restricted(scores.labels, scores.probs, active)
    candidate_rules = {r.slug: r.rule.threshold for r in reports_for(candidate.evidence)}
    champion_rules = {r.slug: r.rule.threshold for r in derived(champion).reports}
    shares = SharedAutomation(
        candidate=_automated_share(
            candidate.labels, candidate.probs_for([ex.pk for ex in shared]), candidate_rules
        ),
        champion=_automated_share(scores.labels, scores.probs, champion_rules),
        n=len(shared),
    )
    comparison = paired_bootstrap(
        truth, candidate=candidate_pred, champion=champion_pred, n_classes=len(active)
    )
    return comparison, shares


def retrain(*, actor: str = "system") -> RetrainResult:
    """Train a candidate on the active examples and promote it only through the gate.

    Seconds on cached embeddings. Fine-tuning the encoder takes minutes and is its own
    task (triage.training.finetune), so a retrain never waits for it.
    """
    examples = snapshot_examples()
    candidate = train_head_candidate(
        configured_spec(), examples=examples, ensemble=settings.TRIAGE_HEAD == "ensemble"
    )
    return gate_and_record(candidate, examples=examples, actor=actor, notes=[])


def gate_and_record(
    candidate: Candidate, *, examples: Examples, actor: str, notes: list[str]
) -> RetrainResult:
    champion = ModelVersion.objects.champion()
    evidence = len(candidate.evidence)
    snapshot = snapshot_record(examples, trained_on=candidate.trained_on, evidence=evidence)
    candidate_automation = automation_now(candidate.evidence)
    comparison: PairedComparison | None = None
    shares: SharedAutomation | None = None
    hold = False
    if champion is None:
        promote, message = (
            True,
            f"first model: out-of-sample macro-F1 {candidate.metrics['macro_f1']:.3f}",
        )
    else:
        try:
            comparison, shares = compare_with_champion(
                candidate, examples=examples, champion=champion
            )
        except (ArtifactError, ClassificationError):
            logger.exception(
                "champion %s cannot be scored; the candidate is measured alone", champion
            )
            champion = None
            promote, message = True, "the champion cannot be scored; the candidate replaces it"
    if champion is not None:
        decision = decide(
            GateInputs(
                comparison=comparison,
                candidate_examples=snapshot["train"],
                champion_examples=examples_trained_on(champion),
                candidate_automation=None if shares is None else shares.candidate,
                champion_automation=None if shares is None else shares.champion,
                automation_examples=None if shares is None else shares.n,
            )
        )
        promote, hold, message = decision.promote, decision.hold_for_admin, decision.message
    if examples.left_out:
        notes.append(f"left out, too few examples: {', '.join(examples.left_out)}")
    if notes:
        message += " (" + "; ".join(notes) + ")"
    metrics = candidate.metrics | {
        "automation_at_current_targets": candidate_automation,
        "gate": None
        if comparison is None
        else {
            "n": comparison.n,
            "candidate_macro_f1": comparison.candidate_f1,
            "champion_macro_f1": comparison.champion_f1,
            "difference_low": comparison.low,
            "difference_high": comparison.high,
            "candidate_automation": None if shares is None else shares.candidate,
            "champion_automation": None if shares is None else shares.champion,
            "automation_examples": None if shares is None else shares.n,
        },
        "champion_macro_f1_same_examples": None if comparison is None else comparison.champion_f1,
    }
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
    suggested = Path(settings.TRIAGE_ARTIFACT_DIR) / f"head-{stamp}.safetensors"
    # Beside the head in the artifact directory (a ready classifier's own files live
    # elsewhere, read-only): the evidence is this version's, not the model files'.
    evidence_path, evidence_sha = write_evidence(candidate.evidence, evidence_path_for(suggested))
    path, sha = candidate.save(
        suggested,
        {
            "encoder": candidate.model_id,
            "snapshot": snapshot,
            "metrics": {k: v for k, v in metrics.items() if k not in ("per_class", "gate")},
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
            evidence_path=evidence_path,
            evidence_sha256=evidence_sha,
            training_snapshot=snapshot,
            gate_decision=message,
        )
        record_gate(version, promote=promote, message=message, actor=actor, hold=hold)
    logger.info("retrain: %s", message)
    return RetrainResult(version=version, promoted=promote, message=message, held=hold)


def register_sequence_classifier(
    *, model_dir: Path, label_map: dict[str, str], actor: str = "command"
) -> RetrainResult:
    """Measure a ready classifier on the holdout; it is promoted only through the gate."""
    examples = snapshot_examples()
    candidate = sequence_classifier_candidate(
        model_dir.resolve(), label_map=label_map, examples=examples
    )
    return gate_and_record(
        candidate, examples=examples, actor=actor, notes=[f"ready model {model_dir}"]
    )
