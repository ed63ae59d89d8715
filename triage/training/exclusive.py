"""One retrain at a time, whoever starts it: the nightly job, the count of new labels, or
two count triggers racing each other; and one fine-tune at a time, beside them.

Two retrains running together would fit on almost the same snapshot, both pass the gate
against the same champion and promote one after the other: twice the CPU for one model,
and a champion that flips for nothing. So a retrain first takes a lock that every worker
sees; one that cannot take it returns at once, saying it was skipped, and logs why.

- PostgreSQL: a session-level advisory lock (pg_try_advisory_lock). It lives on the
  worker's connection, so a worker that dies mid-retrain releases it with its connection.
- SQLite (the embedded default, one machine): an exclusive flock on a file beside the
  artifacts. The kernel releases it when the process dies.

A fine-tune takes minutes of CPU, so it holds a lock of its own (FINE_TUNE): a retrain
never waits behind it, and a second fine-tune is skipped. Only its last step, the gate
against the champion and the promotion, takes the retrain lock, waiting the seconds a
running retrain needs, so two candidates are never gated against the same champion at once.
"""

import logging
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from triage.filelock import file_lock
from triage.training.retrain import RetrainResult, retrain
from triage.training.snapshot import RetrainError

logger = logging.getLogger(__name__)

RETRAIN = "retrain"
FINE_TUNE = "fine-tune"
SKIPPED_RUNNING = "skipped: another retrain is running; it learns from these labels too"
SKIPPED_FINE_TUNING = "skipped: another fine-tune is running"


def lock_key(name: str) -> int:
    """The advisory lock's key: fixed, and unlikely to meet another application's on a
    shared database (a 31-bit CRC of the name)."""
    return zlib.crc32(f"triage.training.{name}".encode()) & 0x7FFFFFFF


RETRAIN_LOCK_KEY = lock_key(RETRAIN)


@contextmanager
def retrain_lock(name: str = RETRAIN, *, wait: bool = False) -> Iterator[bool]:
    """Yield whether this process now holds the named lock. Without ``wait`` it never
    waits: another holder means False at once."""
    if connection.vendor == "postgresql":
        key = lock_key(name)
        with connection.cursor() as cursor:
            if wait:
                cursor.execute("SELECT pg_advisory_lock(%s), true", [key])
            else:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            held = bool(cursor.fetchone()[-1])
        try:
            yield held
        finally:
            if held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    with file_lock(Path(settings.TRIAGE_ARTIFACT_DIR) / f"{name}.lock", wait=wait) as held:
        yield held


def run_exclusively(
    name: str, run: Callable[[], RetrainResult], *, actor: str, skipped: str
) -> str:
    """`run` unless another holds the named lock; what happened, in one line.

    `skipped` when the lock is taken, "skipped: …" when there are too few examples (a
    normal state for a young deployment, not a crash); otherwise the gate's message.
    """
    with retrain_lock(name) as held:
        if not held:
            logger.info("%s (%s) %s", name, actor, skipped)
            return skipped
        try:
            result = run()
        except RetrainError as exc:
            logger.info("%s (%s) skipped: %s", name, actor, exc)
            return f"skipped: {exc}"
    return result.message


def retrain_exclusively(*, actor: str) -> str:
    """Retrain unless another retrain is running (run_exclusively)."""
    return run_exclusively(
        RETRAIN, lambda: retrain(actor=actor), actor=actor, skipped=SKIPPED_RUNNING
    )
