"""The nearest examples' vote: what it computes, how it is stored, what it adds."""

import dataclasses

import numpy as np
import pytest

import triage.ml.heads as heads
import triage.ml.knn as knn
from triage.ml.heads import ArtifactError, EnsembleHead, read_head, save_head
from triage.ml.knn import PRIOR, KnnHead, train_knn_head
from triage.training.fit import cross_fit_ensemble


def brute_force(head: KnnHead, query: np.ndarray) -> np.ndarray:
    """One item at a time, sorted in full: the k most similar references vote."""
    q = query / np.linalg.norm(query)
    assert head.vectors is not None
    similarity = head.vectors.astype(np.float64) @ q
    order = np.argsort(-similarity, kind="stable")[: min(head.k, len(similarity))]
    votes = np.full(len(head.labels), PRIOR)
    for i in order:
        votes[head.targets[i]] += np.exp(head.sharpness * similarity[i])
    return np.log(votes / votes.sum())


@pytest.mark.parametrize(("n_refs", "k"), [(500, 60), (40, 60), (1, 5)])
def test_the_vote_is_the_k_nearest_examples_weighted_by_similarity(n_refs: int, k: int) -> None:
    rng = np.random.default_rng(n_refs)
    refs = rng.normal(size=(n_refs, 16))
    labels = [("a", "b", "c")[i % 3] for i in range(n_refs)]
    head = dataclasses.replace(train_knn_head(refs, labels, classes=("a", "b", "c")), k=k)
    queries = rng.normal(size=(300, 16))
    ours = head.log_votes(queries)
    assert ours.shape == (300, 3)
    assert np.allclose(np.exp(ours).sum(axis=1), 1.0)
    for row, query in zip(ours, queries, strict=True):
        assert np.allclose(row, brute_force(head, query), atol=1e-5)


