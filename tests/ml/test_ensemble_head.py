"""The ensemble head: TF-IDF features rebuilt exactly from arrays, stored safely, served."""

import dataclasses
import json

import numpy as np
import pytest
from django.test import override_settings
from sklearn.feature_extraction.text import TfidfVectorizer

from tests.factories import make_item, make_labelled_history
from triage import training
from triage.classify import scoring
from triage.ml.heads import (
    EMBEDDING_WEIGHT,
    LEGACY_EMBEDDING_WEIGHT,
    ArtifactError,
    EnsembleHead,
    LinearHead,
    read_head,
    save_head,
)
from triage.ml.tfidf import ANALYZERS, TfidfFeatures, train_tfidf_head
from triage.training.fit import cross_fit_ensemble

TRAIN = [
    "Water and food needed in Leogane",
    "We need water urgently, please help",
    "The storm damaged roads near Jacmel",
    "Roads are blocked and bridges damaged",
    "Hello, how are you today",
    "Good morning everyone, hello",
] * 3
LABELS = ["request", "request", "information", "information", "other", "other"] * 3


def test_features_from_arrays_equal_sklearns_tfidf():
    features, _ = TfidfFeatures.fit(TRAIN)
    unseen = ["Water for Jacmel please", "hello roads", "nothing known here at all"]
    ours = features.transform(unseen).toarray()
    columns = 0
    for (analyzer, ngrams, most), terms in zip(ANALYZERS, features.vocabularies, strict=True):
        reference = TfidfVectorizer(
            analyzer=analyzer, ngram_range=ngrams, min_df=2, max_features=most, sublinear_tf=True
        ).fit(TRAIN)
        assert sorted(reference.vocabulary_, key=reference.vocabulary_.get) == list(terms)
        block = ours[:, columns : columns + len(terms)]
        assert np.allclose(block, reference.transform(unseen).toarray())
        columns += len(terms)
    assert columns == features.dim


def test_the_tfidf_heads_logits_are_its_features_times_its_weights():
    """TfidfHead.logits (a block of terms at a time, each row divided by its norms after
    the product) equals the product with the whole normalised matrix, an empty text too."""
    head = train_tfidf_head(TRAIN, LABELS)
    texts = ["Water for Jacmel please", "hello roads", "", "zzzz qqqq"]
    expected = head.features.transform(texts) @ head.weights.T + head.bias
    assert np.allclose(head.logits(texts), expected, atol=1e-12)
    assert np.allclose(head.logits(texts)[2], head.bias)


def _ensemble():
    vectors = np.random.default_rng(0).normal(size=(len(TRAIN), 8)).astype(np.float32)
    items = list(range(1, len(TRAIN) + 1))
    return cross_fit_ensemble(vectors, TRAIN, labels=LABELS, items=items), vectors


def test_the_ensemble_is_saved_as_arrays_and_reads_back_identical(tmp_path):
    fit, vectors = _ensemble()
    assert isinstance(fit.head, EnsembleHead)
    path = tmp_path / "head.safetensors"
    sha = save_head(fit.head, path, metadata={"x": 1})
    back = read_head(str(path), sha)
    assert isinstance(back, EnsembleHead)
    assert back.temperature == fit.head.temperature
    assert back.weight == fit.head.weight == EMBEDDING_WEIGHT
    assert back.knn is not None and fit.head.knn is not None
    assert back.knn_weight == fit.head.knn_weight
    assert back.knn.items is not None and fit.head.knn.vectors is not None
    assert np.array_equal(back.knn.items, fit.head.knn.items)
    assert np.array_equal(back.knn.targets, fit.head.knn.targets)
    # Served, the vote finds its items' vectors again (triage.classify.scoring).
    found = dict(zip(back.knn.items.tolist(), vectors, strict=True))
    back = dataclasses.replace(back, knn=back.knn.attached(found))
    texts = ["water please", "roads damaged", "hello"]
    assert np.allclose(
        back.predict_proba(vectors[:3], texts), fit.head.predict_proba(vectors[:3], texts)
    )
    # Nothing pickled: the file is safetensors with plain numeric tensors.
    assert path.read_bytes()[8:9] == b"{"


def test_the_embedding_heads_weight_is_served_as_saved_and_old_files_average_evenly(
    tmp_path, monkeypatch
):
    """An ensemble saved before the weight was recorded keeps the even average its
    evidence was certified with; a weight outside [0, 1] is refused."""
    fit, vectors = _ensemble()
    texts = ["water please", "roads damaged", "hello"]
    assert fit.head.knn is not None
    weighted = 0.7 * fit.head.embedding.logits(vectors[:3]) + 0.3 * fit.head.tfidf.logits(texts)
    vote = fit.head.knn_weight * fit.head.knn.log_votes(vectors[:3])
    assert np.allclose(fit.head.logits(vectors[:3], texts), weighted + vote)
    # Files from before the weight was recorded had no vote either.
    head = dataclasses.replace(fit.head, knn=None)
    assert np.allclose(head.logits(vectors[:3], texts), weighted)

    import triage.ml.heads as heads

    real_save = heads.save_file

    def without_weight(tensors, path, metadata):
        real_save(
            tensors, path, metadata={k: v for k, v in metadata.items() if k != "embedding_weight"}
        )

    monkeypatch.setattr(heads, "save_file", without_weight)
    path = tmp_path / "old.safetensors"
    old = read_head(str(path), save_head(head, path, metadata={}))
    assert old.weight == LEGACY_EMBEDDING_WEIGHT
    even = (head.embedding.logits(vectors[:3]) + head.tfidf.logits(texts)) / 2
    assert np.allclose(old.logits(vectors[:3], texts), even)
    with pytest.raises(ValueError, match="weight must be in"):
        EnsembleHead(head.embedding, head.tfidf, weight=1.5)


