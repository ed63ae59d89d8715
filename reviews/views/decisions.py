"""The analyst's own decisions: a filterable list, and changing one while the window is open."""

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from reviews.claims import ReviewError, current_task
from reviews.corrections import (
    can_change,
    change_batch,
    change_decision,
    minutes_left,
    undo_deadline,
)
from reviews.views.access import AnalystRequest, analyst_required
from reviews.views.card import card_context, ordered_categories
from reviews.views.queue import render_queue
from triage.access import blind_task_q, viewer
from triage.models import Review, latest_predictions
from triage.privacy.masking import for_analysts

PAGE_SIZE = 50
# The filters a page link carries along, so "Older" keeps what the analyst asked for.
FILTER_PARAMS = ("q", "category", "agreed", "changeable")


@require_GET
@analyst_required
def my_decisions(request: AnalystRequest) -> HttpResponse:
    """The analyst's history: what they chose, what the model suggested (unless the task
    was blind), how long each stays changeable; searchable by external id."""
    now = timezone.now()
    seen_by = viewer(request.user)
    reviews = (
        Review.objects.filter(reviewer_id=request.user.pk)
        .select_related("item", "task", "category")
        .order_by("-created_at", "-id")
    )
    query = request.GET.get("q", "").strip()
    category = request.GET.get("category", "").strip()
    agreed = request.GET.get("agreed", "").strip()
    changeable = request.GET.get("changeable", "") == "1"
    errors = []
    if query:
        reviews = reviews.filter(item__external_id__icontains=query)
    if category:
        reviews = reviews.filter(category__slug=category)
    if agreed in {"yes", "no"}:
        # Blind decisions match neither: agreement would reveal the model's answer.
        reviews = reviews.filter(agreed_with_model=agreed == "yes")
        if not seen_by.admin:
            reviews = reviews.exclude(blind_task_q("task__"))
    elif agreed:
        errors.append(f"agreed must be yes or no, not {agreed!r}")
    if changeable:
        reviews = reviews.filter(
            created_at__gte=now - timedelta(seconds=settings.TRIAGE_UNDO_SECONDS)
        )
    page = Paginator(reviews, PAGE_SIZE).get_page(request.GET.get("page"))
    predictions = latest_predictions([r.item_id for r in page])
    rows = []
    for r in page:
        # One rule for every page: blind tasks show no suggestion, confidence or agreement.
        blind = not seen_by.sees_model_on(r.task)
        rows.append(
            {
                "review": r,
                "blind": blind,
                "prediction": None if blind else predictions.get(r.item_id),
                "agreed": None if blind else r.agreed_with_model,
                "minutes_left": minutes_left(r, now=now)
                if can_change(r, user=request.user, now=now)
                else None,
            }
        )
    kept = {name: request.GET[name] for name in FILTER_PARAMS if request.GET.get(name, "").strip()}
    return render(
        request,
        "reviews/decisions.html",
        {
            "rows": rows,
            "page": page,
            "categories": ordered_categories(),
            "filters": {
                "q": query,
                "category": category,
                "agreed": agreed,
                "changeable": changeable,
            },
            "filter_query": urlencode(kept),
            "errors": errors,
            "undo_minutes": settings.TRIAGE_UNDO_SECONDS // 60,
        },
        status=400 if errors else 200,
    )


def _decision_page(
    request: AnalystRequest, review: Review, *, error: str = "", status: int = 200
) -> HttpResponse:
    context: dict[str, Any] = card_context(review.task) | {
        "mode": "change",
        "review": review,
        "error": error,
        "changeable": can_change(review, user=request.user),
        "deadline": undo_deadline(review),
        "undo_minutes": settings.TRIAGE_UNDO_SECONDS // 60,
    }
    return render(request, "reviews/decision.html", context, status=status)


@require_GET
@analyst_required
def decision(request: AnalystRequest, review_id: int) -> HttpResponse:
    review = get_object_or_404(
        Review.objects.select_related("item", "task", "category"),
        pk=review_id,
        reviewer=request.user,
    )
    return _decision_page(request, review)


@require_POST
@analyst_required
def change(request: AnalystRequest, review_id: int) -> HttpResponse:
    """Change a decision: from the card (htmx, back to the held task) or from its page."""
    comment = request.POST.get("comment")
    own = Review.objects.filter(pk=review_id, reviewer_id=request.user.pk).first()
    if own is not None and comment is not None and comment == for_analysts(own.comment):
        # The form showed the comment masked: sent back unedited, it stays as written.
        comment = own.comment
    try:
        review = change_decision(
            review_id=review_id,
            user=request.user,
            category_slug=request.POST.get("category", "").strip(),
            comment=comment,
        )
    except ReviewError as exc:
        if request.htmx:
            return render_queue(
                request, current_task(user=request.user), error=str(exc), status=exc.status
            )
        if own is None:
            return render(
                request, "reviews/decisions.html", {"errors": [str(exc)], "rows": []}, status=404
            )
        return _decision_page(request, own, error=str(exc), status=exc.status)
    notice = f"Changed {for_analysts(review.item.external_id)} to {review.category.name}."
    if request.htmx:
        return render_queue(request, current_task(user=request.user), notice=notice)
    messages.success(request, notice)
    return redirect("reviews:decisions")


@require_POST
@analyst_required
def change_all(request: AnalystRequest, review_id: int) -> HttpResponse:
    """Undo a bulk decision: give every decision of the bulk a new category, or none."""
    try:
        changed = change_batch(
            review_id=review_id,
            user=request.user,
            category_slug=request.POST.get("category", "").strip(),
        )
    except ReviewError as exc:
        if request.htmx:
            return render_queue(
                request, current_task(user=request.user), error=str(exc), status=exc.status
            )
        return render(
            request, "reviews/decisions.html", {"errors": [str(exc)], "rows": []}, status=exc.status
        )
    notice = f"Changed all {len(changed)} to {changed[0].category.name}."
    if request.htmx:
        return render_queue(request, current_task(user=request.user), notice=notice)
    messages.success(request, notice)
    return redirect("reviews:queue")
