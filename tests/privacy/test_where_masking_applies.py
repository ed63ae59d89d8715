"""Masking where it applies: the review card, training examples, the admins' patterns."""

import io

import pytest
from django.core.management import CommandError, call_command

from reviews.decisions import record_training_example
from tests.factories import make_item, make_task, make_user
from triage.access import ADMINS
from triage.api import ingest
from triage.api.intake import ItemIn
from triage.models import AuditLog, Item
from triage.privacy.masking import UNMASKABLE, Masker, mask_text
from triage.privacy.models import MaskPattern
from triage.training.models import TrainingExample

pytestmark = pytest.mark.django_db

TEXT = "Refund please, mail ana.lima@example.org or call +41 44 668 18 00, case CASE-884412"


def card_for(client, analyst, text=TEXT):
    make_task(make_item(text, status=Item.Status.IN_REVIEW))
    client.force_login(analyst)
    response = client.post("/reviews/claim", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def test_the_review_card_shows_personal_data_as_its_kind(client, analyst, categories):
    page = card_for(client, analyst)
    assert "ana.lima@example.org" not in page
    assert "668 18 00" not in page
    assert "mail [email] or call [phone]" in page


def test_the_review_card_shows_the_original_when_masking_is_off(
    client, analyst, categories, settings
):
    settings.TRIAGE_MASK_FOR_ANALYSTS = False
    page = card_for(client, analyst)
    assert "mail ana.lima@example.org or call +41 44 668 18 00" in page


def test_the_masked_card_still_escapes_the_text(client, analyst, categories):
    page = card_for(client, analyst, "<script>alert(1)</script> bob@example.org")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; [email]" in page


def test_a_text_masking_fails_on_is_hidden_and_the_error_logged(
    client, analyst, categories, monkeypatch, caplog
):
    def broken(self, text):
        raise RuntimeError("detector bug")

    monkeypatch.setattr(Masker, "mask", broken)
    page = card_for(client, analyst)
    assert "ana.lima" not in page
    assert UNMASKABLE in page
    assert "detector bug" in caplog.text


def test_admin_patterns_reach_the_card_and_inactive_ones_do_not(client, analyst, categories):
    MaskPattern.objects.create(name="cases", pattern=r"\bcase-\d{6}\b", label="case_number")
    MaskPattern.objects.create(name="off", pattern=r"refund", label="word", is_active=False)
    page = card_for(client, analyst)
    assert "case [case_number]" in page
    assert "CASE-884412" not in page
    assert "Refund please" in page


def test_training_examples_keep_the_original_text_by_default(categories):
    item = make_item(TEXT, status=Item.Status.RESOLVED)
    example = record_training_example(item=item, category=categories["billing"], source="review")
    assert example.text == TEXT


def test_training_examples_are_masked_when_enabled_and_the_item_keeps_its_text(
    categories, settings
):
    settings.TRIAGE_MASK_TRAINING = True
    item = make_item(TEXT, status=Item.Status.RESOLVED)
    example = record_training_example(item=item, category=categories["billing"], source="review")
    assert example.text == mask_text(TEXT)
    assert "[email]" in example.text and "ana.lima" not in example.text
    item.refresh_from_db()
    assert item.text == TEXT


def test_imported_history_is_masked_when_enabled(categories, settings):
    settings.TRIAGE_MASK_TRAINING = True
    ingest.import_history(
        items=[ItemIn(external_id="h-1", text=TEXT, label="billing")],
        categories={"billing": categories["billing"]},
    )
    example = TrainingExample.objects.get(item__external_id="h-1")
    assert "[email]" in example.text and "ana.lima" not in example.text


def admin_client(client):
    client.force_login(make_user("root", group=ADMINS))
    return client


def test_an_admin_adds_a_pattern_and_the_change_is_audited(client, categories):
    response = admin_client(client).post(
        "/admin/triage/maskpattern/add/",
        {"name": "cases", "pattern": r"\bcase-\d{6}\b", "label": "case_number", "is_active": "on"},
    )
    assert response.status_code == 302, response.content.decode()
    pattern = MaskPattern.objects.get()
    entry = AuditLog.objects.get(action="mask_pattern")
    assert entry.actor == "user:root"
    assert entry.detail["before"] is None
    assert entry.detail["after"]["pattern"] == r"\bcase-\d{6}\b"

    response = client.post(
        f"/admin/triage/maskpattern/{pattern.pk}/change/",
        {"name": "cases", "pattern": r"\bcase-\d{8}\b", "label": "case_number", "is_active": "on"},
    )
    assert response.status_code == 302
    change = AuditLog.objects.filter(action="mask_pattern").order_by("-id").first()
    assert change is not None and change.detail["changed"] == ["pattern"]
    assert change.detail["before"]["pattern"] == r"\bcase-\d{6}\b"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"(a+", "does not compile on RE2"),
        (r"(\w+)\1", "does not compile on RE2"),  # a backreference: not linear time
        (r"(?=secret)\w+", "does not compile on RE2"),  # look-ahead
        (r"x*", "matches the empty string"),
    ],
)
def test_a_pattern_re2_cannot_run_or_that_matches_nothing_is_a_form_error(
    client, categories, pattern, message
):
    response = admin_client(client).post(
        "/admin/triage/maskpattern/add/",
        {"name": "bad", "pattern": pattern, "label": "bad", "is_active": "on"},
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not MaskPattern.objects.exists()
    assert not AuditLog.objects.filter(action="mask_pattern").exists()


def test_analysts_cannot_see_or_change_patterns(client, analyst):
    client.force_login(analyst)
    response = client.get("/admin/triage/maskpattern/")
    assert response.status_code in {302, 403}


def test_examples_stored_before_masking_was_on_are_masked_by_the_command(categories, settings):
    item = make_item(TEXT, status=Item.Status.RESOLVED)
    plain = make_item("nothing personal here", status=Item.Status.RESOLVED)
    for each in (item, plain):
        record_training_example(item=each, category=categories["billing"], source="review")
    with pytest.raises(CommandError, match="TRIAGE_MASK_TRAINING is off"):
        call_command("mask_training")
    assert TrainingExample.objects.get(item=item).text == TEXT

    settings.TRIAGE_MASK_TRAINING = True
    out = io.StringIO()
    call_command("mask_training", stdout=out)
    assert "read 2 training example(s); masked personal data in 1" in out.getvalue()
    assert TrainingExample.objects.get(item=item).text == mask_text(TEXT)
    assert TrainingExample.objects.get(item=plain).text == "nothing personal here"
    item.refresh_from_db()
    assert item.text == TEXT
    assert AuditLog.objects.get(action="mask_training").detail["masked"] == 1


# --- Not only the text: ids, metadata keys, escalation notes, comments -------------------

EMAIL = "ana.lima@example.org"


def _decided(client, analyst, *, comment):
    from datetime import timedelta

    from django.utils import timezone

    from reviews.decisions import submit_review

    item = make_item("refund please", external_id=f"ticket:{EMAIL}", status=Item.Status.IN_REVIEW)
    task = make_task(
        item, claimed_by=analyst, lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    client.force_login(analyst)
    return submit_review(task_id=task.pk, user=analyst, category_slug="billing", comment=comment)


def test_the_card_masks_the_external_id_and_metadata_keys(client, analyst, categories):
    item = make_item(
        "refund please",
        external_id=f"ticket:{EMAIL}",
        metadata={f"reply-to {EMAIL}": "yes"},
        status=Item.Status.IN_REVIEW,
    )
    make_task(item)
    client.force_login(analyst)
    page = client.post("/reviews/claim", HTTP_HX_REQUEST="true").content.decode()
    assert EMAIL not in page
    assert "ticket:[email]" in page and "reply-to [email]" in page.lower()  # keys read as words


def test_an_escalation_note_is_masked_for_the_senior(client, categories):
    from reviews.handoffs import escalate_task
    from triage.access import SENIORS

    analyst = make_user()
    item = make_item("refund please", status=Item.Status.IN_REVIEW)
    from datetime import timedelta

    from django.utils import timezone

    task = make_task(
        item, claimed_by=analyst, lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    escalate_task(task_id=task.pk, user=analyst, note=f"the customer is {EMAIL}")
    client.force_login(make_user(group=SENIORS))
    page = client.post("/reviews/claim", HTTP_HX_REQUEST="true").content.decode()
    assert "Escalated by" in page
    assert EMAIL not in page and "the customer is [email]" in page


def test_comments_and_ids_are_masked_on_my_decisions_and_the_change_page(
    client, analyst, categories
):
    review = _decided(client, analyst, comment=f"asked {EMAIL}")
    listing = client.get("/reviews/decisions/").content.decode()
    page = client.get(f"/reviews/decisions/{review.pk}/").content.decode()
    for body in (listing, page):
        assert EMAIL not in body
        assert "asked [email]" in body and "ticket:[email]" in body
    # Sent back unedited, the masked comment keeps the words as written.
    client.post(
        f"/reviews/decisions/{review.pk}/change",
        {"category": "outage", "comment": "asked [email]"},
    )
    review.refresh_from_db()
    assert (review.category.slug, review.comment) == ("outage", f"asked {EMAIL}")
    notice = client.get("/reviews/decisions/").content.decode()
    assert "Changed ticket:[email] to" in notice and EMAIL not in notice
