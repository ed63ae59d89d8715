"""End-to-end fine-tuning of the sentence encoder on reviewed examples.

The encoder is trained through exactly the embedding it is served with
(`triage.ml.pooling.mean_pool_normalise`, as in `triage.ml.encoder.TransformerEncoder`),
under a temporary cosine classifier.
Only the encoder is saved: the caller embeds texts with the saved directory and
fits its own logistic-regression head and calibration on those embeddings, so
the served head is trained on exactly the vectors it will see.

Weights are written with safetensors only; nothing is pickled and no remote
code is ever trusted. torch is imported inside the function, as elsewhere in
this package, so importing the module stays cheap.
"""

import math
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from triage.ml.encoder import length_sorted_batches
from triage.ml.pooling import mean_pool_normalise

# Cosine-classifier scale (an inverse temperature). Cosines lie in [-1, 1], so
# without a scale the softmax could never become confident and the loss would
# keep pushing every example equally hard; 20 lets a well-separated example
# reach a small loss (cos gap 0.3 -> logit gap 6) while still penalising margins.
COSINE_SCALE = 20.0
# Batches per bucket: shuffle, cut into chunks this many batches long, sort each
# chunk by length. Batches hold texts of similar length (little padding) while
# the order stays random at the scale of the epoch.
BUCKET_BATCHES = 50
WARMUP_FRACTION = 0.1
WEIGHT_DECAY = 0.01
# The temporary head starts at the class centroids (imprinting) and learns
# faster than the pretrained encoder under it.
HEAD_LR_MULTIPLIER = 100.0
MAX_GRAD_NORM = 1.0
# Centroids for imprinting come from at most this many examples per class: a
# no-grad pass over a sample, not over the whole training set.
IMPRINT_PER_CLASS = 256


def bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffle, chunk into ~BUCKET_BATCHES batches, sort each chunk by length, split.

    Batch order is shuffled again so an epoch does not sweep short-to-long within
    each chunk. Every index appears exactly once.
    """
    lengths_arr = np.asarray(lengths)
    order = rng.permutation(len(lengths_arr))
    chunk = batch_size * BUCKET_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths_arr[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _imprint_sample(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to IMPRINT_PER_CLASS example indices of each class."""
    picks = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if len(members) > IMPRINT_PER_CLASS:
            members = np.sort(rng.choice(members, IMPRINT_PER_CLASS, replace=False))
        picks.append(members)
    return np.concatenate(picks)


def _validate(texts: Sequence[str], labels: Sequence[str], **positive: int | float) -> None:
    if len(texts) == 0:
        raise ValueError("cannot fine-tune on no examples: texts is empty")
    if len(texts) != len(labels):
        raise ValueError(
            f"texts and labels must have the same length, got {len(texts)} texts "
            f"and {len(labels)} labels"
        )
    distinct = sorted(set(labels))
    if len(distinct) < 2:
        raise ValueError(
            f"fine-tuning needs at least two distinct labels, got {len(distinct)}: {distinct}"
        )
    for name, value in positive.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")