def test_the_vote_sees_local_structure_a_linear_head_averages_away() -> None:
    # Two categories in four clusters, alternating round a circle: no straight line
    # separates them; the vote ranks by the nearest cluster.
    rng = np.random.default_rng(0)
    centres = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=float)
    points = np.repeat(centres, 50, axis=0) + rng.normal(scale=0.1, size=(200, 2))
    labels = ["x", "y", "x", "y"]
    truth = [labels[i // 50] for i in range(200)]
    head = train_knn_head(points, truth, classes=("x", "y"))
    predicted = np.array(["x", "y"])[head.log_votes(points).argmax(axis=1)]
    assert (predicted == np.array(truth)).mean() > 0.95


def test_beyond_the_cap_a_fixed_subset_votes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knn, "MAX_REFERENCES", 100)
    refs = np.random.default_rng(1).normal(size=(1000, 8))
    labels = ["a", "b"] * 500
    first = train_knn_head(refs, labels, classes=("a", "b"), items=range(1, 1001))
    again = train_knn_head(refs, labels, classes=("a", "b"), items=range(1, 1001))
    assert len(first.targets) == 100 and first.items is not None and again.items is not None
    assert np.array_equal(first.items, again.items)
    assert first.vectors is not None and again.vectors is not None
    assert np.array_equal(first.vectors, again.vectors)
    # Each kept reference keeps its own item and label.
    assert all(
        labels[int(i) - 1] == ("a", "b")[t] for i, t in zip(first.items, first.targets, strict=True)
    )


TRAIN = ["water needed", "food please", "road blocked", "bridge down", "hello", "good day"] * 4
LABELS = ["request", "request", "information", "information", "other", "other"] * 4
ITEMS = list(range(101, 101 + len(TRAIN)))


def _fit():
    vectors = np.random.default_rng(0).normal(size=(len(TRAIN), 8)).astype(np.float32)
    return cross_fit_ensemble(vectors, TRAIN, labels=LABELS, items=ITEMS), vectors


def test_an_artifact_names_its_voters_and_never_holds_their_vectors(tmp_path) -> None:
    fit, vectors = _fit()
    path = tmp_path / "head.safetensors"
    back = read_head(str(path), save_head(fit.head, path, metadata={}))
    assert isinstance(back, EnsembleHead) and back.knn is not None
    assert back.knn.vectors is None and back.knn.items is not None
    assert list(back.knn.items) == ITEMS
    assert b"knn_vectors" not in path.read_bytes()
    with pytest.raises(ValueError, match="not loaded"):
        back.logits(vectors[:2], TRAIN[:2])
    # With its vectors found again it serves exactly the fitted head.
    served = dataclasses.replace(
        back, knn=back.knn.attached(dict(zip(ITEMS, vectors, strict=True)))
    )
    assert np.allclose(
        served.logits(vectors[:5], TRAIN[:5]), fit.head.logits(vectors[:5], TRAIN[:5])
    )


def test_an_item_whose_vector_is_gone_no_longer_votes() -> None:
    fit, vectors = _fit()
    assert fit.head.knn is not None
    found = dict(zip(ITEMS[1:], vectors[1:], strict=True))  # the first item was forgotten
    fewer = fit.head.knn.attached(found)
    assert fewer.items is not None and list(fewer.items) == ITEMS[1:]
    assert len(fewer.targets) == len(ITEMS) - 1


def test_a_head_without_its_items_cannot_be_saved(tmp_path) -> None:
    vectors = np.random.default_rng(0).normal(size=(len(TRAIN), 8))
    fit = cross_fit_ensemble(vectors, TRAIN, labels=LABELS)  # no item ids (benchmarks)
    with pytest.raises(ValueError, match="saved by its items"):
        save_head(fit.head, tmp_path / "head.safetensors", metadata={})


def test_an_ensemble_saved_before_the_vote_is_served_without_it(tmp_path, monkeypatch) -> None:
    fit, vectors = _fit()
    real_save = heads.save_file

    def without_vote(tensors, path, metadata):
        tensors = {k: v for k, v in tensors.items() if not k.startswith("knn_")}
        real_save(
            tensors, path, metadata={k: v for k, v in metadata.items() if not k.startswith("knn_")}
        )

    monkeypatch.setattr(heads, "save_file", without_vote)
    path = tmp_path / "old.safetensors"
    old = read_head(str(path), save_head(fit.head, path, metadata={}))
    assert isinstance(old, EnsembleHead) and old.knn is None
    texts = ["water", "road", "hello"]
    linear = 0.7 * fit.head.embedding.logits(vectors[:3]) + 0.3 * fit.head.tfidf.logits(texts)
    assert np.allclose(old.logits(vectors[:3], texts), linear)


def test_a_vote_whose_arrays_do_not_fit_is_refused_when_read(tmp_path, monkeypatch) -> None:
    real_save = heads.save_file

    def corrupt(tensors, path, metadata):
        tensors = dict(tensors)
        tensors["knn_targets"] = tensors["knn_targets"] + 7  # labels that do not exist
        real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(heads, "save_file", corrupt)
    fit, _ = _fit()
    path = tmp_path / "head.safetensors"
    sha = save_head(fit.head, path, metadata={})
    with pytest.raises(ArtifactError, match="label index is outside"):
        read_head(str(path), sha)


def test_a_vote_needs_its_labels_in_the_ensembles_order() -> None:
    fit, vectors = _fit()
    assert fit.head.knn is not None
    wrong = dataclasses.replace(fit.head.knn, labels=tuple(reversed(fit.head.labels)))
    with pytest.raises(ValueError, match="share labels"):
        dataclasses.replace(fit.head, knn=wrong)
    without = cross_fit_ensemble(vectors, TRAIN, labels=LABELS, knn_weight=0)
    assert without.head.knn is None


def test_an_item_that_is_itself_a_voter_does_not_vote_for_itself() -> None:
    # As in the out-of-fold evidence, where no example votes for itself: an item labelled
    # again since training, scored by the gate or an evaluation, is voted on by the others.
    rng = np.random.default_rng(5)
    refs = rng.normal(size=(200, 16))
    labels = [("a", "b")[i % 2] for i in range(200)]
    items = list(range(1000, 1200))
    head = train_knn_head(refs, labels, classes=("a", "b"), items=items)
    others = train_knn_head(refs[1:], labels[1:], classes=("a", "b"), items=items[1:])
    queries = np.vstack([refs[0], rng.normal(size=16)])
    assert np.allclose(
        head.log_votes(queries, items=[1000, 5]), others.log_votes(queries, items=[1000, 5])
    )
    # Unknown which items they are: the item's own vote counts, and it dominates.
    assert head.log_votes(queries[:1])[0].argmax() == 0
    assert not np.allclose(head.log_votes(queries[:1]), others.log_votes(queries[:1]))
    # Every voter the item itself, with sharpness 0: no vote, no warning, the prior alone.
    alone = dataclasses.replace(
        train_knn_head(refs[:1], labels[:1], classes=("a", "b"), items=[7]), sharpness=0.0
    )
    assert np.allclose(alone.log_votes(refs[:1], items=[7]), np.log([0.5, 0.5]))


@pytest.mark.parametrize("k", [3, 60, 199])
def test_an_item_voting_twice_is_set_aside_twice_and_k_others_vote(k: int) -> None:
    """An item that is two voters (labelled twice) is voted on by the k nearest of the
    others, however near its own two rows are: the brute-force vote without them."""
    rng = np.random.default_rng(k)
    refs = rng.normal(size=(200, 16))
    refs[1] = refs[0] + 1e-3  # the same item's two rows, both nearest to it
    labels = [("a", "b", "c")[i % 3] for i in range(200)]
    items = [500, 500, *range(1002, 1200)]
    head = dataclasses.replace(
        train_knn_head(refs, labels, classes=("a", "b", "c"), items=items), k=k
    )
    others = dataclasses.replace(
        train_knn_head(refs[2:], labels[2:], classes=("a", "b", "c"), items=items[2:]), k=k
    )
    queries = np.vstack([refs[0], rng.normal(size=(5, 16))])
    ours = head.log_votes(queries, items=[500, 1, 2, 3, 4, 5])
    assert np.allclose(ours[0], brute_force(others, queries[0]), atol=1e-5)
    for row, query in zip(ours[1:], queries[1:], strict=True):
        assert np.allclose(row, brute_force(head, query), atol=1e-5)
