"""Pages of reviews.trust: the admins' reviewer-quality page with quarantine actions."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from reviews.trust.models import Quarantine
from reviews.trust.patterns import (
    ALWAYS_ACCEPTS,
    FAST_MEDIAN_SECONDS,
    LONG_RUN,
    MIN_DECISIONS,
    Patterns,
    patterns,
    per_category,
)
from reviews.trust.quality import AnalystQuality, quality_table
from reviews.trust.quarantine import QuarantineError, end_quarantine, reject_labels, release_labels
from triage.access import HtmxHttpRequest, admin_required
from triage.models.audit_log import actor_name

# The sortable columns, in the table's order.
COLUMNS = [
    ("analyst", "Analyst"),
    ("decisions", "Decisions"),
    ("agreement", "Agreement"),
    ("kappa", "κ"),
    ("per_hour", "Per hour"),
    ("median_seconds", "Median s"),
    ("accepts", "Accepts suggestion"),
    ("run", "Longest run"),
    ("flags", "Flags"),
]


@dataclass(frozen=True)
class QualityRow:
    quality: AnalystQuality
    patterns: Patterns


# The columns the table sorts by (?sort=name, ?sort=-name for descending); a missing
# figure sorts last either way.
SORT_KEYS: dict[str, Callable[[QualityRow], Any]] = {
    "analyst": lambda r: r.quality.analyst.get_username(),
    "decisions": lambda r: r.quality.decisions,
    "agreement": lambda r: r.quality.agreement,
    "kappa": lambda r: r.quality.kappa,
    "per_hour": lambda r: r.quality.decisions_per_hour,
    "median_seconds": lambda r: r.quality.median_seconds,
    "accepts": lambda r: r.patterns.accept_share,
    "run": lambda r: r.patterns.longest_run,
    "flags": lambda r: len(r.patterns.flags),
}


def _rows(sort: str) -> tuple[list[QualityRow], str]:
    since = timezone.now() - timedelta(days=settings.TRIAGE_QUALITY_WINDOW_DAYS)
    rows = [
        QualityRow(q, patterns(q.analyst, since=since, median_seconds=q.median_seconds))
        for q in quality_table()
    ]
    key = sort.lstrip("-")
    if key not in SORT_KEYS:
        sort, key = "-flags", "flags"
    present = [r for r in rows if SORT_KEYS[key](r) is not None]
    missing = [r for r in rows if SORT_KEYS[key](r) is None]
    present.sort(key=SORT_KEYS[key], reverse=sort.startswith("-"))
    return present + missing, sort


def _quality_context(request: HtmxHttpRequest) -> dict[str, Any]:
    rows, sort = _rows(request.GET.get("sort", "-flags"))
    return {
        "rows": rows,
        "sort": sort,
        "columns": COLUMNS,
        "window_days": settings.TRIAGE_QUALITY_WINDOW_DAYS,
        "fast_seconds": FAST_MEDIAN_SECONDS,
        "long_run": LONG_RUN,
        "always_accepts": ALWAYS_ACCEPTS,
        "min_decisions": MIN_DECISIONS,
    }


@admin_required
def quality(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "reviews/quality.html", _quality_context(request))


@require_GET
@admin_required
def quality_analyst(request: HtmxHttpRequest, user_id: int) -> HttpResponse:
    """One analyst's decisions by category: where a flag on the table comes from."""
    analyst = get_object_or_404(get_user_model(), pk=user_id)
    since = timezone.now() - timedelta(days=settings.TRIAGE_QUALITY_WINDOW_DAYS)
    return render(
        request,
        "reviews/quality_analyst.html",
        {
            "analyst": analyst,
            "rows": per_category(analyst, since=since),
            "window_days": settings.TRIAGE_QUALITY_WINDOW_DAYS,
        },
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
        context = _quality_context(request) | {"error": str(exc)}
        return render(request, "reviews/quality.html", context, status=400)
    return redirect("reviews:quality")
