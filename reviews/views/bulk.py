"""The similar-items panel on the card (reviews.similar) and the bulk decision it offers
(reviews.bulk): past neighbours for context, and open tasks above a similarity floor that
the analyst may decide with this one."""

import math
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from reviews.bulk import BulkError, bulk_decide
from reviews.claims import current_task
from reviews.similar import SimilarTask, similar_open_tasks, similar_resolved
from reviews.views.access import AnalystRequest
from reviews.views.card import ordered_categories
from reviews.views.queue import after_error, next_card, seconds_spent
from triage.access import is_admin, is_blind, is_senior
from triage.models import ReviewTask, latest_predictions

SIMILAR_TEMPLATE = "reviews/_similar.html"
SIMILAR_COUNT = 5
# "Select all above X%" is offered at these steps, from the floor up.
SELECT_STEP = 0.05


def bulk_rows(found: list[SimilarTask]) -> list[dict[str, Any]]:
    """Each offered task with its similarity and, unless it is blind, the model's
    suggestion: ticking a row should be a judgement about that row, not a guess."""
    predictions = latest_predictions([s.task.item_id for s in found])
    rows = []
    for s in found:
        prediction = None if is_blind(s.task) else predictions.get(s.task.item_id)
        rows.append(
            {
                "task": s.task,
                "similarity": s.similarity,
                # Rounded down: 99.5% similar is not "100%", which reads as a duplicate.
                "percent": math.floor(s.similarity * 100),
                "prediction": prediction,
            }
        )
    return rows


def select_levels(rows: list[dict[str, Any]], floor: float) -> list[dict[str, Any]]:
    """The "select all above" steps that select something, from the highest down."""
    if not rows:
        return []
    top = max(r["similarity"] for r in rows)
    levels: list[dict[str, Any]] = []
    step = math.floor(top / SELECT_STEP) * SELECT_STEP
    while step >= floor - 1e-9 and len(levels) < 4:
        count = sum(1 for r in rows if r["similarity"] >= step - 1e-9)
        if count and (not levels or count != levels[-1]["count"]):
            levels.append({"at": round(step, 2), "count": count})
        step -= SELECT_STEP
    return levels


def _render_similar(
    request: AnalystRequest, task: ReviewTask, *, status: int = 200, error: str = ""
) -> HttpResponse:
    # Blind tasks get the panel empty, worded as for an item with no neighbours: final
    # categories would hint at the answer the blind look must find alone, and a panel
    # that named blindness would reveal which tasks are audits.
    blind = is_blind(task)
    floor = float(settings.TRIAGE_BULK_SIMILARITY_FLOOR)
    limit = int(settings.TRIAGE_BULK_LIMIT)
    found = (
        []
        if blind
        else similar_open_tasks(
            task, user=request.user, senior=is_senior(request.user), count=limit - 1, floor=floor
        )
    )
    rows = bulk_rows(found)
    context = {
        "task": task,
        "similar": [] if blind else similar_resolved(task.item, count=SIMILAR_COUNT),
        "rows": rows,
        "levels": select_levels(rows, floor),
        "floor": floor,
        "categories": ordered_categories(),
        "error": error,
        "bulk_limit": limit,
    }
    return render(request, SIMILAR_TEMPLATE, context, status=status)


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
    """Decide the selection, then the next card says how many and offers to undo them all.
    A refusal shows on the card the analyst was looking at (the panel reloads with it)."""
    task = _panel_task(request, task_id)
    try:
        ids = [int(value) for value in request.POST.getlist("tasks")]
    except ValueError:
        return after_error(request, task.pk, "task ids must be numbers", 400)
    # From the server's record of when the card was shown, never the client's word.
    seconds = seconds_spent(request, task.pk)
    category = request.POST.get("category", "").strip()
    if not category:
        return after_error(request, task.pk, "choose a category for the selected tasks", 400)
    if is_blind(task):
        return after_error(request, task.pk, "this task cannot start a bulk", 409)
    try:
        reviews = bulk_decide(
            user=request.user, task_ids=ids, category_slug=category, seconds_spent=seconds
        )
    except BulkError as exc:
        return after_error(request, task.pk, str(exc), exc.status)
    n = len(reviews)
    name = reviews[0].category.name
    undo = f" Press u to undo all {n}." if n > 1 else " Press u to change it."
    return next_card(request, f"Decided {n} as {name}.{undo}")
