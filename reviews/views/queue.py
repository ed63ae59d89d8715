"""The queue: GET shows what the analyst holds (or a start button); POSTs claim and decide."""

import time
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from reviews.claims import ReviewError, claim_next_task, current_task, renew_lease
from reviews.corrections import bulk_batch, last_changeable_review, recent_decisions
from reviews.decisions import submit_review
from reviews.handoffs import escalate_task, skip_task
from reviews.queue_summary import REASON_LABELS, open_per_reason, queue_summary
from reviews.views.access import AnalystRequest, analyst_required
from reviews.views.card import card_context, ordered_categories
from triage.models import Category, Review, ReviewTask
from triage.privacy.masking import for_analysts

TEMPLATE = "reviews/queue.html"
FILTERS_KEY = "queue_filters"
# Reasons an analyst may filter on: not audits, which must stay indistinguishable.
FILTER_REASONS = [
    (value, label)
    for value, label in REASON_LABELS.items()
    if value != ReviewTask.Reason.AUDIT_SAMPLE
]


def _filter_reasons(*, with_counts: bool) -> list[tuple[str, str]]:
    """The reason filter's options; on a full page load, each with its open tasks."""
    if not with_counts:
        return FILTER_REASONS
    counts = open_per_reason()
    return [(value, f"{label} ({counts.get(value, 0)})") for value, label in FILTER_REASONS]


def queue_filters(request: AnalystRequest) -> dict[str, str]:
    stored = request.session.get(FILTERS_KEY) or {}
    return {"category": stored.get("category", ""), "reason": stored.get("reason", "")}


def _filter_error(category: str, reason: str) -> str:
    if category and not Category.objects.filter(slug=category, is_active=True).exists():
        return f"unknown category {category!r} in the filter"
    if reason and reason not in dict(FILTER_REASONS):
        return f"unknown reason {reason!r} in the filter"
    return ""