def fine_tune_encoder(
    model_dir: Path,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    out_dir: Path,
    epochs: int = 1,
    max_length: int = 128,
    batch_size: int = 32,
    learning_rate: float = 3e-5,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Fine-tune the encoder in `model_dir` to separate `labels`; save it to `out_dir`.

    `out_dir` must not exist yet (or be an empty directory): model directories
    are immutable once written. The result is a transformers directory with
    `model.safetensors` and the tokenizer files, written to a temporary
    directory beside it and renamed into place, so a crash never leaves a
    half-written model. `progress(step, total_steps)` is called after each
    optimiser step. Returns `out_dir`.
    """
    _validate(
        texts,
        labels,
        epochs=epochs,
        max_length=max_length,
        batch_size=batch_size,
        learning_rate=learning_rate,
    )
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)

    import torch
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    classes = sorted(set(labels))
    index = {label: i for i, label in enumerate(classes)}
    y = torch.tensor([index[label] for label in labels], dtype=torch.long)

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True, use_safetensors=True)
    model = model.float()
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    lengths = [len(ids) for ids in encoded["input_ids"]]

    def features(batch: np.ndarray) -> Any:
        return tokenizer.pad(
            {key: [encoded[key][i] for i in batch] for key in encoded}, return_tensors="pt"
        )

    def embed(batch: np.ndarray) -> Any:
        # The served embedding (TransformerEncoder.encode), with gradients.
        feats = features(batch)
        return mean_pool_normalise(model(**feats).last_hidden_state, feats["attention_mask"])

    steps_per_epoch = math.ceil(len(texts) / batch_size)
    total_steps = steps_per_epoch * epochs
    rng = np.random.default_rng(seed)

    # fork_rng: seed dropout deterministically without disturbing the caller's
    # global torch RNG state. Thread count is left to the process.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)

        # Temporary cosine classifier: logits = s * normalize(e) @ normalize(W)^T.
        # W is row-normalised (and has no bias) so the only way to lower the
        # loss is to change the angles between embeddings and class directions:
        # the head cannot win by growing the norm of an easy class's row. That
        # angular geometry on the unit sphere is exactly what the caller's
        # logistic-regression head (and nearest-neighbour look-ups) consume.
        # Rows start at the class centroids of the pretrained embeddings
        # ("imprinting"), so the first steps already carry a meaningful signal
        # into the encoder instead of fitting a random head.
        model.eval()
        sample = _imprint_sample(y.numpy(), np.random.default_rng([seed, 1]))
        sums = torch.zeros(len(classes), int(model.config.hidden_size))
        with torch.inference_mode():
            for chunk in length_sorted_batches([lengths[i] for i in sample], batch_size * 2):
                batch = sample[chunk]
                sums.index_add_(0, y[batch], embed(batch))
        head = torch.nn.Parameter(torch.nn.functional.normalize(sums, dim=-1).clone())

        decay: list[Any] = []
        no_decay: list[Any] = []
        for name, param in model.named_parameters():
            is_norm_or_bias = name.endswith("bias") or "LayerNorm" in name
            (no_decay if is_norm_or_bias else decay).append(param)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": WEIGHT_DECAY},
                {"params": no_decay, "weight_decay": 0.0},
                {
                    "params": [head],
                    "weight_decay": 0.0,
                    "lr": learning_rate * HEAD_LR_MULTIPLIER,
                },
            ],
            lr=learning_rate,
            fused=True,  # one kernel per step on CPU: ~5x faster than the default loop
        )
        scheduler = get_linear_schedule_with_warmup(  # type: ignore[no-untyped-call]
            optimizer,
            num_warmup_steps=max(1, round(WARMUP_FRACTION * total_steps)),
            num_training_steps=total_steps,
        )

        model.train()
        step = 0
        for _epoch in range(epochs):
            for batch in bucketed_batches(lengths, batch_size, rng):
                vectors = embed(batch)
                logits = COSINE_SCALE * vectors @ torch.nn.functional.normalize(head, dim=-1).T
                loss = torch.nn.functional.cross_entropy(logits, y[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
                optimizer.step()
                scheduler.step()
                step += 1
                if progress is not None:
                    progress(step, total_steps)
        model.eval()

    _save_atomically(model, tokenizer, out_dir)
    return out_dir


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(
            f"{out_dir} already exists and is not an empty directory; "
            "fine-tuned models are written to a new directory"
        )


def _save_atomically(model: Any, tokenizer: Any, out_dir: Path) -> None:
    """Save the encoder and tokenizer beside out_dir, then rename into place."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Same parent, so the final rename is atomic; mkdir (unlike mkdtemp's 0700)
    # honours the umask, so the model is readable like any other artifact.
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        # transformers 5 always writes safetensors (the flag is kept for 4.x);
        # the large shard size keeps a single model.safetensors, the file the
        # encoder fingerprints.
        model.save_pretrained(tmp, safe_serialization=True, max_shard_size="50GB")
        tokenizer.save_pretrained(tmp)
        if not (tmp / "model.safetensors").is_file():
            raise RuntimeError(f"save_pretrained did not write {tmp / 'model.safetensors'}")
        pickled = [p.name for p in tmp.rglob("*") if p.suffix in {".bin", ".pkl", ".pt", ".pth"}]
        if pickled:
            raise RuntimeError(f"save_pretrained wrote pickle files {pickled}; refusing them")
        _check_out_dir(out_dir)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above); renaming onto a directory is not portable
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
