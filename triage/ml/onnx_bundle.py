"""The int8 ONNX export on disk: what the directory holds, writing it whole, reading it safely.

An export directory (written by triage.ml.onnx_export, served by triage.ml.onnx_encoder)::

    model.int8.onnx      the quantised graph
    tokenizer.json ...   the source model's tokenizer files, copied
    export.json          manifest: sha256 of the source model.safetensors and of the int8 file

It is built in a temporary sibling directory and renamed into place, so a reader never sees a
half export, and the int8 file is only ever loaded after its sha256 matched the manifest.

Standard library only: the torch-free serving path and the build path both import it.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from triage.filelock import file_lock
from triage.ml.artifacts import file_sha256

INT8_FILENAME = "model.int8.onnx"
MANIFEST_FILENAME = "export.json"
SOURCE_WEIGHTS_FILENAME = "model.safetensors"
FORMAT_VERSION = 2  # 2: only layer 0's FFN output stays fp32

# The graph's inputs, in the order the model's forward() takes them (the last is optional),
# and its one output.
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"

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


class OnnxIntegrityError(RuntimeError):
    """The int8 ONNX file on disk does not match the sha256 recorded in export.json."""


# --------------------------------------------------------------------------------------------
# reading


def source_weights(model_dir: Path) -> Path:
    weights = model_dir / SOURCE_WEIGHTS_FILENAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: model_dir must hold a safetensors model")
    return weights


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The export's manifest, or None when there is none of the current format."""
    try:
        manifest = json.loads((out_dir / MANIFEST_FILENAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        return None
    return manifest


def is_current(out_dir: Path, source_sha: str, model_name: str) -> bool:
    """out_dir holds a complete export of these source weights whose int8 file is intact."""
    manifest = read_manifest(out_dir)
    if (
        manifest is None
        or manifest.get("source", {}).get("sha256") != source_sha
        or manifest.get("model_name") != model_name
    ):
        return False
    int8 = out_dir / INT8_FILENAME
    if not int8.is_file() or not (out_dir / "tokenizer.json").is_file():
        return False
    return bool(file_sha256(int8) == manifest.get("int8", {}).get("sha256"))


def read_verified_int8(onnx_dir: Path, manifest: dict[str, Any]) -> bytes:
    """The int8 graph's bytes, after checking them against the manifest's sha256.

    The bytes are hashed in memory rather than with file_sha256: the caller loads these very
    bytes, so what was checked is what runs, even if the file changes in between.
    """
    int8_path = onnx_dir / INT8_FILENAME
    try:
        blob = int8_path.read_bytes()
    except FileNotFoundError as exc:
        raise OnnxIntegrityError(
            f"{int8_path} is missing although {onnx_dir / MANIFEST_FILENAME} lists it; "
            f"delete {onnx_dir} and re-run export_onnx_int8()"
        ) from exc
    expected = manifest["int8"]["sha256"]
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected:
        raise OnnxIntegrityError(
            f"{int8_path} failed its integrity check: sha256 {actual} does not match "
            f"{expected} recorded in {MANIFEST_FILENAME}. The file was modified or corrupted; "
            f"refusing to load it. Delete {onnx_dir} and re-run export_onnx_int8()."
        )
    return blob


# --------------------------------------------------------------------------------------------
# writing


@contextlib.contextmanager
def export_lock(out_dir: Path) -> Iterator[None]:
    """Serialise exporters of the same out_dir across processes."""
    with file_lock(out_dir.parent / f".{out_dir.name}.lock", wait=True):
        yield


def check_replaceable(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    if any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILENAME).exists():
        raise FileExistsError(
            f"{out_dir} is not empty and holds no {MANIFEST_FILENAME}: refusing to replace it"
        )


def remove_leftovers(out_dir: Path) -> None:
    """Delete the staging and trash directories of crashed exports (call under export_lock)."""
    for stale in out_dir.parent.glob(f".{out_dir.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.*.old"):
        shutil.rmtree(stale, ignore_errors=True)


def staging_dir(out_dir: Path) -> Path:
    """A new empty directory beside out_dir (same filesystem, so the final rename is atomic)."""
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))


def publish(tmp: Path, out_dir: Path) -> None:
    """Make the finished export `tmp` durable, then move it to `out_dir`."""
    _fsync_tree(tmp)
    _replace_dir(tmp, out_dir)


def _fsync_tree(root: Path) -> None:
    for path in [*root.iterdir(), root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished export `tmp` to `out_dir`, replacing an older export there.

    Only an empty directory or a previous export (it holds export.json) is ever replaced, so
    a wrongly chosen out_dir full of other files is refused instead of deleted.
    """
    check_replaceable(out_dir)
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
