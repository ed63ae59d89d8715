from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from triage.actions.delivery import redeliver
from triage.actions.endpoints import EndpointError, check_destination
from triage.actions.events import EventType
from triage.actions.models import Delivery, Endpoint, Event
from triage.admin.base import AuditedAdmin, SelectionCheckedAdmin, shown_once


class EndpointForm(forms.ModelForm[Endpoint]):
    url = forms.URLField(
        label="URL",
        max_length=500,
        assume_scheme="https",
        help_text="https, and a public address (unless TRIAGE_WEBHOOK_ALLOW_PRIVATE is on).",
    )
    event_types = forms.MultipleChoiceField(
        choices=[(t.value, t.value) for t in EventType],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None ticked means every type.",
    )

    class Meta:
        model = Endpoint
        fields = ["url", "description", "is_active", "event_types", "categories"]
        widgets = {"categories": forms.CheckboxSelectMultiple}

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        try:
            check_destination(url)
        except EndpointError as exc:
            raise forms.ValidationError(f"This URL {exc}.") from None
        return url


@admin.register(Endpoint)
class EndpointAdmin(AuditedAdmin[Endpoint]):
    form = EndpointForm
    audit_action = "endpoint"
    # Never the signing secret. (Which categories it receives is a many-to-many, not logged.)
    audit_fields = ["url", "description", "is_active", "event_types", "disabled_reason"]
    list_display = ["url", "is_active", "delivered", "pending", "failed", "disabled_reason"]
    readonly_fields = ["secret_hint", "disabled_reason", "created_at"]
    actions = ["redeliver_failed"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Endpoint]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_delivered=Count("deliveries", filter=Q(deliveries__state="succeeded")),
                n_pending=Count("deliveries", filter=Q(deliveries__state="pending")),
                n_failed=Count("deliveries", filter=Q(deliveries__state="failed")),
            )
        )

    def _deliveries_link(self, obj: Endpoint, state: str, count: int) -> str:
        url = reverse("admin:actions_delivery_changelist")
        return format_html(
            '<a href="{}?endpoint__id__exact={}&state__exact={}">{}</a>', url, obj.pk, state, count
        )

    @admin.display(description="delivered")
    def delivered(self, obj: Any) -> str:
        return self._deliveries_link(obj, "succeeded", obj.n_delivered)

    @admin.display(description="pending")
    def pending(self, obj: Any) -> str:
        return self._deliveries_link(obj, "pending", obj.n_pending)

    @admin.display(description="failed")
    def failed(self, obj: Any) -> str:
        return self._deliveries_link(obj, "failed", obj.n_failed)

    @admin.display(description="signing secret")
    def secret_hint(self, obj: Endpoint) -> str:
        """Its end only: the whole secret is shown once, when the endpoint is added."""
        return f"whsec_…{obj.secret[-4:]}" if obj.secret else "—"

    def save_model(self, request: HttpRequest, obj: Endpoint, form: Any, change: bool) -> None:
        if obj.is_active:
            obj.disabled_reason = ""
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: Endpoint, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The secret on this one page, as a new API token is shown: never in a message
        (Django keeps those in a cookie), never in a later page."""
        return shown_once(
            self,
            request,
            "admin/actions/endpoint/issued.html",
            title=f"Webhook endpoint {obj.url} added",
            endpoint=obj,
        )

    @admin.action(description="Redeliver the failed deliveries of the selected endpoints")
    def redeliver_failed(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        ids = Delivery.objects.filter(endpoint__in=queryset, state=Delivery.State.FAILED)
        count = redeliver(delivery_ids=ids.values_list("pk", flat=True))
        self.message_user(request, f"Queued {count} deliveries again.")


@admin.register(Delivery)
class DeliveryAdmin(SelectionCheckedAdmin[Delivery]):
    list_display = [
        "id",
        "event_type",
        "event_id",
        "endpoint",
        "state",
        "attempts",
        "last_status_code",
        "response_excerpt",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["state", "endpoint", "event__type"]
    list_select_related = ["event", "endpoint"]
    readonly_fields = [f.name for f in Delivery._meta.fields] + ["payload"]
    actions = ["redeliver_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="type")
    def event_type(self, obj: Delivery) -> str:
        return obj.event.type

    @admin.display(description="event id")
    def event_id(self, obj: Delivery) -> str:
        return obj.event.event_id

    @admin.display(description="response")
    def response_excerpt(self, obj: Delivery) -> str:
        text = obj.last_response or obj.last_error
        return text[:80] + ("…" if len(text) > 80 else "")

    @admin.display(description="payload")
    def payload(self, obj: Delivery) -> Any:
        return obj.event.payload

    @admin.action(description="Redeliver the selected deliveries")
    def redeliver_selected(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = redeliver(delivery_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"Queued {count} deliveries again (same event ids).")


@admin.register(Event)
class EventAdmin(SelectionCheckedAdmin[Event]):
    list_display = ["id", "type", "event_id", "item", "created_at"]
    list_filter = ["type"]
    raw_id_fields = ["item"]
    readonly_fields = ["public_id", "type", "item", "schema_version", "payload", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
