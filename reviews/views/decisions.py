"""The analyst's own decisions: a filterable list, and changing one while the window is open."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from reviews.claims import ReviewError, current_task
from reviews.corrections import can_change, change_decision, undo_deadline
from reviews.views.access import AnalystRequest, analyst_required
from reviews.views.card import card_context, ordered_categories
from reviews.views.queue import render_queue
from triage.access import blind_task_q, viewer
from triage.models import Review
from triage.privacy.masking import for_analysts

PAGE_SIZE = 50


@require_GET
@analyst_required
def my_decisions(request: AnalystRequest) -> HttpResponse:
    now = timezone.now()
    seen_by = viewer(request.user)
    reviews = (
        Review.objects.filter(reviewer_id=request.user.pk)
        .select_related("item", "category", "task")
        .order_by("-created_at", "-id")
    )
    category = request.GET.get("category", "").strip()
    agreed = request.GET.get("agreed", "").strip()
    changeable = request.GET.get("changeable", "") == "1"
    errors = []
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
    rows = [
        {
            "review": r,
            "changeable": can_change(r, user=request.user, now=now),
            "agreed": r.agreed_with_model if seen_by.sees_model_on(r.task) else None,
        }
        for r in page
    ]
    return render(
        request,
        "reviews/decisions.html",
        {
            "rows": rows,
            "page": page,
            "categories": ordered_categories(),
            "filters": {"category": category, "agreed": agreed, "changeable": changeable},
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
