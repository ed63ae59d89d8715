"""Fine-tuning the encoder end to end (slow test: the real packaged model)."""

import itertools

import numpy as np
import pytest

from triage.ml.encoder import TransformerEncoder, packaged_model_dir
from triage.ml.finetune import bucketed_batches, fine_tune_encoder

# Three intents written over shared slot words (names, places, times), so that the
# pretrained encoder partly groups sentences by their slots rather than their intent.
TEMPLATES = {
    "help": [
        "{name}, could you help me with the {thing} in {place} {time}?",
        "I need someone to fix the {thing} at {place} {time}, please",
        "{name} asked for assistance setting up the {thing} in {place}",
        "Please, can anyone help {name} with a {thing} problem {time}?",
    ],
    "weather": [
        "It will be rainy and cold in {place} {time}, {name} said",
        "{name} reports heavy snow falling over {place} {time}",
        "Sunny skies and a warm breeze expected in {place} {time}",
        "The forecast for {place} {time}: strong winds, {name} warns",
    ],
    "greeting": [
        "Hello {name}, lovely to see you in {place} {time}!",
        "Good morning {name}, welcome back to {place}",
        "Hi everyone, {name} says hello from {place} {time}",
        "Greetings {name}, how are you doing {time}?",
    ],
}
TRAIN_SLOTS = {
    "name": ["Anna", "Marco", "Priya", "Tom", "Yuki"],
    "place": ["Lisbon", "the office", "Nairobi", "the garden", "Oslo"],
    "time": ["today", "this evening", "tomorrow"],
    "thing": ["printer", "laptop", "heater"],
}
TEST_SLOTS = {
    "name": ["Omar", "Greta", "Luis"],
    "place": ["Kyoto", "the harbour", "Denver"],
    "time": ["tonight", "on Monday"],
    "thing": ["router", "boiler"],
}


def make_examples(slots: dict[str, list[str]], per_template: int, seed: int):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, templates in TEMPLATES.items():
        for template in templates:
            combos = list(itertools.product(*slots.values()))
            for k in rng.choice(len(combos), size=per_template, replace=False):
                texts.append(template.format(**dict(zip(slots, combos[k], strict=True))))
                labels.append(label)
    return texts, np.array(labels)


def separation(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Mean within-class cosine minus mean between-class cosine (unit vectors)."""
    sims = vectors @ vectors.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    return float(sims[same & off_diagonal].mean() - sims[~same].mean())


def nearest_centroid_accuracy(train_v, train_y, test_v, test_y) -> float:
    classes = sorted(set(train_y))
    centroids = np.stack([train_v[train_y == c].mean(0) for c in classes])
    predicted = np.array(classes)[np.argmax(test_v @ centroids.T, axis=1)]
    return float((predicted == test_y).mean())


@pytest.mark.slow
def test_fine_tuning_separates_intents_better_than_the_base_encoder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train_texts, train_y = make_examples(TRAIN_SLOTS, per_template=10, seed=1)  # 120
    test_texts, test_y = make_examples(TEST_SLOTS, per_template=5, seed=2)  # 60
    base_dir = packaged_model_dir()
    out_dir = tmp_path / "models" / "finetuned"
    calls: list[tuple[int, int]] = []

    result = fine_tune_encoder(
        base_dir,
        train_texts,
        list(train_y),
        out_dir=out_dir,
        epochs=2,
        max_length=32,
        batch_size=16,
        learning_rate=5e-5,
        seed=0,
        progress=lambda step, total: calls.append((step, total)),
    )

    assert result == out_dir
    assert calls == [(i, 16) for i in range(1, 17)]  # ceil(120 / 16) * 2 epochs
    files = {p.name for p in out_dir.rglob("*")}
    assert "model.safetensors" in files and "config.json" in files
    assert "tokenizer.json" in files or "vocab.txt" in files
    assert not [f for f in files if f.endswith((".bin", ".pkl", ".pt", ".pth"))]
    assert not [p for p in out_dir.parent.iterdir() if p != out_dir]  # no temp dir left

    base = TransformerEncoder(base_dir, max_length=32, batch_size=32)
    tuned = TransformerEncoder(out_dir, max_length=32, batch_size=32)
    assert tuned.encoder_id != base.encoder_id  # the weights changed
    assert tuned.dim == base.dim

    # Centroids from every 4th training sentence (10 per class) keep the test fast.
    centroid_texts, centroid_y = train_texts[::4], train_y[::4]
    base_train, base_test = base.encode(centroid_texts), base.encode(test_texts)
    tuned_train, tuned_test = tuned.encode(centroid_texts), tuned.encode(test_texts)
    assert np.allclose(np.linalg.norm(tuned_test, axis=1), 1.0, atol=1e-5)

    # Held-out sentences (unseen names, places, things) are grouped by intent
    # far more tightly than by the pretrained encoder: a clear margin, so the
    # test fails if training did nothing or trained the wrong pooling.
    base_gap, tuned_gap = separation(base_test, test_y), separation(tuned_test, test_y)
    assert tuned_gap > base_gap + 0.15, (base_gap, tuned_gap)
    base_acc = nearest_centroid_accuracy(base_train, centroid_y, base_test, test_y)
    tuned_acc = nearest_centroid_accuracy(tuned_train, centroid_y, tuned_test, test_y)
    assert tuned_acc >= base_acc
    assert tuned_acc >= 0.95, (base_acc, tuned_acc)


def test_invalid_training_sets_are_rejected_with_a_clear_message(tmp_path):
    model_dir = tmp_path / "unused"  # validation happens before any model is loaded
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="texts is empty"):
        fine_tune_encoder(model_dir, [], [], out_dir=out)
    with pytest.raises(ValueError, match="same length"):
        fine_tune_encoder(model_dir, ["a", "b"], ["x"], out_dir=out)
    with pytest.raises(ValueError, match="at least two distinct labels"):
        fine_tune_encoder(model_dir, ["a", "b", "c"], ["x", "x", "x"], out_dir=out)
    with pytest.raises(ValueError, match="epochs must be positive"):
        fine_tune_encoder(model_dir, ["a", "b"], ["x", "y"], out_dir=out, epochs=0)
    assert not out.exists()


def test_an_existing_output_directory_is_never_overwritten(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"previous model")
    with pytest.raises(FileExistsError):
        fine_tune_encoder(tmp_path / "unused", ["a", "b"], ["x", "y"], out_dir=out)
    assert (out / "model.safetensors").read_bytes() == b"previous model"


def test_bucketed_batches_cover_every_example_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=1000)
    batches = bucketed_batches(list(lengths), 8, np.random.default_rng(1))
    assert len(batches) == 125
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 10  # sorted within 400-example chunks: little padding
    again = bucketed_batches(list(lengths), 8, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
