"""The promotion gate: paired, on the same examples and labels, and respectful of automation."""

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest

from benchmarks._unchunked_bootstrap import unchunked_gaps
from reviews.decisions import record_training_example
from triage import training
from triage.models import AuditLog, Item, ModelVersion, RoutingPolicy
from triage.training.gate import (
    CHUNK_BYTES,
    GateInputs,
    PairedComparison,
    bootstrap_gaps,
    decide,
    paired_bootstrap,
)
from triage.training.snapshot import snapshot_examples

from .factories import KEYWORD_TEXTS, make_item, make_labelled_history


def comparison(low: float, high: float, n: int = 200) -> PairedComparison:
    return PairedComparison(
        n=n, candidate_f1=0.8 + (low + high) / 2, champion_f1=0.8, low=low, high=high
    )


@pytest.mark.parametrize(
    ("compared", "more_data", "automation", "promote", "hold", "says"),
    [
        (comparison(0.01, 0.05), False, (0.30, 0.30), True, False, "better"),
        (comparison(-0.05, -0.01), True, (0.30, 0.30), False, False, "candidate is worse"),
        (comparison(-0.02, 0.03), False, (0.30, 0.30), False, False, "within noise"),
        (comparison(-0.02, 0.03), True, (0.30, 0.30), True, False, "within noise but"),
        (comparison(0.01, 0.05), False, (0.20, 0.30), False, True, "held for an admin"),
        (comparison(0.01, 0.05), False, (0.26, 0.30), True, False, "better"),
        (comparison(-0.02, 0.03), True, (0.10, 0.30), False, True, "drop of more than 5%"),
        (None, False, (0.30, 0.30), False, False, "only 0 examples neither model trained on"),
        (None, True, (0.30, 0.30), True, False, "more data, promoted"),
        (comparison(0.01, 0.05, n=12), False, (0.3, 0.3), False, False, "need 30 to compare"),
        (comparison(0.01, 0.05), False, (None, 0.30), True, False, "better"),
    ],
)
def test_the_gate_rule(compared, more_data, automation, promote, hold, says):
    decision = decide(
        GateInputs(
            comparison=compared,
            candidate_examples=1000 if more_data else 1100,
            champion_examples=700 if more_data else 1000,
            candidate_automation=automation[0],
            champion_automation=automation[1],
        )
    )
    assert (decision.promote, decision.hold_for_admin) == (promote, hold)
    assert says in decision.message


def test_paired_bootstrap_sees_no_gap_between_identical_models():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 300)
    predicted = np.where(rng.random(300) < 0.8, truth, (truth + 1) % 3)
    c = paired_bootstrap(truth, candidate=predicted, champion=predicted, n_classes=3)
    assert (c.low, c.high, c.difference) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_separates_a_clearly_better_model():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 400)
    good = np.where(rng.random(400) < 0.9, truth, (truth + 1) % 3)
    bad = np.where(rng.random(400) < 0.6, truth, (truth + 1) % 3)
    c = paired_bootstrap(truth, candidate=good, champion=bad, n_classes=3)
    assert 0 < c.low < c.difference < c.high
    assert paired_bootstrap(truth, candidate=bad, champion=good, n_classes=3).high < 0


@pytest.mark.parametrize(
    ("n", "classes", "rows_per_chunk"),
    [(50, 3, 7), (400, 10, 33), (1000, 40, 1), (3001, 12, 128), (777, 9, 2000), (300, 3, 5000)],
)
def test_the_chunked_bootstrap_gives_the_same_gaps_to_the_bit(n, classes, rows_per_chunk):
    rng = np.random.default_rng(n)
    truth = rng.integers(-1, classes, n)  # -1: a category the models cannot predict
    candidate = rng.integers(-1, classes, n)
    champion = np.where(rng.random(n) < 0.7, truth, rng.integers(0, classes, n))
    reference = unchunked_gaps(truth, candidate, champion, classes)
    chunked = bootstrap_gaps(
        truth, candidate, champion, classes, chunk_bytes=8 * n * rows_per_chunk
    )
    assert np.array_equal(chunked, reference)
    # So the verdict's figures are the same too, with the default chunk size.
    default = paired_bootstrap(truth, candidate=candidate, champion=champion, n_classes=classes)
    assert (default.low, default.high) == (
        float(np.quantile(reference, 0.05)),
        float(np.quantile(reference, 0.95)),
    )


