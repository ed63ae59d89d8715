"""Numeric arrays as artifacts: .npz files, trusted only with the sha256 recorded for them.

As for heads (triage.ml.heads): written atomically, never unpickled (object arrays
are refused), and the sha256 is checked against the one in the database before
anything is parsed. The bytes are read once and both hashed and parsed from
memory, so a file swapped between the check and the read cannot slip through.
"""

import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from triage.ml.heads import ArtifactError


def _sha256(data: bytes) -> str:
    # Local until triage.ml has one shared file-hash helper (see triage.ml.encoder).
    return hashlib.sha256(data).hexdigest()


def save_arrays(arrays: Mapping[str, np.ndarray], path: Path) -> str:
    """Write the arrays atomically as an uncompressed .npz; return the file's sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    contiguous: dict[str, Any] = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    # Uncompressed: loading is a copy, not a decompression, on every cache miss.
    np.savez(buffer, allow_pickle=False, **contiguous)
    data = buffer.getvalue()
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return _sha256(data)


def read_arrays(path: str, sha256: str) -> dict[str, np.ndarray]:
    """The arrays of a .npz artifact, after checking its sha256 (ArtifactError if not)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"artifact {path} is missing") from None
    except OSError as exc:
        raise ArtifactError(f"artifact {path} cannot be read: {exc}") from exc
    actual = _sha256(data)
    if actual != sha256:
        raise ArtifactError(
            f"artifact {path} has sha256 {actual[:12]}…, expected {sha256[:12]}…; "
            "refusing to load a file that changed since it was written"
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"artifact {path} is not a valid .npz file: {exc}") from exc
