"""Retraining, the promotion gate, promotion and roll back, and evaluation.

- snapshot: which examples a model learns from, and which it never saw;
- fit: cross-fitted heads, embedding or ensemble (out-of-fold evidence), ready models;
- finetune: a fine-tuned encoder against the head alone, chosen by certified coverage;
- gate: the promotion rule (paired test, automation check), pure;
- retrain: snapshot → fit → gate → record;
- promote: recording the verdict, promotion (make_champion) and roll back;
- evaluate: a version measured as it would serve.
"""

from triage.training.evaluate import Evaluation, evaluate_version
from triage.training.finetune import retrain_fine_tuned
from triage.training.fit import (
    Candidate,
    CrossFit,
    cross_fit_head,
    fit_calibrated_head,
    sequence_classifier_candidate,
    train_head_candidate,
)
from triage.training.gate import (
    GateDecision,
    GateInputs,
    PairedComparison,
    decide,
    paired_bootstrap,
)
from triage.training.promote import make_champion, promote_version, record_gate, rollback
from triage.training.retrain import (
    RetrainResult,
    compare_with_champion,
    gate_and_record,
    register_sequence_classifier,
    retrain,
)
from triage.training.snapshot import Examples, RetrainError, snapshot_examples, unseen_by

__all__ = [
    "Candidate",
    "CrossFit",
    "Evaluation",
    "Examples",
    "GateDecision",
    "GateInputs",
    "PairedComparison",
    "RetrainError",
    "RetrainResult",
    "compare_with_champion",
    "cross_fit_head",
    "decide",
    "evaluate_version",
    "fit_calibrated_head",
    "gate_and_record",
    "make_champion",
    "paired_bootstrap",
    "promote_version",
    "record_gate",
    "register_sequence_classifier",
    "retrain",
    "retrain_fine_tuned",
    "rollback",
    "sequence_classifier_candidate",
    "snapshot_examples",
    "train_head_candidate",
    "unseen_by",
]
