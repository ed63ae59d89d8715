"""A ready sequence-classification model used directly as Triage's classifier.

Any local transformers directory whose config.json carries ``id2label`` (a
fine-tuned BERT sentiment or topic model, say) can classify items. Its labels
are mapped onto category slugs by an explicit label map, or implicitly when a
label already equals a slug; an unmapped label is a configuration error, never
a silent guess. Several model labels may share a category: their
probabilities are summed.

Only safetensors weights are loaded (nothing is unpickled) and custom model
code is never run. ``read_id2label`` and ``map_labels`` read JSON only, so they
work without importing torch; the classifier imports it lazily.
"""

import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import logsumexp

from triage.ml.artifacts import file_sha256
from triage.ml.encoder import padded_batches
from triage.ml.threads import set_torch_threads

__all__ = [
    "SeqClsConfigurationError",
    "SequenceClassifier",
    "map_labels",
    "read_id2label",
]

WEIGHTS_FILE = "model.safetensors"
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


class SeqClsConfigurationError(Exception):
    pass


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SeqClsConfigurationError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SeqClsConfigurationError(f"{path} does not hold a JSON object")
    return data


def _refuse_custom_code(path: Path, config: Mapping[str, Any] | None = None) -> None:
    if config is None:
        config = _read_json(path) if path.is_file() else {}
    if "auto_map" in config:
        raise SeqClsConfigurationError(
            f"{path} declares auto_map (a model that needs trust_remote_code); "
            "Triage never runs custom code shipped with a model, use a model whose "
            "architecture is built into transformers"
        )


def read_id2label(model_dir: Path) -> dict[int, str]:
    """The model's output labels by index, read from config.json (no weights loaded).

    Also checks that the directory is one Triage will load: safetensors weights
    and no custom code.
    """
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise SeqClsConfigurationError(
            f"{model_dir} is not a transformers model directory (no config.json)"
        )
    config = _read_json(config_path)
    _refuse_custom_code(config_path, config)
    _refuse_custom_code(model_dir / "tokenizer_config.json")
    if not (model_dir / WEIGHTS_FILE).is_file():
        pickled = [name for name in PICKLED_WEIGHTS if (model_dir / name).is_file()]
        if pickled:
            raise SeqClsConfigurationError(
                f"{model_dir} has only pickled PyTorch weights ({', '.join(pickled)}); "
                f"Triage loads only {WEIGHTS_FILE} and never unpickles model files. "
                "Convert the weights to safetensors first"
            )
        raise SeqClsConfigurationError(
            f"{model_dir} has no {WEIGHTS_FILE}; only safetensors weights are loaded"
        )
    raw = config.get("id2label")
    if not isinstance(raw, dict) or not raw:
        raise SeqClsConfigurationError(
            f"{config_path} has no id2label; a sequence-classification model must name "
            "its output labels"
        )
    try:
        id2label = {int(key): str(value) for key, value in raw.items()}
    except (TypeError, ValueError) as exc:
        raise SeqClsConfigurationError(
            f"{config_path} has an id2label with non-integer ids: {exc}"
        ) from exc
    if sorted(id2label) != list(range(len(id2label))):
        raise SeqClsConfigurationError(
            f"{config_path} id2label ids must be 0..{len(id2label) - 1}, got {sorted(id2label)}"
        )
    return dict(sorted(id2label.items()))


def map_labels(
    id2label: Mapping[int, str],
    label_map: Mapping[str, str],
    categories: Collection[str],
) -> list[str]:
    """The category slug for each model output index, in index order.

    ``label_map`` maps model label -> category slug; a model label equal to a
    category slug maps to it implicitly. All problems are reported at once.
    """
    known = set(categories)
    model_labels = [id2label[i] for i in sorted(id2label)]
    problems: list[str] = []
    for key in label_map:
        if key not in model_labels:
            problems.append(
                f"label map entry {key!r} is not a label of this model "
                f"(its labels: {', '.join(model_labels)})"
            )
    for key, slug in label_map.items():
        if slug not in known:
            problems.append(
                f"label map entry {key}={slug} names an unknown category {slug!r} "
                f"(categories: {', '.join(sorted(known)) or 'none'})"
            )
    mapped: list[str] = []
    for label in model_labels:
        if label in label_map:
            mapped.append(label_map[label])
        elif label in known:
            mapped.append(label)
        else:
            problems.append(
                f"model label {label!r} is not mapped to a category; "
                f"add it to the label map, e.g. {label}=<category>"
            )
    if problems:
        raise SeqClsConfigurationError(
            "the classifier's labels do not match the categories:\n- " + "\n- ".join(problems)
        )
    return mapped


class SequenceClassifier:
    """Category probabilities from a local sequence-classification model."""

    def __init__(
        self,
        model_dir: Path,
        *,
        label_map: Mapping[str, str],
        categories: Collection[str],
        max_length: int = 256,
        batch_size: int = 64,
        max_tokens: int | None = None,
        threads: int | None = None,
    ) -> None:
        model_dir = Path(model_dir)
        id2label = read_id2label(model_dir)
        slugs = map_labels(id2label, label_map, categories)
        self.labels: tuple[str, ...] = tuple(dict.fromkeys(slugs))
        # Model output columns that feed each category, in self.labels order.
        self._groups = [
            np.array([i for i, slug in enumerate(slugs) if slug == label]) for label in self.labels
        ]
        self._n_outputs = len(slugs)
        self.model_id = f"{model_dir.name}:{file_sha256(model_dir / WEIGHTS_FILE)[:12]}"
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_tokens = max_tokens

        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        set_torch_threads(threads)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                model_dir, local_files_only=True, use_safetensors=True
            ).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise SeqClsConfigurationError(
                f"{model_dir} could not be loaded as a sequence-classification model: {exc}"
            ) from exc
        if int(self.model.config.num_labels) != self._n_outputs:
            raise SeqClsConfigurationError(
                f"{model_dir} has {self.model.config.num_labels} outputs but id2label "
                f"names {self._n_outputs}"
            )
        self._torch = torch

    def _model_logits(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(texts), self._n_outputs), dtype=np.float64)
        if not texts:
            return out
        batches = padded_batches(
            self.tokenizer,
            texts,
            max_length=self.max_length,
            batch_size=self.batch_size,
            max_tokens=self.max_tokens,
        )
        with torch.inference_mode():
            for batch, features in batches:
                out[batch] = self.model(**features).logits.float().numpy()
        return out

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Log of the merged category probabilities, shape (n, len(labels)).

        softmax of these gives predict_proba back, so a temperature can be
        fitted on them like on any head's logits.
        """
        raw = self._model_logits(texts)
        log_probs = raw - logsumexp(raw, axis=1, keepdims=True)
        merged = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        for j, columns in enumerate(self._groups):
            merged[:, j] = logsumexp(log_probs[:, columns], axis=1)
        return merged

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Category probabilities, shape (n, len(labels)); each row sums to 1."""
        probs: np.ndarray = np.exp(self.logits(texts))
        return probs
