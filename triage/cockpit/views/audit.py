"""The audit log, readable: who changed what, when, and the values before and after."""

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from django import forms
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from triage.access import HtmxHttpRequest, admin_required
from triage.models import AuditLog

ACTION_NAMES = {
    "category": "changed a category's rule",
    "policy": "changed the routing policy",
    "promote": "promoted",
    "reject": "the gate rejected",
    "hold": "the gate held for an admin",
    "rollback": "rolled back to",
    "reroute": "re-routed waiting items of",
    "reroute_waiting": "re-routed the waiting items it now automates for",
    "suspend": "the drift watch suspended",
    "resume": "resumed",
}
# Keys shown as the entry's subject or its before/after, not repeated among the details.
STRUCTURAL = {"target", "before", "after", "changed", "category"}


@dataclass(frozen=True)
class Change:
    field: str
    before: Any
    after: Any
    changed: bool


@dataclass(frozen=True)
class Entry:
    log: AuditLog
    what: str
    subject: str
    changes: list[Change]
    details: list[tuple[str, Any]]


def readable(log: AuditLog) -> Entry:
    detail = log.detail or {}
    before, after = detail.get("before"), detail.get("after")
    changes = []
    if isinstance(before, dict) or isinstance(after, dict):
        old, new = before or {}, after or {}
        for key in sorted(set(old) | set(new)):
            changes.append(Change(key, old.get(key), new.get(key), old.get(key) != new.get(key)))
    subject = str(detail.get("target") or "")
    if not subject and detail.get("category"):
        subject = f"category:{detail['category']}"
    if not subject and "version" in detail:
        subject = f"model v{detail['version']}"
    return Entry(
        log=log,
        what=ACTION_NAMES.get(log.action, log.action.replace("_", " ")),
        subject=subject,
        changes=changes,
        details=[(k, v) for k, v in sorted(detail.items()) if k not in STRUCTURAL],
    )


class AuditFilter(forms.Form):
    action = forms.ChoiceField(required=False)
    actor = forms.CharField(required=False, max_length=150)
    subject = forms.CharField(required=False, max_length=200, label="Subject contains")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        actions = AuditLog.objects.order_by("action").values_list("action", flat=True).distinct()
        action = self.fields["action"]
        assert isinstance(action, forms.ChoiceField)
        action.choices = [("", "any action")] + [(a, ACTION_NAMES.get(a, a)) for a in actions]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "until must be on or after since")
        return data

    def apply(self, logs: QuerySet[AuditLog]) -> QuerySet[AuditLog]:
        data = self.cleaned_data
        if data.get("action"):
            logs = logs.filter(action=data["action"])
        if data.get("actor"):
            logs = logs.filter(actor__icontains=data["actor"])
        if data.get("subject"):
            subject = data["subject"]
            logs = logs.filter(
                Q(detail__target__icontains=subject) | Q(detail__category__icontains=subject)
            )
        tz = timezone.get_current_timezone()
        if data.get("since"):
            logs = logs.filter(at__gte=datetime.combine(data["since"], time.min, tzinfo=tz))
        if data.get("until"):
            logs = logs.filter(at__lte=datetime.combine(data["until"], time.max, tzinfo=tz))
        return logs


@admin_required
def audit_log(request: HtmxHttpRequest) -> HttpResponse:
    form = AuditFilter(request.GET or None)
    logs = AuditLog.objects.order_by("-at", "-id")
    status = 200
    if form.is_bound:
        if form.is_valid():
            logs = form.apply(logs)
        else:
            status, logs = 400, logs.none()
    page = Paginator(logs, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    template = "cockpit/audit.html" + ("#entries" if request.htmx else "")
    return render(
        request,
        template,
        {
            "form": form,
            "page": page,
            "entries": [readable(log) for log in page.object_list],
            "query": query.urlencode(),
            "section": "audit",
        },
        status=status,
    )
