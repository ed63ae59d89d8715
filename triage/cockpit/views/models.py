"""Model versions: the timeline, a version's page, comparisons, promote and roll back."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from triage import training
from triage.access import HtmxHttpRequest, admin_required
from triage.classify.waiting import waiting_tasks
from triage.cockpit.charts import Chart, Series, percent, share_ticks, xy_chart
from triage.cockpit.versions import (
    artifact_problem,
    compare,
    history_of,
    reliability,
    rollback_target,
    summarize,
)
from triage.ml.heads import ArtifactError
from triage.models import ModelVersion, RoutingPolicy, actor_name


@admin_required
def timeline(request: HtmxHttpRequest) -> HttpResponse:
    versions = [summarize(v) for v in ModelVersion.objects.order_by("-id")[:50]]
    return render(
        request,
        "cockpit/models.html",
        {
            "versions": versions,
            "champion": ModelVersion.objects.champion(),
            "rollback_to": rollback_target(),
            "section": "models",
        },
    )


def reliability_chart(version: ModelVersion) -> Chart | None:
    bins = reliability(version)
    if not bins:
        return None
    return xy_chart(
        "Reliability: accuracy against stated confidence",
        [
            Series("perfect calibration", [(0.0, 0.0), (1.0, 1.0)], css="ref"),
            Series(
                "this model", [(b.mean_confidence, b.accuracy) for b in bins], css="s1", dots=True
            ),
        ],
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
        x_ticks=share_ticks(),
        y_ticks=share_ticks(),
        table_head=["Confidence", "Predictions", "Mean confidence", "Accuracy"],
        table_rows=[
            [
                f"{b.lower:.1f}–{b.upper:.1f}",
                str(b.count),
                percent(b.mean_confidence),
                percent(b.accuracy),
            ]
            for b in bins
        ],
        width=360,
        height=260,
    )


@admin_required
def version_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=pk)
    snapshot = version.training_snapshot or {}
    return render(
        request,
        "cockpit/version.html",
        {
            "s": summarize(version),
            "v": version,
            "snapshot": snapshot,
            "per_category": sorted((snapshot.get("per_category") or {}).items()),
            "per_class": sorted((version.metrics.get("per_class") or {}).items()),
            "chart": reliability_chart(version),
            "artifact_problem": artifact_problem(version),
            "history": history_of(version),
            "section": "models",
        },
    )


@admin_required
def compare_versions(request: HtmxHttpRequest) -> HttpResponse:
    versions = list(ModelVersion.objects.order_by("-id")[:50])
    champion = ModelVersion.objects.champion()
    a_id = request.GET.get("a") or (str(champion.pk) if champion else "")
    b_id = request.GET.get("b") or next((str(v.pk) for v in versions if str(v.pk) != a_id), "")
    a = ModelVersion.objects.filter(pk=a_id).first() if a_id.isdigit() else None
    b = ModelVersion.objects.filter(pk=b_id).first() if b_id.isdigit() else None
    error = ""
    if (request.GET.get("a") or request.GET.get("b")) and (a is None or b is None):
        error = "a and b must each name a model version"
    return render(
        request,
        "cockpit/compare.html",
        {
            "versions": versions,
            "comparison": compare(a, b) if a and b else None,
            "a_id": a_id,
            "b_id": b_id,
            "error": error,
            "section": "models",
        },
        status=400 if error else 200,
    )


def _confirm(
    request: HtmxHttpRequest,
    *,
    action: str,
    incoming: ModelVersion | None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    champion = ModelVersion.objects.champion()
    problem = artifact_problem(incoming) if incoming else None
    reroute = RoutingPolicy.current().reroute_waiting
    return render(
        request,
        "cockpit/confirm.html",
        {
            "action": action,
            "incoming": incoming,
            "champion": champion,
            # Left: what serves now; right: what would serve after.
            "comparison": (
                compare(champion, incoming)
                if champion and incoming and champion.pk != incoming.pk
                else None
            ),
            "incoming_summary": summarize(incoming) if incoming else None,
            "problem": problem,
            "error": error,
            # What the change of champion does to the queue (triage.classify.waiting).
            "reroute_waiting": reroute,
            "waiting_count": waiting_tasks(timezone.now()).count() if reroute else None,
            "section": "models",
        },
        status=status,
    )


@admin_required
def promote(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET: the comparison and a confirm button. POST: promote, unless the artifact fails."""
    version = get_object_or_404(ModelVersion, pk=pk)
    if request.method != "POST":
        return _confirm(request, action="promote", incoming=version)
    if version.status == ModelVersion.Status.CHAMPION:
        return _confirm(
            request,
            action="promote",
            incoming=version,
            error=f"v{version.pk} is already the champion",
            status=409,
        )
    problem = artifact_problem(version)
    if problem is None:
        try:
            training.promote_version(version=version, actor=actor_name(request.user))
        except ArtifactError as exc:
            problem = str(exc)
    if problem:
        return _confirm(
            request,
            action="promote",
            incoming=version,
            error=f"refused: {problem}",
            status=409,
        )
    messages.success(request, f"v{version.pk} is now the champion.")
    return redirect("cockpit:models")


@admin_required
def roll_back(request: HtmxHttpRequest) -> HttpResponse:
    target = rollback_target()
    if request.method != "POST":
        return _confirm(request, action="rollback", incoming=target)
    if target is None:
        return _confirm(
            request,
            action="rollback",
            incoming=None,
            error="nothing to roll back to: no earlier champion",
            status=409,
        )
    problem = artifact_problem(target)
    if problem is None:
        try:
            restored = training.rollback(actor=actor_name(request.user))
        except (training.RetrainError, ArtifactError) as exc:
            problem = str(exc)
    if problem:
        return _confirm(
            request,
            action="rollback",
            incoming=target,
            error=f"refused: {problem}",
            status=409,
        )
    messages.success(request, f"Rolled back: v{restored.pk} is the champion again.")
    return redirect("cockpit:models")
