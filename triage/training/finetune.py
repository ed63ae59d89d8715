"""Fine-tuning the encoder, chosen against the head alone by what it certifies.

Minutes of CPU, so it runs as its own Celery task (triage.training.tasks.fine_tune), never
inside a retrain. The steps, each on examples the step before did not use:

1. The encoder is fine-tuned on the train split, at the maximum length it will serve with
   (FINE_TUNE_MAX_LENGTH): the spec of the new version carries that length.
2. The holdout split, which the tuned encoder never saw, is cut in two by a fixed hash of
   each example (never by its label): a *selection* half and an *evidence* half.
3. Both candidates are calibrated on evidence outside the selection half: the head alone
   (cross-fitted, as in a retrain) on its out-of-fold rows outside it, the tuned one (its
   head trained on the train split) on the evidence half.
4. On the selection half, each candidate's share certified at the current targets (the
   admin's policy, triage.routing.automation.automation_now) decides: the tuned one is kept
   only if it certifies more. Accuracy does not decide.
5. The kept candidate's evidence excludes the selection half, so the thresholds certified on
   it were not chosen by looking at it. It then goes through the ordinary gate.
"""

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.utils import timezone

from triage.classify.scoring import embed_items
from triage.ml.calibration import fit_temperature, softmax
from triage.ml.encoder import (
    ENCODER_RUNTIMES,
    configured_spec,
    encoder_for,
    resolve_model_dir,
)
from triage.ml.encoder_spec import EncoderSpec
from triage.ml.evaluation import score_metrics
from triage.ml.heads import Head, train_logistic_head
from triage.models import ModelVersion
from triage.routing.automation import automation_now
from triage.routing.evidence import HoldoutPredictions
from triage.training.exclusive import (
    FINE_TUNE,
    SKIPPED_FINE_TUNING,
    retrain_lock,
    run_exclusively,
)
from triage.training.fit import (
    Candidate,
    _save_head,
    cross_fit_examples,
)
from triage.training.models import TrainingExample
from triage.training.retrain import RetrainResult, gate_and_record
from triage.training.snapshot import (
    TRAINED_ON_ALL,
    TRAINED_ON_TRAIN_SPLIT,
    Examples,
    RetrainError,
    snapshot_examples,
)

# Fine-tuning cost grows with the length; the tuned version also serves at this length
# (its spec says so), so training and serving read the same tokens.
FINE_TUNE_MAX_LENGTH = 128


def in_selection_half(example: TrainingExample) -> bool:
    """Half of the holdout split, fixed from the example's id alone, never its label."""
    if example.split != TrainingExample.Split.HOLDOUT:
        return False
    digest = hashlib.sha256(f"fine-tune-selection:{example.pk}".encode()).digest()
    return digest[0] % 2 == 0


def _calibrated(
    head: Head,
    *,
    logits: np.ndarray,
    rows: list[TrainingExample],
    evidence: np.ndarray,
    spec: dict[str, object],
    model_id: str,
    trained_on: str,
) -> tuple[Candidate, np.ndarray]:
    """A candidate whose temperature and evidence are the ``evidence`` rows; also the
    calibrated probabilities of every row (the selection reads its own)."""
    truth = [ex.category.slug for ex in rows]
    index = {label: i for i, label in enumerate(head.labels)}
    known = [i for i in np.flatnonzero(evidence) if truth[i] in index]
    if not known:
        raise RetrainError("no evidence left outside the selection half to calibrate on")
    temperature = fit_temperature(logits[known], np.array([index[truth[i]] for i in known]))
    probs = softmax(logits, temperature)
    kept = [rows[i] for i in np.flatnonzero(evidence)]
    kept_probs, kept_truth = probs[evidence], [truth[i] for i in np.flatnonzero(evidence)]
    head = dataclasses.replace(head, temperature=temperature)
    metrics = score_metrics(head.labels, kept_probs, kept_truth)
    metrics["ece_uncalibrated"] = score_metrics(head.labels, softmax(logits[evidence]), kept_truth)[
        "ece"
    ]
    metrics["measured_on"] = "out_of_fold_outside_selection"
    candidate = Candidate(
        kind=ModelVersion.Kind.HEAD,
        labels=head.labels,
        temperature=temperature,
        spec=dict(spec),
        model_id=model_id,
        metrics=metrics,
        evidence=HoldoutPredictions.from_scores(
            head.labels, kept_probs, kept_truth, [ex.pk for ex in kept]
        ),
        evidence_probs=kept_probs,
        trained_on=trained_on,
        save=_save_head(head, dict(spec)),
    )
    return candidate, probs


def _certified_share(
    labels: tuple[str, ...], probs: np.ndarray, rows: list[TrainingExample]
) -> float:
    holdout = HoldoutPredictions.from_scores(labels, probs, [ex.category.slug for ex in rows])
    return automation_now(holdout) or 0.0