def test_the_bootstrap_memory_stays_bounded_by_the_chunk_size():
    n = 20_000  # all 2,000 resamples at once: 320 MB per array, three of them
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 3, n)
    candidate = np.where(rng.random(n) < 0.8, truth, (truth + 1) % 3)
    tracemalloc.start()
    try:
        paired_bootstrap(truth, candidate=candidate, champion=truth, n_classes=3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * CHUNK_BYTES + 64 * n * 8, peak / 2**20


def add_examples(categories, slugs, copies, start=100):
    for k in range(start, start + copies):
        for slug in slugs:
            for text in KEYWORD_TEXTS[slug]:
                item = make_item(f"{text} case {k}", status=Item.Status.RESOLVED)
                record_training_example(item=item, category=categories[slug], source="review")


@pytest.mark.django_db
def test_an_inactive_category_does_not_decide_promotion(categories):
    make_labelled_history(categories, copies=8)
    champion = training.retrain().version
    add_examples(categories, list(KEYWORD_TEXTS), copies=4)
    categories["other"].is_active = False
    categories["other"].save()
    examples = snapshot_examples()
    candidate = training.train_head_candidate(champion.encoder_spec, examples=examples)
    assert "other" not in candidate.labels
    compared, shares = training.compare_with_champion(
        candidate, examples=examples, champion=champion
    )
    assert compared is not None and shares is not None and shares.n == compared.n
    # Only the new billing and outage examples; "other" is left out for both models, and
    # the champion may not answer "other" either, so neither is scored 0 on it.
    assert compared.n == 4 * (len(KEYWORD_TEXTS["billing"]) + len(KEYWORD_TEXTS["outage"]))
    assert compared.champion_f1 == pytest.approx(compared.candidate_f1, abs=0.05)
    result = training.retrain()
    assert "candidate is worse" not in result.message


@pytest.mark.django_db
def test_a_candidate_within_noise_does_not_replace_the_champion(categories):
    make_labelled_history(categories, copies=16)
    champion = training.retrain().version
    # 30 new examples, clearly classified by both: a tie, and not much more data.
    add_examples(categories, list(KEYWORD_TEXTS), copies=2)
    result = training.retrain()
    assert not result.promoted
    assert "kept champion: difference within noise" in result.message
    assert result.version.metrics["gate"]["n"] == 30
    assert ModelVersion.objects.champion() == champion


@pytest.mark.django_db
def test_a_large_automation_drop_blocks_automatic_promotion(categories, monkeypatch):
    import importlib

    from triage.routing import derive

    retrain_module = importlib.import_module("triage.training.retrain")

    RoutingPolicy.objects.update_or_create(
        pk=1, defaults={"target_precision": 0.9, "min_support": 5, "certification": "pooled"}
    )
    make_labelled_history(categories, copies=8)
    champion = training.retrain().version
    # Clean new examples the champion never saw: its certified rules act on them.
    for slug, texts in KEYWORD_TEXTS.items():
        for k, text in enumerate(texts * 4):
            item = make_item(f"{text} fresh {k}", status=Item.Status.RESOLVED)
            record_training_example(item=item, category=categories[slug], source="review")

    # A candidate better on quality whose own evidence certifies nothing: on the same
    # items neither model trained on, its rules act on none of them.
    def certifies_nothing(holdout, **kw):
        return [
            replace(r, rule=replace(r.rule, threshold=None))
            for r in derive.reports_for(holdout, **kw)
        ]

    monkeypatch.setattr(retrain_module, "reports_for", certifies_nothing)
    result = training.retrain()
    assert not result.promoted and result.held, result.message
    assert "held for an admin" in result.message
    assert "An admin can promote it by hand" in result.message
    version = result.version
    assert version.status == ModelVersion.Status.CANDIDATE
    assert ModelVersion.objects.champion() == champion
    assert AuditLog.objects.filter(action="hold", detail__version=version.pk).exists()
    # The admin can still promote it by hand.
    training.promote_version(version=version, actor="user:root")
    assert ModelVersion.objects.champion() == version
