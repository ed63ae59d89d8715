"""The sentence embedding every encoder serves: attention-mask mean pooling, then L2 norm.

A head is trained on the vectors of one encoder_id and scores only those, so the torch
encoder, fine-tuning (which trains through the served embedding) and the ONNX encoder must
pool identically. The torch function serves the first two; the numpy function exists only
because the ONNX serving path runs on onnxruntime + numpy and must not import torch. Both
compute the same thing with the same epsilons (1e-9 on the token count, 1e-12 on the norm,
the latter being torch.nn.functional.normalize's default).

torch is imported inside mean_pool_normalise, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def mean_pool_normalise(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, dim) hidden states -> (batch, dim) unit vectors; padding is ignored.

    Plain tensor operations (no no_grad inside), so fine-tuning can backpropagate through it.
    """
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def pool(
    hidden: torch.Tensor, attention_mask: torch.Tensor, *, pooling: str, normalise: bool
) -> torch.Tensor:
    """The sentence vector an EncoderSpec asks for: mean (masked) or cls (first token)."""
    import torch

    if pooling == "mean" and normalise:
        return mean_pool_normalise(hidden, attention_mask)
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    else:
        pooled = hidden[:, 0]
    return torch.nn.functional.normalize(pooled, dim=-1) if normalise else pooled


def mean_pool_normalise_numpy(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """mean_pool_normalise on numpy arrays, as float32 (for the torch-free ONNX path)."""
    weights = attention_mask[:, :, None].astype(np.float32)
    summed = (hidden.astype(np.float32) * weights).sum(axis=1)
    pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    result: np.ndarray = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
    return result
