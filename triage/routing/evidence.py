"""A model version's evidence: its calibrated predictions on examples it did not train on.

Thresholds are certified on it (triage.routing.derive). It is stored as an .npz
artifact beside the version's head, its sha256 recorded on the ModelVersion and
checked on every load (triage.ml.arrays). Versions recorded before that keep it
as JSON in ModelVersion.holdout, which load_evidence still reads: no migration
writes files, so a deployment whose migrations run where the artifact directory
is not mounted (or not writable) loses nothing, and the JSON stays until a
version is retired.

The champion is loaded without the JSON (ModelVersion.objects.champion defers it);
whoever needs the evidence calls load_evidence, which reads the one it has. The
routing cache (triage.routing.derive.derived) keeps the copy it verified until an
input changes; the next load checks the file again.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from triage.ml.arrays import read_arrays, save_arrays
from triage.models import ModelVersion

EVIDENCE_SUFFIX = ".evidence.npz"


@dataclass(frozen=True)
class HoldoutPredictions:
    """A model's calibrated predictions on labelled examples it did not train on.

    For a head these are out-of-fold predictions over all labelled examples
    (cross-fitting); the name is kept from when they were a fixed holdout.
    truth is -1 where the true category is one the model cannot predict.
    example_ids, when known, say which TrainingExample each row is.
    """

    labels: tuple[str, ...]
    predicted: np.ndarray
    confidence: np.ndarray
    truth: np.ndarray
    example_ids: tuple[int, ...] = ()

    @classmethod
    def from_scores(
        cls,
        labels: Sequence[str],
        probs: np.ndarray,
        true_labels: Sequence[str],
        example_ids: Sequence[int] = (),
    ) -> "HoldoutPredictions":
        index = {label: i for i, label in enumerate(labels)}
        return cls(
            labels=tuple(labels),
            predicted=probs.argmax(axis=1),
            confidence=probs.max(axis=1),
            truth=np.array([index.get(t, -1) for t in true_labels], dtype=int),
            example_ids=tuple(example_ids),
        )

    def stored(self) -> "HoldoutPredictions":
        """As stored: confidences rounded to 6 digits, as the JSON always held them, so a
        version's thresholds are certified on the same numbers whichever way it is kept."""
        return HoldoutPredictions(
            labels=self.labels,
            predicted=np.asarray(self.predicted, dtype=int),
            confidence=np.array([round(float(c), 6) for c in self.confidence], dtype=float),
            truth=np.asarray(self.truth, dtype=int),
            example_ids=tuple(int(i) for i in self.example_ids),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "predicted": self.predicted.tolist(),
            "confidence": [round(float(c), 6) for c in self.confidence],
            "truth": self.truth.tolist(),
            "example_ids": list(self.example_ids),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "HoldoutPredictions | None":
        if not data.get("labels"):
            return None
        return cls(
            labels=tuple(data["labels"]),
            predicted=np.array(data["predicted"], dtype=int),
            confidence=np.array(data["confidence"], dtype=float),
            truth=np.array(data["truth"], dtype=int),
            example_ids=tuple(data.get("example_ids", ())),
        )

    def as_arrays(self) -> dict[str, np.ndarray]:
        stored = self.stored()
        return {
            "labels": np.array(stored.labels, dtype=str),
            "predicted": stored.predicted.astype(np.int64),
            "confidence": stored.confidence.astype(np.float64),
            "truth": stored.truth.astype(np.int64),
            "example_ids": np.array(stored.example_ids, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "HoldoutPredictions | None":
        if not len(arrays.get("labels", ())):
            return None
        return cls(
            labels=tuple(str(label) for label in arrays["labels"]),
            predicted=arrays["predicted"].astype(int),
            confidence=arrays["confidence"].astype(float),
            truth=arrays["truth"].astype(int),
            example_ids=tuple(arrays["example_ids"].tolist()),
        )

    def __len__(self) -> int:
        return len(self.confidence)

    def for_category(self, slug: str) -> tuple[np.ndarray, np.ndarray]:
        """Confidences of predictions of this category, and whether each was right."""
        return self.for_categories([slug])

    def for_categories(self, slugs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Predictions of any of these categories: confidences, and whether each was right."""
        ks = [self.labels.index(s) for s in slugs if s in self.labels]
        chosen = np.isin(self.predicted, ks)
        return self.confidence[chosen], (self.truth == self.predicted)[chosen]


def evidence_path_for(artifact: Path) -> Path:
    """Where a version's evidence goes: beside its head, head-<stamp>.evidence.npz."""
    return artifact.with_name(artifact.name.removesuffix(artifact.suffix) + EVIDENCE_SUFFIX)


def write_evidence(evidence: HoldoutPredictions, path: Path) -> tuple[str, str]:
    """Write the evidence artifact; (path, sha256) to record on the version."""
    return str(path), save_arrays(evidence.as_arrays(), path)


def load_evidence(version: ModelVersion) -> HoldoutPredictions | None:
    """The version's evidence: its artifact after a sha256 check (ArtifactError when the file
    is missing or changed), or the JSON of a version recorded before artifacts."""
    if version.evidence_path:
        return HoldoutPredictions.from_arrays(
            read_arrays(version.evidence_path, version.evidence_sha256)
        )
    return HoldoutPredictions.from_json(version.holdout)


def store_evidence(version: ModelVersion, evidence: HoldoutPredictions, *, path: Path) -> None:
    """Replace a version's evidence with a new artifact (and drop any JSON copy)."""
    version.evidence_path, version.evidence_sha256 = write_evidence(evidence, path)
    version.holdout = {}
    version.save(update_fields=["evidence_path", "evidence_sha256", "holdout"])
