"""Build-time half of the int8 fast path: export the transformer to ONNX, quantise to int8.

:func:`export_onnx_int8` (needs torch + transformers): exports the model's
``last_hidden_state`` to ONNX with the legacy TorchScript exporter (no extra packages),
checks the fp32 graph against torch, quantises it with ONNX Runtime's ``quantize_dynamic``
(QInt8 weights, per output channel) and writes, atomically, an export directory::

    model.int8.onnx      the quantised graph
    tokenizer.json ...   the source model's tokenizer files, copied
    export.json          manifest: sha256 of the source model.safetensors and of the int8 file

Serving it is triage.ml.onnx_encoder.OnnxEncoder (onnxruntime + tokenizers + numpy only).

This module must stay importable without importing torch (or transformers, which imports
torch): both are imported inside :func:`export_onnx_int8` only.

Accuracy (measured against the fp32 model, all-MiniLM-L6-v2): plain per-channel QInt8 on every
MatMul gives cosine ~0.97 on very short texts ("ok thx"), because ONNX Runtime quantises
activations per tensor and BERT activations have a few outlier channels. Two measures bring the
worst case above 0.995:

* SmoothQuant-style scaling before export (``_SMOOTH_ALPHA``): for each quantised Linear, input
  channel j is divided by s_j and the weight's column j multiplied by s_j (exact in fp32), with
  s_j = max|x_j|^a / max|w_j|^(1-a) measured on ``_CALIBRATION_TEXTS``. This shows up in the
  graph as one Mul before each such MatMul.
* the first layer's FFN output projection (``_FP32_NODE_PATTERN``) stays fp32: its input, the
  GELU output, has outliers that neither per-tensor quantisation nor smoothing handles. The
  later layers' FFN outputs are smoothed and quantised like the rest. Measured on 2 cores over
  2,000 disaster messages, against fp32 torch: all six FFN outputs in fp32 ran at ~470
  sentences/s (cosine min 0.997); only layer 0's, ~600/s (min 0.989, mean 0.997); none,
  ~650/s (min 0.984, short texts 0.979).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
INT8_FILENAME = "model.int8.onnx"
MANIFEST_FILENAME = "export.json"
SOURCE_WEIGHTS_FILENAME = "model.safetensors"
FORMAT_VERSION = 2  # 2: only layer 0's FFN output stays fp32
OPSET = 17

# Copied verbatim when present; tokenizer.json is required (the serving path reads only it,
# through the `tokenizers` library, so that serving never imports transformers/torch).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "added_tokens.json",
    "config.json",
)

# MatMul nodes kept in fp32: the first layer's FFN output projection (its input, the GELU
# output, has outlier channels that per-tensor activation quantisation handles badly; in the
# later layers smoothing is enough).
_FP32_NODE_PATTERN = re.compile(r"/layer\.0/output/dense/MatMul$")
_FP32_LINEAR_PATTERN = re.compile(r"(^|\.)layer\.0\.output\.dense$")  # same, as module names

# SmoothQuant migration strength (0 = none, 1 = all of the activation range moved to weights).
_SMOOTH_ALPHA = 0.7

# Calibration for the smoothing scales: varied, short to long, not the test sentences.
_CALIBRATION_TEXTS = (
    "Hi there",
    "thanks!",
    "Help",
    "Where is my refund?",
    "I can't log in to my account since this morning.",
    "The invoice total does not match what the quote said, please check.",
    "Our team cannot open the shared folder after the migration last weekend.",
    "Is there any way to change the delivery address once the order has shipped?",
    "The app freezes on the loading screen every time I open it on my tablet.",
    "We were billed for twelve seats but only nine people use the product.",
    "Please delete all of my personal data as required under GDPR.",
    "Can you extend the trial by a week? We are still evaluating.",
    "Error: connection reset by peer (code 104) while uploading large files",
    "SELECT * FROM orders WHERE status = 'stuck' returns 3,412 rows",
    "The weather is lovely today and the park is full of people.",
    "Scientists announced the discovery of a new species of frog in the rainforest.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "Mix the flour and butter, then add two eggs and a pinch of salt.",
    "He missed the last train home and had to walk for an hour in the rain.",
    "The committee will meet on Thursday to review the budget proposal.",
    "Bitte senden Sie mir eine Kopie der Rechnung.",
    "Merci de votre aide, tout fonctionne maintenant.",
    "¿Dónde puedo descargar el informe mensual?",
    "!!! urgent !!! production is down",
    "10/10 would recommend 👍",
    "My package arrived damaged: the box was crushed and two glasses were broken, and the "
    "courier refused to take a photo or note it on the delivery slip, so now I do not know "
    "who is responsible for the replacement or how long this is going to take.",
    "After the update to version 4.2 the sync between the desktop client and the web app "
    "silently skips files whose names contain non-ASCII characters such as umlauts.",
    "ok",
    "The earthquake destroyed several buildings and people need water, food and shelter.",
    "Could you please explain the difference between the Basic and the Pro plans?",
)

_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
_OUTPUT_NAME = "last_hidden_state"


class OnnxIntegrityError(RuntimeError):
    """The int8 ONNX file on disk does not match the sha256 recorded in export.json."""


# --------------------------------------------------------------------------------------------
# helpers


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _read_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((out_dir / MANIFEST_FILENAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        return None
    return manifest


def _is_current(out_dir: Path, source_sha: str, model_name: str) -> bool:
    """out_dir holds a complete export of these source weights whose int8 file is intact."""
    manifest = _read_manifest(out_dir)
    if (
        manifest is None
        or manifest.get("source", {}).get("sha256") != source_sha
        or manifest.get("model_name") != model_name
    ):
        return False
    int8 = out_dir / INT8_FILENAME
    if not int8.is_file() or not (out_dir / "tokenizer.json").is_file():
        return False
    return bool(_sha256(int8) == manifest.get("int8", {}).get("sha256"))


def _source_weights(model_dir: Path) -> Path:
    weights = model_dir / SOURCE_WEIGHTS_FILENAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: model_dir must hold a safetensors model")
    return weights


def _fsync_tree(root: Path) -> None:
    for path in [*root.iterdir(), root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _export_lock(out_dir: Path) -> Iterator[None]:
    """Serialise exporters of the same out_dir across processes (best effort off POSIX)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    lock_path = out_dir.parent / f".{out_dir.name}.lock"
    with lock_path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_replaceable(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    if any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILENAME).exists():
        raise FileExistsError(
            f"{out_dir} is not empty and holds no {MANIFEST_FILENAME}: refusing to replace it"
        )


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished export `tmp` to `out_dir`, replacing an older export there.

    Only an empty directory or a previous export (it holds export.json) is ever replaced, so
    a wrongly chosen out_dir full of other files is refused instead of deleted.
    """
    _check_replaceable(out_dir)
    if out_dir.exists():
        trash = Path(
            tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent)
        )
        os.replace(out_dir, trash / "export")
        try:
            os.replace(tmp, out_dir)
        except BaseException:
            os.replace(trash / "export", out_dir)  # put the previous export back
            raise
        finally:
            shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


# --------------------------------------------------------------------------------------------
# export (build time; torch imported lazily)


def export_onnx_int8(
    model_dir: Path, out_dir: Path, *, model_name: str = DEFAULT_MODEL_NAME
) -> Path:
    """Export `model_dir` (a local Hugging Face model) to an int8 ONNX export in `out_dir`.

    Returns `out_dir`. Idempotent: an existing export of the same source weights (sha256 of
    model.safetensors) whose int8 file is intact is returned as is. The export is built in a
    temporary sibling directory and renamed into place, so `out_dir` never holds a half export.
    """
    model_dir = Path(model_dir).resolve()
    out_dir = Path(out_dir).resolve()
    source_sha = _sha256(_source_weights(model_dir))
    if not (model_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{model_dir / 'tokenizer.json'} not found (fast tokenizer needed)")

    if _is_current(out_dir, source_sha, model_name):
        return out_dir
    _check_replaceable(out_dir)  # fail before the slow part, not after it

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _export_lock(out_dir):
        # Another process may have finished the same export while we waited for the lock.
        if _is_current(out_dir, source_sha, model_name):
            return out_dir
        if (out_dir / MANIFEST_FILENAME).exists():
            logger.warning("replacing stale or damaged ONNX export in %s", out_dir)
        # Leftovers of crashed exports (we hold the lock, so none of them is live).
        for stale in out_dir.parent.glob(f".{out_dir.name}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in out_dir.parent.glob(f".{out_dir.name}.*.old"):
            shutil.rmtree(stale, ignore_errors=True)

        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
        try:
            _build_export(model_dir, tmp, source_sha=source_sha, model_name=model_name)
            _fsync_tree(tmp)
            _replace_dir(tmp, out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _build_export(model_dir: Path, tmp: Path, *, source_sha: str, model_name: str) -> None:
    import warnings

    import onnx
    import onnxruntime
    import torch
    import transformers
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    started = time.perf_counter()
    # Eager attention traces to plain MatMul/Softmax; the SDPA path adds tracer-only branches.
    model = AutoModel.from_pretrained(
        model_dir, local_files_only=True, trust_remote_code=False, attn_implementation="eager"
    )
    model = model.float().eval()
    tokenizer = AutoTokenizer.from_pretrained(
        model_dir, local_files_only=True, trust_remote_code=False, use_fast=True
    )
    accepted = inspect.signature(model.forward).parameters
    input_names = [name for name in _INPUT_NAMES if name in accepted]
    if input_names[:2] != ["input_ids", "attention_mask"]:
        raise ValueError(f"{type(model).__name__} does not take input_ids and attention_mask")

    class _LastHidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> Any:
            return self.inner(**dict(zip(input_names, args, strict=True))).last_hidden_state

    # Two texts of different lengths, so the sample batch is padded and the mask is not all 1.
    sample = tokenizer(
        ["an export sample of a few more words than the other", "short"],
        padding=True,
        return_tensors="pt",
    )
    args = tuple(sample[name] for name in input_names)
    check = tokenizer(
        ["a third text, longer than both of the texts used while tracing the graph", "x", ""],
        padding=True,
        return_tensors="pt",
    )
    check_args = tuple(check[name] for name in input_names)
    # References from the untouched model: they check smoothing and export together.
    with torch.no_grad():
        expected = model(**dict(zip(input_names, args, strict=True))).last_hidden_state.numpy()
        expected_check = model(
            **dict(zip(input_names, check_args, strict=True))
        ).last_hidden_state.numpy()
    smoothed = _smooth_linears(model, tokenizer, input_names)

    fp32_path = tmp / "model.fp32.onnx"
    axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, _OUTPUT_NAME]}
    wrapper = _LastHidden(model).eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy (TorchScript) exporter warns that it is deprecated, and tracing warns about
        # shape checks turned into constants; the graph is checked against torch below instead.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*aten::index.*")
        torch.onnx.export(
            wrapper,
            args,
            str(fp32_path),
            input_names=input_names,
            output_names=[_OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    exported_at = time.perf_counter()

    # The traced graph must reproduce torch, on the padded sample and on a longer unseen batch.
    session = onnxruntime.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: sample[n].numpy() for n in input_names})[0]
    got_check = session.run(None, {n: check[n].numpy() for n in input_names})[0]
    del session
    error = max(np.abs(got - expected).max(), np.abs(got_check - expected_check).max())
    if not error < 1e-3:
        raise RuntimeError(f"exported ONNX graph disagrees with torch (max abs error {error:.3g})")

    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    fp32_nodes = sorted(
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and _FP32_NODE_PATTERN.search(node.name)
    )
    del graph
    int8_path = tmp / INT8_FILENAME
    quantize_dynamic(
        fp32_path,
        int8_path,
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_exclude=fp32_nodes,
    )
    fp32_path.unlink()
    for leftover in tmp.glob("*.data"):  # none for a model this size; never ship fp32 weights
        leftover.unlink()
    quantised_at = time.perf_counter()

    for name in TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, tmp / name)

    config = model.config
    manifest = {
        "format": FORMAT_VERSION,
        "model_name": model_name,
        "source": {"file": SOURCE_WEIGHTS_FILENAME, "sha256": source_sha},
        "int8": {
            "file": INT8_FILENAME,
            "sha256": _sha256(int8_path),
            "bytes": int8_path.stat().st_size,
        },
        "inputs": input_names,
        "output": _OUTPUT_NAME,
        "dim": int(config.hidden_size),
        "max_position_embeddings": int(getattr(config, "max_position_embeddings", 512)),
        "opset": OPSET,
        "quantization": {
            "tool": "onnxruntime.quantization.quantize_dynamic",
            "weight_type": "QInt8",
            "per_channel": True,
            "fp32_nodes": fp32_nodes,
            "smooth_alpha": _SMOOTH_ALPHA,
            "smoothed_linears": smoothed,
            "calibration_texts": len(_CALIBRATION_TEXTS),
        },
        "fp32_graph_max_abs_error": float(error),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "seconds": {
            "export": round(exported_at - started, 2),
            "quantise": round(quantised_at - exported_at, 2),
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (tmp / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _smooth_linears(model: Any, tokenizer: Any, input_names: list[str]) -> list[str]:
    """SmoothQuant-style rescaling of the Linear layers that will be quantised. Exact in fp32.

    Linears fed by the same tensor (query/key/value) share one scale. Layers whose MatMul stays
    fp32 (``_FP32_NODE_PATTERN``) are left alone. Returns the names of the smoothed Linears.
    """
    import torch

    class Smoothed(torch.nn.Module):
        inverse_scale: torch.Tensor

        def __init__(self, linear: torch.nn.Linear, inverse_scale: torch.Tensor) -> None:
            super().__init__()
            self.linear = linear
            self.register_buffer("inverse_scale", inverse_scale)

        def forward(self, x: torch.Tensor) -> Any:
            return self.linear(x * self.inverse_scale)

    encoder = getattr(model, "encoder", None)
    if encoder is None:
        logger.warning("%s has no .encoder: int8 export without smoothing", type(model).__name__)
        return []
    prefix = "encoder."
    linears = {
        prefix + name: module
        for name, module in encoder.named_modules()
        if isinstance(module, torch.nn.Linear) and not _FP32_LINEAR_PATTERN.search(prefix + name)
    }
    act_max: dict[str, torch.Tensor] = {}
    inputs_seen: dict[str, torch.Tensor] = {}  # kept alive so that identity groups q/k/v

    def hook(name: str) -> Any:
        def record(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
            x = inputs[0].detach()
            inputs_seen[name] = inputs[0]
            peak = x.abs().reshape(-1, x.shape[-1]).amax(dim=0)
            act_max[name] = torch.maximum(act_max[name], peak) if name in act_max else peak

        return record

    groups: dict[int, list[str]] = {}
    handles = [module.register_forward_hook(hook(n)) for n, module in linears.items()]
    try:
        with torch.no_grad():
            for start in range(0, len(_CALIBRATION_TEXTS), 8):
                batch = tokenizer(
                    list(_CALIBRATION_TEXTS[start : start + 8]), padding=True, return_tensors="pt"
                )
                inputs_seen.clear()
                model(**{n: batch[n] for n in input_names})
                groups = {}
                for name, tensor in inputs_seen.items():
                    groups.setdefault(id(tensor), []).append(name)
    finally:
        for handle in handles:
            handle.remove()
        inputs_seen.clear()

    with torch.no_grad():
        for names in groups.values():
            a = act_max[names[0]]
            for other in names[1:]:
                a = torch.maximum(a, act_max[other])
            w = torch.stack([linears[n].weight.abs().amax(dim=0) for n in names]).amax(dim=0)
            scale = (
                a.clamp(min=1e-5).pow(_SMOOTH_ALPHA) / w.clamp(min=1e-5).pow(1 - _SMOOTH_ALPHA)
            ).clamp(min=1e-5)
            for name in names:
                linear = linears[name]
                linear.weight.mul_(scale[None, :])
                parent_name, _, attr = name.rpartition(".")
                setattr(model.get_submodule(parent_name), attr, Smoothed(linear, 1.0 / scale))
    return sorted(n for names in groups.values() for n in names)


# --------------------------------------------------------------------------------------------
# serving (onnxruntime + tokenizers + numpy only)
