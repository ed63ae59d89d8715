"""Length-sorted batching with a padded-token budget (shared by the torch and ONNX encoders)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from triage.ml.encoder import length_sorted_batches


@given(
    lengths=st.lists(st.integers(1, 300), max_size=300),
    batch_size=st.integers(1, 70),
    max_tokens=st.none() | st.integers(1, 5000),
)
def test_batches_cover_every_row_once_within_both_limits(
    lengths: list[int], batch_size: int, max_tokens: int | None
) -> None:
    batches = length_sorted_batches(lengths, batch_size, max_tokens)

    seen = np.concatenate(batches) if batches else np.array([], dtype=int)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    widths = []
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        width = max(lengths[i] for i in batch)
        if max_tokens is not None and len(batch) > 1:
            # A single text longer than the budget still gets a batch of its own.
            assert len(batch) * width <= max_tokens
        widths.append(width)
    assert widths == sorted(widths)  # shortest first: similar lengths share a batch


def test_a_long_text_does_not_pad_a_full_batch() -> None:
    lengths = [20] * 63 + [256]

    by_rows = length_sorted_batches(lengths, 64)
    by_tokens = length_sorted_batches(lengths, 64, max_tokens=64 * 32)

    assert [len(b) for b in by_rows] == [64]  # 64 x 256 padded tokens
    assert [len(b) for b in by_tokens] == [63, 1]  # 63 x 20 + 1 x 256
    assert by_tokens[1].tolist() == [63]
