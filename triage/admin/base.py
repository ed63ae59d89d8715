"""Admin base classes: changes that are audited, and records that are read-only.

Other apps' admins (endpoints, rules, policies) build on these, so every change an
admin makes is logged with its values before and after, and the records that
decisions and training rest on cannot be edited by hand.
"""

from collections.abc import Sequence
from typing import Any, TypeVar

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from triage.models import AuditLog, actor_name, snapshot

M = TypeVar("M", bound=models.Model)


class SelectionCheckedAdmin(admin.ModelAdmin[M]):
    """A changelist action on "ids" that are not ids (a hand-made POST) is refused with a
    message; Django's admin would filter on them and fail with a 500."""

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any], *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        pk = self.model._meta.pk
        assert pk is not None
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                pk.to_python(value)
            except ValidationError:
                self.message_user(
                    request, f"Nothing was done: {value!r} is not an id.", messages.ERROR
                )
                return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset, *args, **kwargs)


class AuditedAdmin(SelectionCheckedAdmin[M]):
    """Logs each add, change and delete made through this admin, before and after.

    `audit_action` names the entry's action ("category", "policy"...);
    `audit_fields` limits the snapshot (None: every concrete field).
    """

    audit_action: str = ""
    audit_fields: Sequence[str] | None = None

    def audit_target(self, obj: M) -> str:
        return f"{obj._meta.model_name}:{obj}"

    def audit_snapshot(self, obj: M) -> dict[str, Any]:
        return snapshot(obj, self.audit_fields)

    def _record(
        self, request: HttpRequest, target: str, before: dict[str, Any] | None, after: Any
    ) -> None:
        AuditLog.record_change(
            actor=actor_name(request.user),
            action=self.audit_action or self.model._meta.model_name or "change",
            target=target,
            before=before,
            after=after,
        )

    def save_model(self, request: HttpRequest, obj: M, form: Any, change: bool) -> None:
        before = None
        if change and obj.pk is not None:
            stored = type(obj)._default_manager.filter(pk=obj.pk).first()
            before = self.audit_snapshot(stored) if stored is not None else None
        super().save_model(request, obj, form, change)
        self._record(request, self.audit_target(obj), before, self.audit_snapshot(obj))

    def delete_model(self, request: HttpRequest, obj: M) -> None:
        target, before = self.audit_target(obj), self.audit_snapshot(obj)
        super().delete_model(request, obj)
        self._record(request, target, before, None)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[M]) -> None:
        # The bulk "delete selected" action: one entry per deleted row, all or nothing.
        with transaction.atomic():
            rows = [(self.audit_target(obj), self.audit_snapshot(obj)) for obj in queryset]
            super().delete_queryset(request, queryset)
            for target, before in rows:
                self._record(request, target, before, None)


class ReadOnlyAdmin(SelectionCheckedAdmin[M]):
    """Viewable, never added, changed or deleted by hand, superusers included.

    Items, predictions, review tasks, reviews and training examples feed routing
    decisions and training; corrections go through the product's own flows (a
    review, a re-route), which log them.
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def shown_once(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    template: str,
    *,
    title: str,
    **context: Any,
) -> TemplateResponse:
    """A secret on this one page (an API token, a webhook's signing secret): never in a
    message (Django keeps those in a cookie), never kept by a browser's cache or a proxy."""
    response = TemplateResponse(
        request,
        template,
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "opts": model_admin.opts,
            **context,
        },
    )
    add_never_cache_headers(response)
    return response
