"""One sentence embedding, two implementations: torch (training, torch serving), numpy (ONNX)."""

import numpy as np

from triage.ml.pooling import mean_pool_normalise, mean_pool_normalise_numpy


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(3, 5, 8)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=np.int64)
    return hidden, mask


def test_padding_does_not_change_a_text_s_vector() -> None:
    hidden, mask = _batch()
    garbage = hidden.copy()
    garbage[mask == 0] = 1e6  # whatever the model puts at padded positions
    got = mean_pool_normalise_numpy(garbage, mask)
    want = hidden[1, :2].mean(axis=0)
    assert np.allclose(got[1], want / np.linalg.norm(want), atol=1e-6)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_torch_and_numpy_pooling_agree() -> None:
    import torch

    hidden, mask = _batch()
    from_torch = mean_pool_normalise(torch.from_numpy(hidden), torch.from_numpy(mask)).numpy()
    assert np.allclose(from_torch, mean_pool_normalise_numpy(hidden, mask), atol=1e-6)
