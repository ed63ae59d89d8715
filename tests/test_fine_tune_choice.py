"""Fine-tuning as its own task: chosen by certified coverage on a selection half, certified
on evidence that half did not touch, served at the length it was trained at."""

import pytest

from tests.factories import make_labelled_history
from triage.models import ModelVersion, RoutingPolicy
from triage.training import finetune, tasks
from triage.training.finetune import in_selection_half
from triage.training.models import TrainingExample

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_fine_tune(monkeypatch):
    calls = []

    def fine_tune_encoder(model_dir, texts, labels, *, out_dir, max_length, progress=None):
        calls.append({"texts": list(texts), "max_length": max_length})
        out_dir.mkdir(parents=True)
        return out_dir

    monkeypatch.setattr("triage.ml.finetune.fine_tune_encoder", fine_tune_encoder)
    return calls


def _history(categories):
    make_labelled_history(categories, copies=16)
    policy = RoutingPolicy.current()
    policy.target_precision = 0.8
    policy.save()


def test_the_tuned_encoder_learns_the_train_split_at_the_served_length(categories, fake_fine_tune):
    _history(categories)
    finetune.retrain_fine_tuned(actor="test")
    train = TrainingExample.objects.filter(split=TrainingExample.Split.TRAIN).count()
    assert len(fake_fine_tune) == 1
    assert len(fake_fine_tune[0]["texts"]) == train
    assert fake_fine_tune[0]["max_length"] == finetune.FINE_TUNE_MAX_LENGTH


def test_on_a_tie_the_head_alone_is_kept_and_its_evidence_skips_the_selection_half(
    categories, fake_fine_tune, monkeypatch
):
    _history(categories)
    monkeypatch.setattr(finetune, "_certified_share", lambda labels, probs, rows: 0.3)
    result = finetune.retrain_fine_tuned(actor="test")
    version = result.version
    assert version.metrics["fine_tune"]["kept"] == "head-only"
    assert "kept head-only" in version.gate_decision
    selection = {ex.pk for ex in TrainingExample.objects.all() if in_selection_half(ex)}
    assert selection
    from triage.routing.evidence import load_evidence

    evidence = load_evidence(version)
    assert evidence is not None
    assert not selection & set(evidence.example_ids)


def test_the_tuned_encoder_is_kept_only_when_it_certifies_more(
    categories, fake_fine_tune, monkeypatch
):
    _history(categories)
    shares = iter([0.10, 0.25])  # head alone, then tuned
    monkeypatch.setattr(finetune, "_certified_share", lambda labels, probs, rows: next(shares))
    version = finetune.retrain_fine_tuned(actor="test").version
    assert version.metrics["fine_tune"]["kept"] == "fine-tuned"
    # Served at the length it was trained at, and certified only on unseen holdout rows.
    assert version.encoder_spec["max_length"] == finetune.FINE_TUNE_MAX_LENGTH
    assert version.training_snapshot["trained_on"] == "train_split"
    from triage.routing.evidence import load_evidence

    evidence = load_evidence(version)
    rows = TrainingExample.objects.in_bulk(list(evidence.example_ids))
    assert rows and all(ex.split == TrainingExample.Split.HOLDOUT for ex in rows.values())
    assert not any(in_selection_half(ex) for ex in rows.values())


def test_the_task_reports_too_few_examples_instead_of_crashing(categories, fake_fine_tune):
    assert tasks.fine_tune(actor="test").startswith("skipped: too few examples")
    assert not ModelVersion.objects.exists()


def test_retrain_fine_tune_hands_the_work_to_its_task(categories, fake_fine_tune):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("retrain", "--fine-tune", stdout=out)
    # Eager in the tests (as in embedded mode): the task ran and its answer is printed.
    assert out.getvalue().startswith("fine-tuning: skipped: too few examples")


@pytest.fixture
def file_locks(monkeypatch, tmp_path, settings):
    """The embedded default's locks (flock), which a second holder in this process also
    meets; PostgreSQL's advisory locks are re-entrant within one session."""
    from types import SimpleNamespace

    from triage.training import exclusive

    settings.TRIAGE_ARTIFACT_DIR = str(tmp_path)
    monkeypatch.setattr(exclusive, "connection", SimpleNamespace(vendor="sqlite"))
    return exclusive


def test_a_second_fine_tune_is_skipped_and_logged(categories, fake_fine_tune, file_locks, caplog):
    _history(categories)
    with file_locks.retrain_lock(file_locks.FINE_TUNE) as held:
        assert held
        assert tasks.fine_tune(actor="test") == file_locks.SKIPPED_FINE_TUNING
    assert "another fine-tune is running" in caplog.text
    assert fake_fine_tune == []


def test_the_fine_tune_leaves_retrains_free_and_takes_their_lock_only_to_gate(
    categories, fake_fine_tune, file_locks, monkeypatch
):
    """Minutes of fitting never hold the retrain lock (a nightly or count retrain runs
    meanwhile); the gate does, so the champion cannot change under the comparison."""
    _history(categories)
    seen: dict[str, bool] = {}
    import triage.ml.finetune

    real_tune = triage.ml.finetune.fine_tune_encoder  # the fixture's fake

    def tune(*args, **kwargs):
        with file_locks.retrain_lock() as free:
            seen["retrain could run while fitting"] = free
        return real_tune(*args, **kwargs)

    real_gate = finetune.gate_and_record

    def gate(*args, **kwargs):
        with file_locks.retrain_lock() as free:
            seen["retrain could run while gating"] = free
        return real_gate(*args, **kwargs)

    monkeypatch.setattr("triage.ml.finetune.fine_tune_encoder", tune)
    monkeypatch.setattr(finetune, "gate_and_record", gate)
    tasks.fine_tune(actor="test")
    assert seen == {
        "retrain could run while fitting": True,
        "retrain could run while gating": False,
    }