def render_queue(
    request: AnalystRequest,
    task: ReviewTask | None,
    *,
    status: int = 200,
    error: str = "",
    notice: str = "",
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    filters = queue_filters(request)
    categories = ordered_categories()
    context: dict[str, Any] = card_context(task, categories=categories) | {
        "mode": "decide" if task else "start",
        "error": error,
        "notice": notice,
        "filters": filters,
        "filter_reasons": _filter_reasons(with_counts=not request.htmx),
        "filter_categories": categories,
        "poll_seconds": settings.TRIAGE_QUEUE_POLL_SECONDS,
        "undo_minutes": settings.TRIAGE_UNDO_SECONDS // 60,
        "skip_minutes": settings.TRIAGE_SKIP_COOLDOWN_SECONDS // 60,
    }
    recent = recent_decisions(user=request.user)
    context["recent"] = recent
    context["can_undo"] = bool(recent) and recent[0].minutes_left is not None
    if task is None:
        context["summary_counts"] = queue_summary(
            user=request.user, category=filters["category"], reason=filters["reason"]
        )
    else:
        context["session"] = session_counts(request.user)
    context |= extra or {}
    if task is not None and context["mode"] == "decide":
        note_shown(request, task)
    template = TEMPLATE + "#task-card" if request.htmx else TEMPLATE
    return render(request, template, context, status=status)


def session_counts(user: User) -> dict[str, int]:
    """ "23 decided this session · 805 open": decisions since the analyst logged in."""
    mine = Review.objects.filter(reviewer=user)
    if user.last_login is not None:
        mine = mine.filter(created_at__gte=user.last_login)
    return {"decided": mine.count(), "open": ReviewTask.objects.open().count()}


def _claim(request: AnalystRequest) -> ReviewTask | None:
    filters = queue_filters(request)
    return claim_next_task(
        user=request.user, category=filters["category"], reason=filters["reason"]
    )


@require_GET
@analyst_required
def queue(request: AnalystRequest) -> HttpResponse:
    """Never claims: shows the task already held, or the start panel with the counts."""
    error = ""
    if "category" in request.GET or "reason" in request.GET:
        category = request.GET.get("category", "").strip()
        reason = request.GET.get("reason", "").strip()
        error = _filter_error(category, reason)
        if not error:
            request.session[FILTERS_KEY] = {"category": category, "reason": reason}
    task = current_task(user=request.user)
    # Without JavaScript a decision redirects here: its notice comes through the session.
    notice = " ".join(str(m) for m in messages.get_messages(request))
    return render_queue(request, task, error=error, notice=notice, status=400 if error else 200)


@require_POST
@analyst_required
def claim(request: AnalystRequest) -> HttpResponse:
    task = _claim(request)
    if not request.htmx:
        return redirect("reviews:queue")
    return render_queue(request, task)


SHOWN_KEY = "card_shown"
# A decision's time is capped: a card left open over lunch says nothing about the work.
MAX_SECONDS_SPENT = 3600.0


def note_shown(request: AnalystRequest, task: ReviewTask) -> None:
    """Remember, on the server, when this task's card was first shown to this analyst
    to decide (at claim, or on the page that first showed it): its time counts from here."""
    shown = request.session.get(SHOWN_KEY) or {}
    if shown.get("task") != task.pk:
        request.session[SHOWN_KEY] = {"task": task.pk, "at": time.time()}


def seconds_spent(request: AnalystRequest, task_id: int) -> float | None:
    """Seconds since the server showed this task's card, or None if it never did here.

    Never the client's word: a posted `shown_at` of 0 recorded 3,600 s.
    """
    shown = request.session.get(SHOWN_KEY) or {}
    if shown.get("task") != task_id:
        return None
    return max(0.0, min(time.time() - float(shown["at"]), MAX_SECONDS_SPENT))


def after_error(request: AnalystRequest, task_id: int, error: str, status: int) -> HttpResponse:
    """Show the error on the card the analyst was looking at, or on a fresh one."""
    held = current_task(user=request.user)
    if held is not None and held.pk == task_id:
        return render_queue(request, held, status=status, error=error)
    fresh = _claim(request)
    if fresh is not None:
        error += "; here is a fresh task"
    return render_queue(request, fresh, status=status, error=error)


@require_POST
@analyst_required
def decide(request: AnalystRequest, task_id: int) -> HttpResponse:
    category = request.POST.get("category", "").strip()
    if not category:
        return after_error(request, task_id, "choose a category", 400)
    try:
        review = submit_review(
            task_id=task_id,
            user=request.user,
            category_slug=category,
            seconds_spent=seconds_spent(request, task_id),
            comment=request.POST.get("comment", ""),
        )
    except ReviewError as exc:
        return after_error(request, task_id, str(exc), exc.status)
    eid = for_analysts(review.item.external_id)
    notice = f"Decided {eid}: {review.category.name}. Press u to change it."
    return next_card(request, notice)


def next_card(request: AnalystRequest, notice: str) -> HttpResponse:
    """After a decision or a hand-off: the next task, in place (htmx) or through a redirect
    (no JavaScript, or a key pressed before htmx took over the form); either way it is
    claimed, since the queue's GET never claims."""
    task = _claim(request)
    if request.htmx:
        return render_queue(request, task, notice=notice)
    messages.success(request, notice)
    return redirect("reviews:queue")


def _hand_back(request: AnalystRequest, task_id: int, *, escalate: bool) -> HttpResponse:
    note = request.POST.get("note", "")
    try:
        if escalate:
            escalate_task(task_id=task_id, user=request.user, note=note)
        else:
            skip_task(task_id=task_id, user=request.user, note=note)
    except ReviewError as exc:
        return after_error(request, task_id, str(exc), exc.status)
    minutes = settings.TRIAGE_SKIP_COOLDOWN_SECONDS // 60
    notice = (
        "Sent to the senior queue."
        if escalate
        else f"Skipped; it will not be offered to you for {minutes} minutes."
    )
    return next_card(request, notice)


@require_POST
@analyst_required
def skip(request: AnalystRequest, task_id: int) -> HttpResponse:
    return _hand_back(request, task_id, escalate=False)


@require_POST
@analyst_required
def escalate(request: AnalystRequest, task_id: int) -> HttpResponse:
    return _hand_back(request, task_id, escalate=True)


@require_POST
@analyst_required
def heartbeat(request: AnalystRequest, task_id: int) -> HttpResponse:
    """Renew the lease while the card is open; a lost task is replaced in place."""
    if renew_lease(task_id=task_id, user=request.user):
        return HttpResponse(status=204)
    return after_error(
        request,
        task_id,
        f"Your hold on task {task_id} expired and someone else has it now",
        409,
    )


@require_GET
@analyst_required
def undo(request: AnalystRequest) -> HttpResponse:
    """Bring back the analyst's last decision, to change it while the window is open."""
    review = last_changeable_review(user=request.user)
    if review is None:
        minutes = settings.TRIAGE_UNDO_SECONDS // 60
        return render_queue(
            request,
            current_task(user=request.user),
            status=409,
            error=f"nothing to undo: a decision can be changed for {minutes} minutes",
        )
    batch = bulk_batch(review)
    if not request.htmx and len(batch) == 1:
        return redirect("reviews:decision", review_id=review.pk)
    return render_queue(
        request,
        review.task,
        extra={"mode": "change", "review": review, "batch": batch if len(batch) > 1 else None},
    )
