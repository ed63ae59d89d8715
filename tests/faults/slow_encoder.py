"""The fake encoder, slowed down, so a test can kill a worker while it is encoding."""

import os
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
