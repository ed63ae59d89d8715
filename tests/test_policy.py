"""Target precision → thresholds, as routing and the policy command see them."""

import pickle
import re

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from triage import training
from triage.classify import service
from triage.ml.heads import ArtifactError, load_head
from triage.models import Item, ModelVersion, Prediction, RoutingPolicy
from triage.monitoring.models import Alert
from triage.routing.derive import category_rule, rule_reports
from triage.routing.evidence import HoldoutPredictions, load_evidence

from .factories import make_item, make_labelled_history

pytestmark = pytest.mark.django_db


@pytest.fixture
def champion(categories):
    make_labelled_history(categories)
    return training.retrain().version


def set_policy(**fields):
    RoutingPolicy.objects.update_or_create(pk=1, defaults=fields)


def test_a_version_stores_its_held_out_predictions_and_derived_thresholds(champion):
    holdout = load_evidence(champion)
    assert holdout is not None
    assert len(holdout.confidence) == champion.metrics["n"]
    assert set(champion.thresholds) == {"billing", "outage", "other"}


def test_target_precision_routes_with_the_derived_threshold_and_records_its_bound(champion):
    set_policy(target_precision=0.7, min_support=5, audit_rate=0)
    rules = {r.slug: r.rule for r in rule_reports(champion)}
    assert all(rule.mode == "target_precision" for rule in rules.values())
    assert all(rule.threshold is not None and rule.lower_bound >= 0.7 for rule in rules.values())

    # Written by hand, not worked out from the threshold: a plain billing request
    # auto-acts at a 70% target; a text that mixes billing and outage words (the model
    # is about 80% sure) is below what the held-out evidence certifies.
    expected = {
        "refund the double charge on my card invoice payment": ("billing", "auto"),
        "billing outage": ("outage", "review"),
    }
    for text, (label, route) in expected.items():
        item = make_item(text)
        service.classify_items(item_ids=[item.pk])
        prediction = Prediction.objects.get(item=item)
        rule = rules[label]
        assert (prediction.label.slug, prediction.route) == (label, route), text
        assert (prediction.mode, prediction.threshold) == ("target_precision", rule.threshold)
        assert prediction.lower_bound == rule.lower_bound

    # The control: under a plain global threshold of 0.5 the same mixed text auto-acts,
    # so it was the derived threshold that sent it to a person.
    set_policy(target_precision=None, default_threshold=0.5)
    item = make_item("billing outage")
    service.classify_items(item_ids=[item.pk])
    prediction = Prediction.objects.get(item=item)
    assert (prediction.route, prediction.mode, prediction.threshold) == ("auto", "threshold", 0.5)


def test_a_category_with_too_few_held_out_examples_never_auto_acts(champion):
    set_policy(target_precision=0.8, min_support=10_000, audit_rate=0)
    item = make_item("refund the double charge on my card invoice payment")
    service.classify_items(item_ids=[item.pk])
    prediction = Prediction.objects.get(item=item)
    assert (prediction.route, prediction.reason) == ("review", "target_unreachable")
    (report,) = [r for r in rule_reports(champion) if r.slug == "billing"]
    assert "needs about 10000 correct predictions above the threshold" in report.rule.note
    assert report.needed == 10_000


def test_an_uncertifiable_target_says_what_evidence_would_certify_it():
    # 50 predictions, 45 right: far too few to show 99%.
    holdout = HoldoutPredictions(
        labels=("a", "b"),
        predicted=np.zeros(50, dtype=int),
        confidence=np.linspace(0.5, 1.0, 50),
        truth=np.array([0] * 45 + [1] * 5),
    )
    report = category_rule("a", target=0.99, threshold=0.9, holdout=holdout, min_support=10)
    assert report.rule.threshold is None
    assert report.needed == 299  # the zero-error count at 99%
    assert "needs about 299 correct predictions above the threshold" in report.rule.note
    assert "has 45 of 50" in report.rule.note


def test_a_category_target_wins_over_the_global_threshold(champion, categories):
    set_policy(target_precision=None, default_threshold=0.5, min_support=5)
    categories["outage"].target_precision = 0.9
    categories["outage"].save()
    modes = {r.slug: r.rule.mode for r in rule_reports(champion)}
    assert modes == {"billing": "threshold", "other": "threshold", "outage": "target_precision"}


