"""Files the model code writes and later trusts, identified by their sha256.

Heads, fine-tuned encoders, ready classifiers and ONNX exports are all checked against
a recorded sha256 before use, and the cockpit shows the same digest. One function computes
it so that every check agrees on what "the sha256 of a file" is.

This module imports only the standard library: non-ML code (the cockpit, training) imports
it without paying for numpy, let alone torch.
"""

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """Hex sha256 of the file at `path`, read in chunks (model files are hundreds of MB)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
