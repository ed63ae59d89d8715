"""The admin for alerts an admin must look at."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from triage.admin.base import SelectionCheckedAdmin
from triage.monitoring.models import Alert


@admin.register(Alert)
class AlertAdmin(SelectionCheckedAdmin[Alert]):
    list_display = ["kind", "message", "count", "first_at", "last_at", "resolved_at"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["kind", "message", "count", "first_at", "last_at", "resolved_at"]
    actions = ["resolve"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Mark the selected alerts resolved")
    def resolve(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        count = queryset.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())
        self.message_user(request, f"Resolved {count} alert(s).")
