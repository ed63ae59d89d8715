"""One holder at a time among the processes of one host: an exclusive flock on a file.

The kernel releases the lock when its process dies, so a crash never leaves it held. Used
by the retrain and fine-tune locks on the embedded default (SQLite), the similar-items
index builds and the ONNX exports. POSIX only, as the rest of the deployment.
"""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, *, wait: bool = False) -> Iterator[bool]:
    """Yield whether this process now holds the lock on ``path`` (created if missing).
    Without ``wait`` it never waits: another holder means False at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
