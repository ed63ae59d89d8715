"""Pages of reviews.trust: the admins' reviewer-quality page with quarantine actions."""

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from reviews.trust.models import Quarantine
from reviews.trust.quality import quality_table
from reviews.trust.quarantine import QuarantineError, end_quarantine, reject_labels, release_labels
from triage.access import HtmxHttpRequest, admin_required
from triage.models.audit_log import actor_name


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
