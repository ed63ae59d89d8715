"""Pages of reviews.similar, reviews.bulk and reviews.trust: the similar-items panel with
bulk decisions, and the admins' reviewer-quality page with quarantine actions."""

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from reviews.bulk import BulkError, bulk_decide
from reviews.claims import current_task
from reviews.similar import similar_open_tasks, similar_resolved
from reviews.trust.models import Quarantine
from reviews.trust.quality import quality_table
from reviews.trust.quarantine import QuarantineError, end_quarantine, reject_labels, release_labels
from reviews.views.access import AnalystRequest
from reviews.views.queue import seconds_spent
from triage.access import HtmxHttpRequest, admin_required, is_admin, is_blind, is_senior
from triage.models import Category, ReviewTask
from triage.models.audit_log import actor_name

SIMILAR_TEMPLATE = "reviews/_similar.html"
SIMILAR_COUNT = 5


def _render_similar(
    request: AnalystRequest, task: ReviewTask, *, status: int = 200, error: str = ""
) -> HttpResponse:
    # Blind tasks get the panel empty, worded as for an item with no neighbours: final
    # categories would hint at the answer the blind look must find alone, and a panel
    # that named blindness would reveal which tasks are audits.
    blind = is_blind(task)
    context = {
        "task": task,
        "similar": [] if blind else similar_resolved(task.item, count=SIMILAR_COUNT),
        "open_tasks": []
        if blind
        else similar_open_tasks(
            task, user=request.user, senior=is_senior(request.user), count=_bulk_limit() - 1
        ),
        "categories": Category.objects.filter(is_active=True),
        "error": error,
        "bulk_limit": _bulk_limit(),
    }
    return render(request, SIMILAR_TEMPLATE, context, status=status)


def _bulk_limit() -> int:
    return int(settings.TRIAGE_BULK_LIMIT)


def _panel_task(request: AnalystRequest, task_id: int) -> ReviewTask:
    """The task whose panel is asked for: one the user holds now (admins: any task).

    Any other task id answers 404, whatever the task: an empty panel, or a bulk refused,
    would otherwise tell an analyst which open tasks are audits without claiming them.
    """
    if is_admin(request.user):
        return get_object_or_404(ReviewTask.objects.select_related("item"), pk=task_id)
    held = current_task(user=request.user)
    if held is None or held.pk != task_id:
        raise Http404(f"you do not hold task {task_id}")
    return held


@require_GET
@login_required
@permission_required("triage.add_review", raise_exception=True)
def similar(request: AnalystRequest, task_id: int) -> HttpResponse:
    return _render_similar(request, _panel_task(request, task_id))


@require_POST
@login_required
@permission_required("triage.add_review", raise_exception=True)
def bulk(request: AnalystRequest, task_id: int) -> HttpResponse:
    task = _panel_task(request, task_id)
    try:
        ids = [int(value) for value in request.POST.getlist("tasks")]
    except ValueError:
        return _render_similar(request, task, status=400, error="task ids must be numbers")
    # From the server's record of when the card was shown, never the client's word.
    seconds = seconds_spent(request, task.pk)
    category = request.POST.get("category", "").strip()
    if not category:
        return _render_similar(request, task, status=400, error="choose a category")
    if is_blind(task):
        return _render_similar(request, task, status=409, error="this task cannot start a bulk")
    try:
        reviews = bulk_decide(
            user=request.user, task_ids=ids, category_slug=category, seconds_spent=seconds
        )
    except BulkError as exc:
        return _render_similar(request, task, status=exc.status, error=str(exc))
    queue = reverse("reviews:queue")
    if request.htmx:
        response = HttpResponse(f"Decided {len(reviews)} tasks.")
        response["HX-Redirect"] = queue
        return response
    return redirect(queue)


@admin_required
def quality(request: HtmxHttpRequest) -> HttpResponse:
    return render(
        request,
        "reviews/quality.html",
        {"rows": quality_table(), "window_days": settings.TRIAGE_QUALITY_WINDOW_DAYS},
    )


QUARANTINE_ACTIONS = {"release": release_labels, "reject": reject_labels}


@require_POST
@admin_required
def quarantine_action(request: HtmxHttpRequest, quarantine_id: int) -> HttpResponse:
    quarantine = get_object_or_404(Quarantine, pk=quarantine_id)
    action = request.POST.get("action", "")
    actor = actor_name(request.user)
    try:
        if action == "end":
            end_quarantine(quarantine=quarantine, actor=actor)
        elif action in QUARANTINE_ACTIONS:
            QUARANTINE_ACTIONS[action](quarantine=quarantine, actor=actor)
        else:
            raise QuarantineError(f"unknown action {action!r}: use release, reject or end")
    except QuarantineError as exc:
        context = {
            "rows": quality_table(),
            "window_days": settings.TRIAGE_QUALITY_WINDOW_DAYS,
            "error": str(exc),
        }
        return render(request, "reviews/quality.html", context, status=400)
    return redirect("reviews:quality")
