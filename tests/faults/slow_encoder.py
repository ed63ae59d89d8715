"""Fake encoders that misbehave: slowed down, so a test can kill a worker while it is
encoding; and one that kills its own process on a poison text."""

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tests.fakes import FakeEncoder


class SlowEncoder(FakeEncoder):
    """Writes TRIAGE_TEST_ENCODE_MARKER when an encode starts, then sleeps
    TRIAGE_TEST_ENCODE_SECONDS: a worker killed after the marker appears dies mid-batch."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if marker := os.environ.get("TRIAGE_TEST_ENCODE_MARKER"):
            Path(marker).write_text(str(len(texts)))
        time.sleep(float(os.environ.get("TRIAGE_TEST_ENCODE_SECONDS", "0")))
        return super().encode(texts)


class PoisonEncoder(FakeEncoder):
    """SIGKILLs its own process when a text contains TRIAGE_TEST_POISON, as the kernel's
    out-of-memory killer would on a text too big to embed."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        poison = os.environ.get("TRIAGE_TEST_POISON", "")
        if poison and any(poison in text for text in texts):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().encode(texts)


class ThreadsEncoder(FakeEncoder):
    """Writes, when a process builds it, how many threads that process's encoder gets
    (triage.ml.threads) to TRIAGE_TEST_THREADS_DIR/<pid>."""

    @classmethod
    def from_spec(cls, spec: dict) -> "ThreadsEncoder":
        from triage.ml.threads import encoder_threads

        if folder := os.environ.get("TRIAGE_TEST_THREADS_DIR"):
            (Path(folder) / str(os.getpid())).write_text(str(encoder_threads()))
        return cls()