def test_policy_command_sets_and_shows_targets(champion, capsys):
    call_command("policy", "--target-precision", "0.95")
    assert RoutingPolicy.current().target_precision == 0.95
    capsys.readouterr()
    call_command("policy", "--threshold", "0.7", "--category", "billing")
    out = capsys.readouterr().out
    assert "target precision 95.0%" in out
    lines = {line.split()[0]: line for line in out.split("\n\n")[0].splitlines()[3:]}
    assert "threshold" in lines["billing"] and "0.700" in lines["billing"]
    assert "target_precision" in lines["outage"]
    call_command("policy", "--clear", "--category", "billing")
    rules = capsys.readouterr().out.split("\n\n")[0]  # the live figures follow a blank line
    lines = {line.split()[0]: line for line in rules.splitlines()[3:]}
    assert "target_precision" in lines["billing"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-precision", "1.5"], "--target-precision: 1.5 is outside (0, 1]"),
        (["--target-precision", "0"], "--target-precision: 0 is outside (0, 1]"),
        (["--target-precision", "0.9", "--delta", "0.5"], "--delta: 0.5 is outside (0, 0.5)"),
        (["--delta", "0"], "--delta: 0 is outside (0, 0.5)"),
        (["--delta", "often"], "--delta: 'often' is not a number"),
        (["--delta", "0.1", "--category", "billing"], "--delta and --certification are global"),
        (["--threshold", "high"], "--threshold: 'high' is not a number"),
        (["--threshold", "1.5"], "--threshold: 1.5 is outside [0, 1]"),
        (["--threshold", "0.5", "--category", "nope"], "unknown category 'nope'"),
        (["--category", "billing"], "--category needs"),
        (["--clear"], "--clear needs --category"),
    ],
)
def test_policy_command_rejects_bad_arguments(categories, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("policy", *args)
    # Nothing half-written: a bad delta does not leave the target behind.
    assert RoutingPolicy.current().target_precision is None
    assert RoutingPolicy.current().delta == 0.05


def test_evaluate_prints_scores_calibration_and_risk_coverage(champion, capsys):
    call_command("evaluate")
    out = capsys.readouterr().out
    for expected in ["macro-F1", "ECE", "Reliability", "Risk–coverage", "95%", "billing"]:
        assert expected in out
    with pytest.raises(CommandError, match="no model version 999"):
        call_command("evaluate", "--version", "999")


def test_evaluate_without_a_model_is_a_clear_error(categories):
    with pytest.raises(CommandError, match="no champion yet"):
        call_command("evaluate")


def test_a_pickle_is_never_loaded_as_a_model(tmp_path):
    path = tmp_path / "head.safetensors"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    from triage.ml.artifacts import file_sha256

    with pytest.raises(ArtifactError, match="not a valid safetensors"):
        load_head(str(path), file_sha256(path))


def test_artifact_metadata_records_encoder_labels_calibration_snapshot_and_metrics(champion):
    import json

    from safetensors import safe_open

    with safe_open(champion.artifact_path, framework="numpy") as fh:
        meta = json.loads(fh.metadata()["triage"])
    assert meta["encoder"] == champion.encoder
    assert meta["label_map"] == champion.labels
    assert meta["calibration"]["temperature"] == pytest.approx(champion.temperature)
    assert meta["snapshot"]["evidence"] == champion.metrics["n"]
    assert meta["snapshot"]["trained_on"] == "all"
    assert meta["metrics"]["macro_f1"] == champion.metrics["macro_f1"]


def test_a_version_whose_encoder_changed_is_not_served(champion):
    ModelVersion.objects.filter(pk=champion.pk).update(encoder="something-else:123")
    item = make_item("refund")
    service.classify_items(item_ids=[item.pk])
    # Never routed by a model that changed: a person decides, and admins are told why.
    item.refresh_from_db()
    assert item.status == Item.Status.IN_REVIEW
    assert item.review_tasks.get().reason == "model_unavailable"
    assert "encoder" in Alert.objects.get(kind="model_unavailable", resolved_at=None).message


def test_admins_see_why_a_category_does_or_does_not_auto_act(client, champion):
    from triage.access import ADMINS

    from .factories import make_user

    set_policy(target_precision=0.99, min_support=5, certification="per_category")
    client.force_login(make_user("root", group=ADMINS))
    body = client.get("/admin/triage/category/").content.decode()
    assert "never auto-acts: needs about" in body


def test_a_saved_head_loads_back_identical(tmp_path):
    from triage.ml.artifacts import file_sha256
    from triage.ml.heads import LinearHead, save_head

    rng = np.random.default_rng(0)
    # sklearn hands back Fortran-ordered coefficients; they must survive the round trip.
    weights = np.asfortranarray(rng.normal(size=(3, 16)).astype(np.float32))
    head = LinearHead(("a", "b", "c"), weights, np.zeros(3, dtype=np.float32), 1.7)
    path = tmp_path / "head.safetensors"
    sha = save_head(head, path, metadata={})
    assert sha == file_sha256(path)
    loaded = load_head(str(path), sha)
    assert np.array_equal(loaded.weights, head.weights)
    assert (loaded.labels, loaded.temperature) == (head.labels, 1.7)


def test_evaluate_uses_new_examples_once_there_are_some(champion, categories, capsys):
    from reviews.decisions import record_training_example
    from triage.models import Item

    from .factories import KEYWORD_TEXTS

    call_command("evaluate")
    assert "on its out-of-fold evidence (240 examples)" in capsys.readouterr().out
    for slug, texts in KEYWORD_TEXTS.items():
        for text in texts:
            item = make_item(f"{text} later", status=Item.Status.RESOLVED)
            record_training_example(item=item, category=categories[slug], source="review")
    call_command("evaluate")
    assert "on 15 labelled examples it did not train on" in capsys.readouterr().out
