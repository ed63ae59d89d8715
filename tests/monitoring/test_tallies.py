"""The tallies (triage.monitoring.tallies) match a full count after every write path that
changes what they count, and `manage.py reconcile_counters` finds and repairs drift."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from reviews.claims import claim_next_task
from reviews.corrections import change_decision
from reviews.decisions import submit_review
from triage.api.ingest import ingest_items
from triage.api.intake import ItemIn
from triage.classify import service
from triage.cockpit.preview import Setting
from triage.cockpit.services import reroute_waiting_tasks, save_category_setting
from triage.models import AuditLog, Item, Prediction, ReviewTask, RoutingPolicy
from triage.monitoring.audits import FLOOR_PERIOD, audit_rates
from triage.monitoring.models import Tally
from triage.monitoring.reconcile import differences, full_counts
from triage.monitoring.tallies import TOTAL, hour_of, totals
from triage.privacy import retention
from triage.privacy.forget import forget_items

from ..factories import (
    make_champion,
    make_item,
    make_prediction,
    make_task,
    make_token,
    make_user,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.needs_postgres("the tallies are checked on the database production runs"),
]

BILLING = "refund the double charge on my card invoice payment"
OUTAGE = "server down outage error crash unavailable"


@pytest.fixture
def champion(categories):
    return make_champion(categories, audit_rate=0.5)


def ingest(*texts: str) -> list[Item]:
    stamp = timezone.now().timestamp()
    result = ingest_items(
        items=[ItemIn(external_id=f"t-{stamp}-{i}", text=t) for i, t in enumerate(texts)]
    )
    return result.created


def assert_tallies_match() -> None:
    found = differences()
    assert found == [], "\n".join(d.line() for d in found)


def scrape(client) -> dict[tuple[str, frozenset], float]:
    token = make_token(scopes=["metrics"])
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }


def test_tallies_match_full_counts_through_classify_review_correction_and_forget(champion, analyst):
    assert_tallies_match()  # the history, imported through the factories
    items = ingest(*[f"{BILLING} {i}" for i in range(4)], *[f"{OUTAGE} {i}" for i in range(3)])
    assert_tallies_match()  # received

    service.classify_items(item_ids=[i.pk for i in items])
    assert Prediction.objects.filter(item__in=items).count() == 7
    assert_tallies_match()  # predictions made, items routed or in review

    task = claim_next_task(user=analyst)
    review = submit_review(task_id=task.pk, user=analyst, category_slug="outage")
    assert_tallies_match()  # a review, the item resolved by a user

    change_decision(review_id=review.pk, user=analyst, category_slug="other")
    assert_tallies_match()  # the review and the item moved to another category

    waiting = make_task(make_item(status=Item.Status.IN_REVIEW)).item
    forget_items(external_ids=[items[0].external_id, waiting.external_id], actor="test")
    assert Item.objects.get(pk=waiting.pk).decided_by == "forgotten"
    assert_tallies_match()  # an item forgotten in review: resolved by "forgotten"


@override_settings(TRIAGE_SECOND_REVIEW_SHARE=1.0)
def test_tallies_match_when_a_second_review_disagrees(champion, categories, analyst):
    """A decision opens a second review, whose disagreement opens a senior task."""
    other = make_user("second-analyst")
    task = make_task(make_item(OUTAGE, status=Item.Status.IN_REVIEW))
    task.claimed_by, task.lease_expires_at = analyst, timezone.now() + timedelta(minutes=5)
    task.save()
    submit_review(task_id=task.pk, user=analyst, category_slug="outage")
    second = ReviewTask.objects.get(reason=ReviewTask.Reason.SECOND_REVIEW)
    assert_tallies_match()

    second.claimed_by, second.lease_expires_at = other, timezone.now() + timedelta(minutes=5)
    second.save()
    submit_review(task_id=second.pk, user=other, category_slug="billing")

    assert ReviewTask.objects.filter(reason=ReviewTask.Reason.DISAGREEMENT).exists()
    assert_tallies_match()


def test_tallies_match_after_a_reroute(champion, categories):
    billing = categories["billing"]
    for confidence in (0.95, 0.8, 0.61):
        item = make_item(f"waiting {confidence}", status=Item.Status.IN_REVIEW)
        make_prediction(
            item,
            billing,
            confidence=confidence,
            route=Prediction.Route.REVIEW,
            reason="below_threshold",
            model_version=champion,
        )
        make_task(item)
    save_category_setting(
        category=billing, setting=Setting(target=None, threshold=0.6), actor="test"
    )
    assert_tallies_match()

    outcome = reroute_waiting_tasks(category=billing, actor="test")

    assert outcome.routed == 3
    assert_tallies_match()  # three more predictions, three items from review to routed


def test_retention_deletes_keep_the_tallies_right_and_the_counter_monotonic(
    champion, categories, client
):
    billing = categories["billing"]
    old = timezone.now() - timedelta(days=200)
    for i in range(3):
        item = make_item(
            f"old {i}", status=Item.Status.ROUTED, final_category=billing, received_at=old
        )
        make_prediction(item, billing, created_at=old, model_version=champion)
    before = scrape(client)[
        ("triage_predictions_total", frozenset({"category": "billing", "route": "auto"}.items()))
    ]

    report = retention.prune(older_than=timedelta(days=180), actor="test")

    assert report.predictions == 3
    assert_tallies_match()  # n counts the predictions that remain
    (n, gone) = totals(Tally.Kind.PREDICTION)[("billing", "auto")]
    assert gone == 3
    after = scrape(client)[
        ("triage_predictions_total", frozenset({"category": "billing", "route": "auto"}.items()))
    ]
    assert after == before == n + gone  # predictions made, never taken back


def test_audit_rates_count_the_window_to_the_second(categories):
    """Whole hours from the tallies, the window's first part-hour from the table."""
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"audit_rate": 0.01, "audit_floor": 2})
    billing = categories["billing"]
    now = timezone.now()
    start = now - FLOOR_PERIOD
    inside = [start + timedelta(seconds=1), start + timedelta(hours=2), now]
    outside = [start - timedelta(seconds=1), start - timedelta(days=2)]
    for at in inside + outside:
        make_prediction(make_item(), billing, created_at=at)

    # Three auto-actions in the window, floor 2: a rate of 2/3.
    assert audit_rates(policy=RoutingPolicy.current(), now=now)["billing"] == pytest.approx(2 / 3)


