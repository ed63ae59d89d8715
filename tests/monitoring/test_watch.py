"""Audits in production: verdicts, corrections, suspension, resumption, live figures."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from reviews.claims import claim_next_task
from reviews.decisions import submit_review
from triage import training
from triage.actions.models import Event
from triage.classify import service
from triage.models import AuditLog, Item, ModelVersion, Prediction, ReviewTask, RoutingPolicy
from triage.monitoring.audits import audit_rate_for, audit_rates
from triage.monitoring.live import live_report
from triage.monitoring.models import AuditSample, CategoryWatch
from triage.monitoring.watch import WatchError, resume_category
from triage.training.models import TrainingExample

from ..factories import make_champion, make_item, make_prediction

pytestmark = pytest.mark.django_db

BILLING_TEXT = "refund the double charge on my card invoice payment"


@pytest.fixture
def champion(categories):
    # A target the fake model certifies, and every auto-action audited.
    return make_champion(categories)


def _classify(n=1):
    items = [make_item(f"{BILLING_TEXT} {i}") for i in range(n)]
    service.classify_items(item_ids=[i.pk for i in items])
    return [Item.objects.get(pk=i.pk) for i in items]


def _audit(user, answer):
    task = claim_next_task(user=user)
    assert task is not None and task.reason == ReviewTask.Reason.AUDIT_SAMPLE
    return submit_review(task_id=task.pk, user=user, category_slug=answer)


def test_an_audited_auto_action_records_its_sampling_probability(champion):
    (item,) = _classify()
    assert item.status == Item.Status.ROUTED and item.final_category.slug == "billing"
    sample = AuditSample.objects.get(item=item)
    assert (sample.category.slug, sample.probability, sample.correct) == ("billing", 1.0, None)
    assert sample.model_version == champion
    assert ReviewTask.objects.get(item=item).reason == ReviewTask.Reason.AUDIT_SAMPLE


def test_an_audit_that_disagrees_corrects_the_item_and_becomes_a_training_example(
    champion, analyst
):
    (item,) = _classify()
    _audit(analyst, "outage")
    item.refresh_from_db()
    assert item.final_category.slug == "outage"
    assert item.decided_by == "user:alice"
    sample = AuditSample.objects.get(item=item)
    assert (sample.correct, sample.audited_category.slug) == (False, "outage")
    (example,) = TrainingExample.objects.active().filter(item=item)
    assert (example.category.slug, example.source) == ("outage", "audit")
    (corrected,) = Event.objects.filter(type="item.corrected", item=item)
    assert corrected.payload["data"]["previous_category"] == "billing"


def test_an_audit_that_agrees_is_counted_right(champion, analyst):
    (item,) = _classify()
    _audit(analyst, "billing")
    assert AuditSample.objects.get(item=item).correct is True
    assert CategoryWatch.objects.get(category__slug="billing").outcomes == 1


def _suspend_billing(analyst):
    for _ in range(30):
        _classify()
        _audit(analyst, "outage")
        watch = CategoryWatch.objects.get(category__slug="billing")
        if watch.suspended_at is not None:
            return watch
    raise AssertionError("30 wrong audits in a row did not suspend the category")


def test_a_run_of_wrong_audits_suspends_the_category_and_everything_goes_to_review(
    champion, analyst, client
):
    watch = _suspend_billing(analyst)
    # Target 75%: the collapse arm is tuned to 12.5%; each wrong verdict adds log 3.5, and
    # it alarms at log(1 / (0.2 · α)) = log 10,000: the eighth wrong verdict. (The drift arm,
    # tuned to 50%, would need twelve.)
    assert watch.outcomes == 8
    assert "below the 75.0% target" in watch.suspension["reason"]
    log = AuditLog.objects.get(action="suspend")
    assert (log.actor, log.detail["category"], log.detail["wrong"]) == (
        "drift-watch",
        "billing",
        8,
    )

    (event,) = Event.objects.filter(type="policy.suspended")
    data = event.payload["data"]
    assert (data["category"], data["wrong"], data["audited"]) == ("billing", 8, 8)

    (item,) = _classify()
    prediction = Prediction.objects.get(item=item)
    assert (prediction.route, prediction.reason) == ("review", "suspended")
    assert item.status == Item.Status.IN_REVIEW and item.final_category is None
    assert ReviewTask.objects.get(item=item).reason == ReviewTask.Reason.SUSPENDED
    assert not AuditSample.objects.filter(item=item).exists()


def test_the_suspension_shows_in_the_policy_command_and_the_metrics(
    champion, analyst, client, auth_headers, capsys
):
    _suspend_billing(analyst)
    call_command("policy")
    out = capsys.readouterr().out
    (line,) = [row for row in out.splitlines() if row.startswith("billing ") and "SUSPENDED" in row]
    assert "0.0% [0.0%, 36.9%] n=8" in line
    body = client.get("/api/metrics", **auth_headers).json()["live"]
    assert body["suspended"] == ["billing"]
    billing = body["categories"]["billing"]
    assert billing["drift"]["state"] == "suspended"
    assert billing["since_change"]["audited"] == 8
    assert billing["since_change"]["interval"] == [0.0, 0.3694]
    assert billing["alarm"]["on"] and billing["alarm"]["below_target"]
    assert body["alarms"] == ["billing"]


def test_resuming_needs_a_reason_and_a_suspended_category(champion, analyst):
    with pytest.raises(CommandError, match="--resume: category 'billing' is not suspended"):
        call_command("policy", "--resume", "billing", "--reason", "looks fine")
    _suspend_billing(analyst)
    with pytest.raises(CommandError, match="--reason: give a reason"):
        call_command("policy", "--resume", "billing")
    with pytest.raises(CommandError, match="--reason: give a reason"):
        call_command("policy", "--resume", "billing", "--reason", "  ")
    with pytest.raises(CommandError, match="unknown category 'nope'"):
        call_command("policy", "--resume", "nope", "--reason", "x")
    with pytest.raises(CommandError, match="--reason goes with --resume"):
        call_command("policy", "--reason", "x")
    assert CategoryWatch.objects.get(category__slug="billing").suspended_at is not None


def test_an_admin_resumes_a_category_and_it_is_logged(champion, analyst):
    _suspend_billing(analyst)
    # Its audited interval is still wholly below the target: the admin must say so.
    with pytest.raises(CommandError, match="--below-target: 'billing' is still audited below"):
        call_command("policy", "--resume", "billing", "--reason", "desk relabelled")
    assert not AuditLog.objects.filter(action="resume").exists()
    call_command(
        "policy",
        "--resume",
        "billing",
        "--reason",
        "desk relabelled, model checked",
        "--below-target",
    )
    watch = CategoryWatch.objects.get(category__slug="billing")
    assert (watch.suspended_at, watch.statistic, watch.outcomes) == (None, 0.0, 0)
    log = AuditLog.objects.get(action="resume")
    assert log.detail["reason"] == "desk relabelled, model checked"
    assert log.detail["below_target"]["audited"] == 8
    # The closing segment's figures stay beside the new one's.
    assert (watch.previous["audited"], watch.previous["precision"]) == (8, 0.0)
    assert (log.detail["before"]["auto_actions"], log.detail["after"]) == (
        "suspended",
        {"auto_actions": "on", "suspended_at": None},
    )
    suspension = AuditLog.objects.get(action="suspend")
    assert suspension.detail["before"] == {"auto_actions": "on", "suspended_at": None}
    assert suspension.detail["after"]["auto_actions"] == "suspended"
    (item,) = _classify()
    assert item.status == Item.Status.ROUTED
    with pytest.raises(WatchError, match="not suspended"):
        resume_category(slug="billing", reason="again", actor="test")


def test_promoting_a_new_model_lifts_the_suspension(champion, analyst):
    _suspend_billing(analyst)
    candidate = ModelVersion.objects.get(pk=champion.pk)
    candidate.pk = None
    candidate.status = ModelVersion.Status.CANDIDATE
    candidate.promoted_at = None
    candidate.save()
    training.promote_version(version=candidate, actor="user:root")
    watch = CategoryWatch.objects.get(category__slug="billing")
    assert watch.suspended_at is None
    log = AuditLog.objects.get(action="resume", detail__category="billing")
    assert log.detail["reason"] == f"model v{candidate.pk} became champion"
    (item,) = _classify()
    assert item.status == Item.Status.ROUTED


@pytest.mark.parametrize(
    ("base", "floor", "volume", "rate"),
    [
        (0.05, 20, 0, 1.0),  # no history yet: audit everything until volume shows
        (0.05, 20, 20, 1.0),  # volume at the floor: every auto-action
        (0.05, 20, 100, 0.2),  # quiet category: raised to meet the floor
        (0.05, 20, 10_000, 0.05),  # busy category: the base rate already gives 500
        (0.05, 0, 0, 0.05),  # no floor
        (0.0, 0, 50, 0.0),  # audits off
    ],
)
def test_audit_rate_meets_the_weekly_floor_while_volume_allows(base, floor, volume, rate):
    assert audit_rate_for(base_rate=base, floor=floor, weekly_volume=volume) == rate


def test_audit_rates_count_each_category_over_the_last_week(categories):
    policy = RoutingPolicy.current()
    policy.audit_rate, policy.audit_floor = 0.05, 20
    now = timezone.now()
    for _ in range(100):
        make_prediction(make_item(), categories["billing"], created_at=now - timedelta(days=1))
    for _ in range(300):
        old = now - timedelta(days=8)
        make_prediction(make_item(), categories["outage"], created_at=old)
    rates = audit_rates(policy=policy, now=now)
    assert rates == {"billing": 0.2, "outage": 1.0, "other": 1.0}


def test_live_precision_weights_audits_by_their_probability(categories, client, auth_headers):
    """Billing audited at 10% (9 right of 10) stands for 100 actions, outage at 100%
    (1 right of 2) for 2: overall precision is (90 + 1) / 102, not 10 / 12."""
    now = timezone.now()
    for category, probability, verdicts in [
        (categories["billing"], 0.1, [True] * 9 + [False]),
        (categories["outage"], 1.0, [True, False]),
    ]:
        for correct in verdicts:
            item = make_item()
            prediction = make_prediction(item, category)
            AuditSample.objects.create(
                item=item,
                prediction=prediction,
                category=category,
                probability=probability,
                audited_at=now,
                correct=correct,
            )
    body = client.get("/api/metrics", **auth_headers).json()["live"]
    billing = body["categories"]["billing"]["since_change"]
    assert (billing["precision"], billing["audited"], billing["method"]) == (
        0.9,
        10,
        "clopper-pearson",
    )
    overall = body["overall"]["since_change"]
    assert overall["precision"] == pytest.approx(91 / 102, abs=1e-4)
    assert overall["method"].startswith("ipw")
    assert overall["interval"][0] < overall["precision"] < overall["interval"][1]


def test_live_metrics_need_a_token(client, categories, auth_headers):
    assert client.get("/api/metrics").status_code == 401
    body = client.get("/api/metrics", **auth_headers).json()
    assert set(body["live"]["categories"]) == {"billing", "outage", "other"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--audit-rate", "1.5"], "--audit-rate: 1.5 is outside \\[0, 1\\]"),
        (["--audit-rate", "-0.1"], "--audit-rate: -0.1 is outside \\[0, 1\\]"),
        (["--audit-rate", "lots"], "--audit-rate: 'lots' is not a number"),
        (["--audit-floor", "-1"], "--audit-floor: -1 is below 0"),
        (["--audit-floor", "2.5"], "--audit-floor: '2.5' is not an integer"),
    ],
)
def test_bad_audit_settings_are_refused_naming_the_option(categories, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("policy", *args)
    policy = RoutingPolicy.current()
    assert (policy.audit_rate, policy.audit_floor) == (0.05, 20)


def test_audit_settings_are_set_and_logged(categories):
    call_command("policy", "--audit-rate", "0.1", "--audit-floor", "30", "--blind-review", "on")
    policy = RoutingPolicy.current()
    assert (policy.audit_rate, policy.audit_floor, policy.blind_review) == (0.1, 30, True)
    assert AuditLog.objects.filter(action="audit_policy").count() == 1


def test_live_precision_since_the_last_change_leaves_out_older_audits(categories):
    now = timezone.now()
    old, new = now - timedelta(days=3), now - timedelta(hours=1)
    for sampled_at, correct in [(old, False), (old, False), (new, True)]:
        item = make_item()
        AuditSample.objects.create(
            item=item,
            prediction=make_prediction(item, categories["billing"]),
            category=categories["billing"],
            probability=0.5,
            sampled_at=sampled_at,
            audited_at=sampled_at,
            correct=correct,
        )
    # A threshold changed a day ago (the log is append-only: written with its time).
    AuditLog.objects.create(actor="test", action="policy", at=now - timedelta(days=1))
    report = live_report(now=now)
    (billing,) = [c for c in report.categories if c.slug == "billing"]
    assert (billing.since_change.precision.audited, billing.since_change.precision.precision) == (
        1,
        1.0,
    )
    assert billing.window.precision.audited == 3


@pytest.mark.parametrize(
    ("right", "wrong", "verified"),
    [
        # The bound holds at every look (it is read after each verdict), so it needs more
        # audits than a one-look bound: 30 of 30 gave 0.905 once, 0.81 at every look.
        (80, 0, True),  # 80 of 80: anytime bound 0.912 ≥ 0.9
        (30, 0, False),  # 30 of 30: anytime bound 0.81 < 0.9
        (29, 1, False),
        (20, 0, None),  # fewer than min_support audits: no verdict yet
    ],
)
def test_audits_verify_the_certified_promise_once_there_are_enough(
    categories, right, wrong, verified
):
    RoutingPolicy.objects.update_or_create(
        pk=1, defaults={"target_precision": 0.9, "min_support": 30}
    )
    now = timezone.now()
    for correct in [True] * right + [False] * wrong:
        item = make_item()
        AuditSample.objects.create(
            item=item,
            prediction=make_prediction(item, categories["billing"]),
            category=categories["billing"],
            probability=0.05,
            audited_at=now,
            correct=correct,
        )
    (billing,) = [c for c in live_report().categories if c.slug == "billing"]
    assert billing.check["verified"] is verified
    assert billing.check["audited"] == right + wrong