def retrain_fine_tuned(
    *, actor: str = "system", progress: Callable[[int, int], None] | None = None
) -> RetrainResult:
    """Fine-tune, choose tuned or head-only by certified coverage, then the ordinary gate."""
    from triage.ml.finetune import fine_tune_encoder

    examples = snapshot_examples()
    _check_splits(examples)
    base = configured_spec()
    if base["class"] == ENCODER_RUNTIMES["onnx-int8"]:
        raise RetrainError(
            "fine-tuning needs the torch encoder runtime (TRIAGE_ENCODER_RUNTIME=torch)"
        )
    parsed = EncoderSpec.of(base)
    length = min(parsed.max_length, FINE_TUNE_MAX_LENGTH)
    out_dir = Path(settings.TRIAGE_ARTIFACT_DIR) / (
        "encoder-" + timezone.now().strftime("%Y%m%dT%H%M%S%f")
    )
    train = examples.train
    fine_tune_encoder(
        resolve_model_dir(parsed.path, family=parsed.family),
        [parsed.prefix + ex.text for ex in train],
        [ex.category.slug for ex in train],
        out_dir=out_dir,
        max_length=length,
        progress=progress,
    )
    tuned_spec = base | {"path": str(out_dir), "max_length": length}
    selection = np.array([in_selection_half(ex) for ex in examples.all])

    # Head alone: cross-fitted over every example, as a retrain does.
    head_encoder = encoder_for(base)
    fit = cross_fit_examples(
        examples.all, encoder=head_encoder, ensemble=settings.TRIAGE_HEAD == "ensemble"
    )
    head_only, head_probs = _calibrated(
        fit.head,
        logits=fit.oof_logits,
        rows=examples.all,
        evidence=~selection,
        spec=base,
        model_id=head_encoder.encoder_id,
        trained_on=TRAINED_ON_ALL,
    )

    # Tuned: its head learns the train split; the holdout (unseen by both) is its evidence.
    tuned_encoder = encoder_for(tuned_spec)
    holdout = examples.holdout
    tuned_head = train_logistic_head(
        embed_items([ex.item for ex in train], encoder=tuned_encoder),
        [ex.category.slug for ex in train],
    )
    holdout_selection = np.array([in_selection_half(ex) for ex in holdout])
    tuned, tuned_probs = _calibrated(
        tuned_head,
        logits=tuned_head.logits(embed_items([ex.item for ex in holdout], encoder=tuned_encoder)),
        rows=holdout,
        evidence=~holdout_selection,
        spec=tuned_spec,
        model_id=tuned_encoder.encoder_id,
        trained_on=TRAINED_ON_TRAIN_SPLIT,
    )

    # The same examples for both: the selection half of the holdout split.
    chosen = [ex for ex in holdout if in_selection_half(ex)]
    head_share = _certified_share(head_only.labels, head_probs[selection], chosen)
    tuned_share = _certified_share(tuned.labels, tuned_probs[holdout_selection], chosen)
    keep_tuned = tuned_share > head_share
    note = (
        f"fine-tuned certifies {tuned_share:.1%} and head-only {head_share:.1%} of the "
        f"{int(holdout_selection.sum())} selection examples at the current targets: kept "
        f"{'fine-tuned' if keep_tuned else 'head-only'}; certified on the "
        f"{len((tuned if keep_tuned else head_only).evidence)} examples outside the selection"
    )
    candidate = tuned if keep_tuned else head_only
    candidate.metrics |= {
        "fine_tune": {
            "tuned_certified_share": tuned_share,
            "head_certified_share": head_share,
            "kept": "fine-tuned" if keep_tuned else "head-only",
            "max_length": length,
        },
        "head": "embedding" if keep_tuned else settings.TRIAGE_HEAD,
    }
    # Minutes went into the fit without the retrain lock; the gate takes it, waiting the
    # seconds a running retrain needs, so the champion does not change under the comparison.
    with retrain_lock(wait=True):
        return gate_and_record(candidate, examples=examples, actor=actor, notes=[note])


def fine_tune_exclusively(*, actor: str) -> str:
    """Fine-tune unless another fine-tune is running (run_exclusively). A retrain may run
    meanwhile: only the gate waits for it (retrain_fine_tuned)."""
    return run_exclusively(
        FINE_TUNE,
        lambda: retrain_fine_tuned(actor=actor),
        actor=actor,
        skipped=SKIPPED_FINE_TUNING,
    )


def _check_splits(examples: Examples) -> None:
    halves = [in_selection_half(ex) for ex in examples.holdout]
    if not examples.train or sum(halves) == 0 or sum(halves) == len(halves):
        raise RetrainError(
            "fine-tuning needs train examples and holdout examples in both its selection and "
            f"evidence halves; have {len(examples.train)} train and {len(examples.holdout)} "
            "holdout"
        )
