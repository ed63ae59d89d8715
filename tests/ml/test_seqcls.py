"""A ready sequence-classification model as the classifier (a tiny random BERT, built locally)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from triage.ml.encoder import packaged_model_dir
from triage.ml.seqcls import (
    SeqClsConfigurationError,
    SequenceClassifier,
    map_labels,
    read_id2label,
)

CATEGORIES = ["complaint", "other", "billing"]
ID2LABEL = {0: "NEG", 1: "NEU", 2: "POS"}
TOKENIZER_FILES = [
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    source = packaged_model_dir()
    vocab_size = len((source / "vocab.txt").read_text(encoding="utf-8").splitlines())
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        initializer_range=0.5,  # spread the random outputs so texts score distinctly
        id2label=ID2LABEL,
        label2id={label: i for i, label in ID2LABEL.items()},
    )
    torch.manual_seed(0)
    model_dir = tmp_path_factory.mktemp("models") / "tiny-sentiment"
    BertForSequenceClassification(config).save_pretrained(model_dir)
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, model_dir / name)
    assert (model_dir / "model.safetensors").is_file()
    return model_dir


@pytest.fixture(scope="module")
def classifier(tiny_model_dir) -> SequenceClassifier:
    return SequenceClassifier(
        tiny_model_dir,
        label_map={"NEG": "complaint", "NEU": "other", "POS": "other"},
        categories=CATEGORIES,
        batch_size=2,
    )


def copy_model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, target)
    return target


def edit_config(model_dir: Path, **changes) -> None:
    path = model_dir / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def test_id2label_is_read_from_config(tiny_model_dir):
    assert read_id2label(tiny_model_dir) == ID2LABEL


def test_labels_map_explicitly_and_implicitly():
    id2label = {0: "NEG", 1: "other", 2: "POS"}
    mapped = map_labels(id2label, {"NEG": "complaint", "POS": "other"}, CATEGORIES)
    assert mapped == ["complaint", "other", "other"]


def test_classifier_merges_labels_that_share_a_category(classifier, tiny_model_dir):
    assert classifier.labels == ("complaint", "other")
    assert classifier.model_id.startswith("tiny-sentiment:")
    assert len(classifier.model_id.split(":")[1]) == 12
    texts = ["the parcel never arrived", "thanks, all good", "I want a refund now"]
    proba = classifier.predict_proba(texts)
    assert proba.shape == (3, 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert (proba > 0).all()
    # The merged column is the sum of the model's NEU and POS probabilities.
    raw = classifier._model_logits(texts)
    model_proba = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    assert np.allclose(proba[:, 0], model_proba[:, 0])
    assert np.allclose(proba[:, 1], model_proba[:, 1] + model_proba[:, 2])
    # logits are log-probabilities: softmax of them is predict_proba again.
    logits = classifier.logits(texts)
    assert np.allclose(np.exp(logits), proba)


def test_outputs_follow_input_order_across_lengths(classifier):
    texts = [
        "refund " * 150,
        "hi",
        "my order arrived broken and nobody answers " * 10,
        "ok",
        "where is my invoice for last month?",
    ]
    together = classifier.predict_proba(texts)
    one_by_one = np.vstack([classifier.predict_proba([text]) for text in texts])
    # Rows differ from each other, so a batching mix-up could not go unnoticed.
    gaps = np.abs(one_by_one[:, None, 0] - one_by_one[None, :, 0])
    assert gaps[~np.eye(len(texts), dtype=bool)].min() > 1e-4
    assert np.allclose(together, one_by_one, atol=1e-5)
    assert classifier.predict_proba([]).shape == (0, 2)


def test_an_unmapped_label_is_named_in_the_error(tiny_model_dir):
    with pytest.raises(SeqClsConfigurationError) as info:
        SequenceClassifier(
            tiny_model_dir, label_map={"NEG": "complaint", "NEU": "other"}, categories=CATEGORIES
        )
    message = str(info.value)
    assert "model label 'POS' is not mapped to a category" in message
    assert "POS=<category>" in message


def test_all_mapping_problems_are_reported_together():
    with pytest.raises(SeqClsConfigurationError) as info:
        map_labels(ID2LABEL, {"NEG": "complaints", "NEUTRAL": "other"}, CATEGORIES)
    message = str(info.value)
    assert "unknown category 'complaints'" in message
    assert "'NEUTRAL' is not a label of this model" in message
    assert "model label 'NEU' is not mapped" in message
    assert "model label 'POS' is not mapped" in message


def test_a_mapping_to_an_unknown_category_is_rejected():
    with pytest.raises(SeqClsConfigurationError, match="unknown category 'shipping'"):
        map_labels(ID2LABEL, {"NEG": "shipping", "NEU": "other", "POS": "other"}, CATEGORIES)


def test_pickled_weights_only_are_refused(tiny_model_dir, tmp_path):
    model_dir = copy_model(tiny_model_dir, tmp_path)
    (model_dir / "model.safetensors").rename(model_dir / "pytorch_model.bin")
    with pytest.raises(SeqClsConfigurationError, match="never unpickles"):
        read_id2label(model_dir)


def test_custom_code_configs_are_refused(tiny_model_dir, tmp_path):
    model_dir = copy_model(tiny_model_dir, tmp_path)
    edit_config(model_dir, auto_map={"AutoModelForSequenceClassification": "x.Model"})
    with pytest.raises(SeqClsConfigurationError, match="never runs custom code"):
        read_id2label(model_dir)


def test_missing_id2label_is_refused(tiny_model_dir, tmp_path):
    model_dir = copy_model(tiny_model_dir, tmp_path)
    edit_config(model_dir, id2label=None, label2id=None)
    with pytest.raises(SeqClsConfigurationError, match="no id2label"):
        read_id2label(model_dir)


def test_a_directory_without_config_is_refused(tmp_path):
    with pytest.raises(SeqClsConfigurationError, match="no config.json"):
        read_id2label(tmp_path)


@pytest.mark.django_db
def test_a_ready_classifier_goes_through_the_same_gate(tiny_model_dir, categories):
    from django.core.management import call_command

    from tests.factories import make_item, make_labelled_history
    from triage import training
    from triage.classify import service
    from triage.models import ModelVersion, Prediction
    from triage.routing.evidence import load_evidence

    make_labelled_history(categories, copies=8)
    labels = ["--label", "NEG=billing", "--label", "NEU=outage", "--label", "POS=other"]
    call_command("register_model", str(tiny_model_dir), *labels)
    ready = ModelVersion.objects.get()
    assert ready.kind == "sequence_classifier"
    assert ready.status == "champion"  # the first model needs no comparison
    assert load_evidence(ready).labels == ("billing", "outage", "other")

    item = make_item("refund my card")
    service.classify_items(item_ids=[item.pk])
    assert Prediction.objects.get(item=item).model_version == ready

    # A head trained on our own examples measures better on the same holdout.
    result = training.retrain()
    assert result.promoted
    ready.refresh_from_db()
    assert ready.status == "retired"


@pytest.mark.django_db
def test_registering_with_an_unmapped_label_is_a_clear_error(tiny_model_dir, categories):
    from django.core.management import CommandError, call_command

    from tests.factories import make_labelled_history
    from triage.models import ModelVersion

    make_labelled_history(categories, copies=8)
    with pytest.raises(CommandError, match="model label 'POS' is not mapped"):
        call_command(
            "register_model", str(tiny_model_dir), "--label", "NEG=billing", "--label", "NEU=outage"
        )
    assert not ModelVersion.objects.exists()
