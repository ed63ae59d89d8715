"""A category's rule: the what-if preview, saving it, and re-routing what now passes."""

import math

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from triage.access import HtmxHttpRequest, admin_required
from triage.cockpit.charts import Chart, Series, percent, share_ticks, xy_chart
from triage.cockpit.consequences import daily_consequences
from triage.cockpit.forms import ResumeForm, RuleForm
from triage.cockpit.frontier import category_frontier, uncertifiable_notice
from triage.cockpit.preview import Preview, Setting, preview
from triage.cockpit.services import (
    RerouteChanged,
    reroute_preview,
    reroute_waiting_tasks,
    save_category_setting,
)
from triage.models import Category, ModelVersion, RoutingPolicy, actor_name
from triage.monitoring.live import live_report
from triage.monitoring.models import CategoryWatch
from triage.monitoring.watch import WatchError, resume_category

TEMPLATE = "cockpit/category.html"


def risk_coverage_chart(p: Preview) -> Chart | None:
    if not p.curve:
        return None
    lowest = min([pt.lower_bound for pt in p.curve] + [pt.precision for pt in p.curve])
    if p.target is not None:
        lowest = min(lowest, p.target)
    y0 = max(0.0, math.floor(lowest * 10) / 10)
    markers = []
    if p.coverage is not None and p.expected_precision is not None:
        markers.append((p.coverage, p.expected_precision, "this rule"))
    hlines = []
    if p.target is not None:
        hlines.append((p.target, f"target {p.target:.1%}", "target"))
    return xy_chart(
        "Precision and certified bound against the share automated",
        [
            Series("precision on the evidence", [(pt.coverage, pt.precision) for pt in p.curve]),
            Series("certified bound", [(pt.coverage, pt.lower_bound) for pt in p.curve], css="s2"),
        ],
        x_range=(0.0, 1.0),
        y_range=(y0, 1.0),
        x_ticks=share_ticks(),
        y_ticks=share_ticks(y0, 1.0, 0.1 if y0 >= 0.5 else 0.25),
        hlines=hlines,
        markers=markers,
        table_head=["Threshold", "Share automated", "Precision", "Certified bound"],
        table_rows=[
            [
                f"{pt.threshold:.3f}",
                percent(pt.coverage),
                percent(pt.precision),
                percent(pt.lower_bound),
            ]
            for pt in p.curve
        ],
    )


def _context(
    category: Category,
    form: RuleForm,
    setting: Setting | None,
    resume_form: ResumeForm | None = None,
) -> dict[str, object]:
    champion = ModelVersion.objects.champion()
    policy = RoutingPolicy.current()
    saved = Setting.of(category)
    current = preview(category, saved, champion=champion, policy=policy)
    tried = preview(category, setting, champion=champion, policy=policy) if setting else None
    shown = tried or current
    return {
        "category": category,
        "form": form,
        "champion": champion,
        "policy": policy,
        "current": current,
        "preview": tried,
        "chart": risk_coverage_chart(shown),
        "frontier": category_frontier(category, champion=champion, policy=policy),
        "daily": daily_consequences(
            category, coverage=shown.coverage, certified_bound=shown.certified_bound
        ),
        "watch": CategoryWatch.objects.filter(
            category=category, suspended_at__isnull=False
        ).first(),
        "resume_form": resume_form or ResumeForm(),
        "section": "categories",
    }


@admin_required
def detail(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    category = get_object_or_404(Category, slug=slug)
    saved = Setting.of(category)
    form = RuleForm(initial=RuleForm.initial_for(saved))
    context = _context(category, form, None)
    # The audited figures of the rule in force, and the alarm (not on the preview's
    # keystrokes: the live report reads every audit).
    context["live"] = next((c for c in live_report().categories if c.slug == category.slug), None)
    offer = request.GET.get("saved")
    if offer:
        preview = reroute_preview(category=category)
        context["reroute"] = preview
        context["reroute_count"] = preview.count
    return render(request, TEMPLATE, context)


@admin_required
def preview_rule(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """The preview for the rule in the form, saving nothing."""
    category = get_object_or_404(Category, slug=slug)
    form = RuleForm(request.GET)
    setting = form.setting() if form.is_valid() else None
    status = 200 if form.is_valid() else 422
    template = TEMPLATE + "#preview" if request.htmx else TEMPLATE
    return render(request, template, _context(category, form, setting), status=status)


@admin_required
@require_POST
def save_rule(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    category = get_object_or_404(Category, slug=slug)
    form = RuleForm(request.POST)
    if not form.is_valid():
        return render(request, TEMPLATE, _context(category, form, None), status=422)
    entry = save_category_setting(
        category=category, setting=form.setting(), actor=actor_name(request.user)
    )
    notice = uncertifiable_notice(category, champion=ModelVersion.objects.champion())
    if notice:
        messages.warning(request, notice)
    else:
        messages.success(request, f"Saved the rule for {category.name}.")
    return redirect(reverse("cockpit:category", args=[slug]) + f"?saved={entry.pk}")


@admin_required
@require_POST
def reroute(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    category = get_object_or_404(Category, slug=slug)
    try:
        expected = int(request.POST.get("expected", ""))
    except ValueError:
        # The count the admin saw is the confirmation; without it nothing moves.
        messages.error(request, "expected: the count of tasks you confirmed is missing")
        return redirect(reverse("cockpit:category", args=[slug]) + "?saved=1")
    try:
        outcome = reroute_waiting_tasks(
            category=category,
            actor=actor_name(request.user),
            expected=expected,
            expected_key=request.POST.get("items") or None,
        )
    except RerouteChanged as exc:
        messages.error(request, str(exc))
        return redirect(reverse("cockpit:category", args=[slug]) + "?saved=1")
    messages.success(request, f"{outcome.routed} re-routed: {outcome.describe()}.")
    return redirect("cockpit:category", slug=slug)


@admin_required
@require_POST
def resume(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """Lift the drift watch's suspension, with the admin's reason for the audit log."""
    category = get_object_or_404(Category, slug=slug)
    form = RuleForm(initial=RuleForm.initial_for(Setting.of(category)))
    resume_form = ResumeForm(request.POST)
    if resume_form.is_valid():
        try:
            resume_category(
                slug=slug,
                reason=resume_form.cleaned_data["reason"],
                actor=actor_name(request.user),
                confirm_below_target=resume_form.cleaned_data["confirm_below_target"],
            )
        except WatchError as exc:
            if exc.field == "confirm_below_target":
                resume_form.add_error("confirm_below_target", str(exc))
            elif exc.field != "reason":
                # Nothing to resume (no suspension): there is no form to show it on.
                messages.error(request, str(exc))
                return render(request, TEMPLATE, _context(category, form, None), status=422)
            resume_form.add_error("reason", str(exc))
        else:
            messages.success(request, f"{category.name} resumed: it auto-acts again.")
            return redirect("cockpit:category", slug=slug)
    return render(request, TEMPLATE, _context(category, form, None, resume_form), status=422)
