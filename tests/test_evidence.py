"""A version's evidence: an .npz artifact checked by sha256, loaded only by who needs it."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from triage import training
from triage.classify import service
from triage.ml.arrays import read_arrays, save_arrays
from triage.ml.heads import ArtifactError
from triage.models import ModelVersion, Prediction, RoutingPolicy
from triage.routing import cache
from triage.routing.derive import derived, reports_for, routing_policy, rule_reports
from triage.routing.evidence import (
    HoldoutPredictions,
    evidence_path_for,
    load_evidence,
    store_evidence,
    write_evidence,
)

from .factories import make_item, make_labelled_history

pytestmark = pytest.mark.django_db


@pytest.fixture
def champion(categories):
    make_labelled_history(categories)
    RoutingPolicy.objects.update_or_create(
        pk=1, defaults={"target_precision": 0.7, "min_support": 5, "audit_rate": 0}
    )
    return training.retrain().version


def sample_evidence(n: int = 50) -> HoldoutPredictions:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=n)
    truth = [["a", "b", "c", "gone"][k] for k in rng.integers(0, 4, n)]
    return HoldoutPredictions.from_scores(["a", "b", "c"], probs, truth, list(range(1, n + 1)))


def assert_same(a: HoldoutPredictions | None, b: HoldoutPredictions | None) -> None:
    assert a is not None and b is not None
    assert a.labels == b.labels and a.example_ids == b.example_ids
    for field in ("predicted", "confidence", "truth"):
        left, right = getattr(a, field), getattr(b, field)
        assert left.dtype == right.dtype and np.array_equal(left, right), field


def test_evidence_round_trips_through_its_artifact_as_the_json_held_it(tmp_path):
    evidence = sample_evidence()
    path, sha = write_evidence(evidence, tmp_path / "head-1.evidence.npz")
    version = ModelVersion(evidence_path=path, evidence_sha256=sha)
    # The same numbers as the JSON copy (confidences rounded to 6 digits), to the bit.
    assert_same(load_evidence(version), HoldoutPredictions.from_json(evidence.as_json()))


def test_a_tampered_or_missing_evidence_file_is_refused(tmp_path):
    path, sha = write_evidence(sample_evidence(), tmp_path / "head-1.evidence.npz")
    version = ModelVersion(evidence_path=path, evidence_sha256=sha)
    other = sample_evidence(60)
    # A well-formed file, but not the one recorded: its sha256 differs.
    save_arrays(other.as_arrays(), Path(path))
    with pytest.raises(ArtifactError, match="sha256"):
        load_evidence(version)
    Path(path).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_evidence(version)


def test_an_npz_with_pickled_objects_is_refused_even_with_the_right_sha256(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, labels=np.array([object()], dtype=object))
    from triage.ml.arrays import _sha256

    with pytest.raises(ArtifactError, match="not a valid .npz"):
        read_arrays(str(path), _sha256(path.read_bytes()))


def test_retrain_writes_the_evidence_beside_the_head_and_no_json(champion):
    assert champion.evidence_path == str(evidence_path_for(Path(champion.artifact_path)))
    assert Path(champion.evidence_path).parent == Path(champion.artifact_path).parent
    assert champion.evidence_path.endswith(".evidence.npz") and len(champion.evidence_sha256) == 64
    assert champion.holdout == {}
    evidence = load_evidence(champion)
    assert evidence is not None and len(evidence) == champion.metrics["n"]


def test_the_champion_is_loaded_without_its_evidence(champion, django_assert_num_queries):
    with django_assert_num_queries(1):
        served = ModelVersion.objects.champion()
    assert served is not None
    assert {"holdout", "thresholds"} <= served.get_deferred_fields()
    # What serving reads is there without another query.
    with django_assert_num_queries(0):
        _ = (served.encoder, served.encoder_spec, served.labels, served.artifact_sha256)


def test_a_version_with_json_evidence_routes_exactly_as_with_its_artifact(champion):
    """Versions recorded before artifacts keep their JSON; the loader falls back to it."""
    evidence = load_evidence(champion)
    with_artifact = {r.slug: r.rule for r in rule_reports(champion)}
    ModelVersion.objects.filter(pk=champion.pk).update(
        holdout=evidence.as_json(), evidence_path="", evidence_sha256=""
    )
    legacy = ModelVersion.objects.champion()
    assert legacy.evidence_path == ""
    assert_same(load_evidence(legacy), evidence)
    assert {r.slug: r.rule for r in rule_reports(legacy)} == with_artifact
    assert reports_for(load_evidence(legacy)) == rule_reports(champion)


def test_evidence_that_cannot_be_loaded_certifies_nothing_until_the_file_is_back(champion):
    path = Path(champion.evidence_path)
    good = path.read_bytes()
    certified = routing_policy(champion).rule_for("billing")
    assert certified.threshold is not None
    path.write_bytes(good[:-10])  # damaged
    # A process that loaded it keeps the copy it verified; the next load checks the file.
    assert routing_policy(champion).rule_for("billing") == certified
    cache.clear()
    rule = routing_policy(champion).rule_for("billing")
    assert rule.threshold is None and "cannot be loaded" in rule.note
    item = make_item("refund the double charge on my card invoice payment")
    service.classify_items(item_ids=[item.pk])
    assert Prediction.objects.get(item=item).route == "review"
    path.write_bytes(good)
    assert routing_policy(champion).rule_for("billing") == certified


def test_a_version_whose_evidence_changed_cannot_be_promoted(champion):
    second = training.retrain().version
    Path(second.evidence_path).write_bytes(b"not the evidence")
    with pytest.raises(ArtifactError):
        training.promote_version(version=second, actor="test")
    assert ModelVersion.objects.champion() == champion


def test_storing_new_evidence_changes_the_sha256_and_the_derivation(champion, tmp_path):
    before = derived(champion)
    evidence = load_evidence(champion)
    # Half of it wrong: at the 70% target nothing can be certified.
    odd = np.arange(len(evidence)) % 2 == 1
    half_wrong = dataclasses.replace(
        evidence, truth=np.where(odd, (evidence.predicted + 1) % 3, evidence.predicted)
    )
    store_evidence(champion, half_wrong, path=tmp_path / "wrong.evidence.npz")
    assert champion.holdout == {} and champion.evidence_path.endswith("wrong.evidence.npz")
    after = derived(champion)
    assert after is not before
    assert all(r.rule.threshold is not None for r in before.reports)
    assert all(r.rule.threshold is None for r in after.reports)
