import time

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.middleware import HtmxDetails

from triage.models import Category, RoutingPolicy

from .models import ReviewTask
from .services import ReviewError, claim_next_task, submit_review


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


TEMPLATE = "reviews/queue.html"
OPEN_COUNT_CAP = 1000


def is_blind(task: ReviewTask) -> bool:
    """Audits are always blind: shown the model's answer, analysts tend to agree with it,
    and the audit would measure that instead of the model's precision."""
    return task.reason == ReviewTask.Reason.AUDIT_SAMPLE or RoutingPolicy.current().blind_review


def _card_context(request: HtmxHttpRequest, task: ReviewTask | None) -> dict[str, object]:
    prediction = task.item.latest_prediction() if task and not is_blind(task) else None
    categories = list(Category.objects.filter(is_active=True))
    names = {c.slug: c.name for c in categories}
    open_count = ReviewTask.objects.open()[: OPEN_COUNT_CAP + 1].count()
    suggestions = [
        {"name": names.get(s["label"], s["label"]), "confidence": s["confidence"]}
        for s in (prediction.scores if prediction else [])
    ]
    return {
        "task": task,
        "prediction": prediction,
        "suggestions": suggestions,
        "categories": categories,
        # Counted up to a cap: counting 200,000 open tasks took ~35 ms of every card
        # (benchmarks/scale.py), and past a thousand the exact number changes nothing.
        "open_count": min(open_count, OPEN_COUNT_CAP),
        "open_count_capped": open_count > OPEN_COUNT_CAP,
        "shown_at": time.time(),
    }


def _render_card(
    request: HtmxHttpRequest, task: ReviewTask | None, *, status: int = 200, error: str = ""
) -> HttpResponse:
    context = _card_context(request, task) | {"error": error}
    template = TEMPLATE + "#task-card" if request.htmx else TEMPLATE
    return render(request, template, context, status=status)


@login_required
@permission_required("reviews.add_review", raise_exception=True)
def queue(request: HtmxHttpRequest) -> HttpResponse:
    return _render_card(request, claim_next_task(user=request.user))


@require_POST
@login_required
@permission_required("reviews.add_review", raise_exception=True)
def decide(request: HtmxHttpRequest, task_id: int) -> HttpResponse:
    category = request.POST.get("category", "").strip()
    try:
        shown_at = float(request.POST.get("shown_at", ""))
        seconds: float | None = max(0.0, min(time.time() - shown_at, 3600.0))
    except ValueError:
        seconds = None
    if not category:
        error = "choose a category"
    else:
        try:
            submit_review(
                task_id=task_id, user=request.user, category_slug=category, seconds_spent=seconds
            )
        except ReviewError as exc:
            error = str(exc)
        else:
            if not request.htmx:
                return redirect("reviews:queue")
            return _render_card(request, claim_next_task(user=request.user))
    # Show the error on the card the analyst is looking at (or their next one).
    held = ReviewTask.objects.filter(pk=task_id, claimed_by_id=request.user.pk).first()
    task = held if held and held.completed_at is None else claim_next_task(user=request.user)
    return _render_card(request, task, status=400 if not category else 409, error=error)