def test_reconcile_reports_drift_per_key_and_repairs_it_with_an_audit_log_entry(categories):
    billing = categories["billing"]
    item = make_item()
    make_prediction(item, billing)
    # Drift: a prediction written around the services, and a tally someone edited.
    stray = Prediction.objects.create(
        item=item, label=billing, confidence=0.5, scores=[], route="review", reason="x"
    )
    Tally.objects.filter(kind="received", bucket=TOTAL).update(n=41)

    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("reconcile_counters", stdout=out)
    assert exited.value.code == 1
    text = out.getvalue()
    hour = f"{hour_of(stray.created_at):%Y-%m-%d %H:00} UTC"
    assert "3 key(s) differ" in text
    assert f"prediction {hour:<20} billing" in text and "review" in text
    assert "received   all time" in text and "tally         41  counted          1" in text
    assert "run again with --repair" in text
    assert AuditLog.objects.filter(action="reconcile_counters").count() == 1
    assert differences()  # a check alone repairs nothing

    out = io.StringIO()
    call_command("reconcile_counters", "--repair", stdout=out)

    assert "repaired: 3 tally row(s)" in out.getvalue()
    assert_tallies_match()
    entry = AuditLog.objects.filter(action="reconcile_counters").latest("id")
    assert entry.detail["repaired"] is True and entry.detail["differences"] == 3
    assert {k["kind"] for k in entry.detail["keys"]} == {"prediction", "received"}
    # Lowered from 41 to 1: the 40 go to `gone`, so n + gone (a counter) did not drop.
    n, gone = totals(Tally.Kind.RECEIVED)[("", "api")]
    assert (n, gone) == (1, 40)
    call_command("reconcile_counters", stdout=(out := io.StringIO()))
    assert "tallies match the full counts" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "nope"], "--kind 'nope': unknown; choose from prediction, review"),
        (["--show", "-1"], "--show -1: give 0 or more"),
    ],
)
def test_bad_arguments_are_a_clear_error_and_nothing_is_logged(categories, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("reconcile_counters", *args)
    assert not AuditLog.objects.filter(action="reconcile_counters").exists()


def test_the_backfill_counts_what_the_tables_hold(categories):
    """The migration starts the tallies from full_counts(); the same function reconciles."""
    item = make_item(status=Item.Status.ROUTED, final_category=categories["outage"])
    make_prediction(item, categories["outage"])
    counts = full_counts()
    assert counts[("item", TOTAL, "outage", "routed:none")] == 1
    assert counts[("prediction", TOTAL, "outage", "auto")] == 1
    assert sum(n for k, n in counts.items() if k.kind == "received" and k.bucket != TOTAL) == (
        Item.objects.count()
    )


@pytest.mark.needs_postgres("ingest by COPY is PostgreSQL's")
@pytest.mark.parametrize("copy_min", [0, 2], ids=["orm", "copy"])
def test_tallies_match_after_ingest_on_either_path(categories, settings, copy_min):
    """Big batches are stored by COPY, with ids but no objects in hand: their received
    counts and item states are tallied all the same."""
    settings.TRIAGE_INGEST_COPY_MIN = copy_min
    ingest("card declined", "server down", "refund please")
    ingest("card declined again")
    assert_tallies_match()
    assert totals(Tally.Kind.RECEIVED)[("", Item.Source.API)] == (4, 0)