def test_an_ensemble_file_changed_after_training_is_refused(tmp_path):
    fit, _ = _ensemble()
    path = tmp_path / "head.safetensors"
    sha = save_head(fit.head, path, metadata={})
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(ArtifactError, match="refusing to load"):
        read_head(str(path), sha)


def test_the_tfidf_half_learns_what_the_embedding_cannot_see():
    # Random vectors carry no signal; the averaged head still ranks by the words.
    fit, _ = _ensemble()
    head = train_tfidf_head(TRAIN, LABELS)
    logits = head.logits(["we need water and food"])
    assert head.labels[int(np.argmax(logits))] == "request"
    assert fit.oof_probs.shape == (len(TRAIN), 3)


def test_a_plain_head_still_reads_as_a_linear_head(tmp_path):
    head = LinearHead(("a", "b"), np.eye(2, dtype=np.float32), np.zeros(2, dtype=np.float32), 2.0)
    path = tmp_path / "linear.safetensors"
    sha = save_head(head, path, metadata={})
    assert isinstance(read_head(str(path), sha), LinearHead)


@pytest.mark.django_db
def test_an_ensemble_version_is_trained_gated_and_served(categories):
    make_labelled_history(categories, copies=8)
    with override_settings(TRIAGE_HEAD="ensemble"):
        result = training.retrain()
    version = result.version
    assert result.promoted
    assert version.metrics["head"] == "ensemble"
    assert version.metrics["measured_on"] == "out_of_fold"
    assert isinstance(read_head(version.artifact_path, version.artifact_sha256), EnsembleHead)
    item = make_item("my invoice was charged twice, refund please")
    scores = scoring.version_scores(version, items=[item])
    assert scores.labels[int(scores.probs[0].argmax())] == "billing"
    assert np.allclose(scores.probs.sum(axis=1), 1.0)


@pytest.mark.django_db
def test_an_ensemble_champion_can_be_rolled_back_to_an_embedding_head(categories):
    make_labelled_history(categories, copies=8)
    with override_settings(TRIAGE_HEAD="embedding"):
        first = training.retrain().version
    with override_settings(TRIAGE_HEAD="ensemble"):
        second = training.retrain().version
    if second.status != second.Status.CHAMPION:
        training.promote_version(version=second, actor="test")
    back = training.rollback(actor="test")
    assert back == first
    assert isinstance(read_head(first.artifact_path, first.artifact_sha256), LinearHead)


def _served(version):
    """The version's ensemble as serving holds it: its vote's voters loaded."""
    return scoring._with_voters(
        version.artifact_path,
        version.artifact_sha256,
        json.dumps(version.encoder_spec, sort_keys=True),
    )


def _ensemble_version(categories):
    history = make_labelled_history(categories, copies=8)
    with override_settings(TRIAGE_HEAD="ensemble"):
        return history, training.retrain().version


@pytest.mark.django_db
def test_the_served_vote_reads_cached_embeddings_and_a_forgotten_item_stops_voting(categories):
    from triage.models import Embedding
    from triage.privacy.forget import forget_items

    history, version = _ensemble_version(categories)
    saved = read_head(version.artifact_path, version.artifact_sha256)
    assert isinstance(saved, EnsembleHead) and saved.knn is not None
    assert saved.knn.vectors is None  # the file names its voters, it does not hold them
    assert set(saved.knn.items.tolist()) == {item.pk for item in history}
    item = make_item("my invoice was charged twice, refund please")
    before = scoring.version_scores(version, items=[item])
    served = _served(version)
    assert served.knn is not None and len(served.knn.targets) == len(history)

    gone = history[0]
    forget_items(external_ids=[gone.external_id], actor="test")
    assert not Embedding.objects.filter(item=gone).exists()
    scoring.clear_caches()
    served = _served(version)
    assert served.knn is not None and served.knn.items is not None
    assert gone.pk not in served.knn.items.tolist()
    assert len(served.knn.targets) == len(history) - 1
    # Nothing re-embedded the forgotten text, and the version still serves.
    assert not Embedding.objects.filter(item=gone).exists()
    after = scoring.version_scores(version, items=[item])
    assert after.labels == before.labels
    assert np.allclose(after.probs.sum(axis=1), 1.0)


@pytest.mark.django_db
def test_a_voter_whose_cached_vector_was_lost_is_embedded_again(categories):
    from triage.models import Embedding

    history, version = _ensemble_version(categories)
    lost = history[3]
    Embedding.objects.filter(item=lost).delete()  # as a crash could lose its lazy commit
    scoring.clear_caches()
    served = _served(version)
    assert served.knn is not None and served.knn.items is not None
    assert lost.pk in served.knn.items.tolist()
    assert Embedding.objects.filter(item=lost).exists()
