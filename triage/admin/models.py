from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from triage.admin.base import AuditedAdmin, ReadOnlyAdmin, SelectionCheckedAdmin, shown_once
from triage.cockpit.versions import status_of
from triage.models import (
    ApiToken,
    AuditLog,
    Category,
    Item,
    ModelVersion,
    Prediction,
    RoutingPolicy,
    actor_name,
)
from triage.routing.derive import rule_for_category


def _actor(request: HttpRequest) -> str:
    return actor_name(request.user)


@admin.register(Category)
class CategoryAdmin(AuditedAdmin[Category]):
    audit_action = "category"
    # The revision changes on every save (it keys the cached routing policy): not a change.
    audit_fields = [f.name for f in Category._meta.concrete_fields if f.name != "revision"]

    list_display = [
        "slug",
        "name",
        "hotkey",
        "display_order",
        "action_queue",
        "threshold",
        "target_precision",
        "routing_now",
        "is_active",
    ]
    list_editable = ["threshold", "target_precision", "is_active"]
    prepopulated_fields = {"slug": ["name"]}

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        # A form (or script) that leaves out the button order keeps the stored one.
        if db_field.name == "display_order" and field is not None:
            field.required = False
        return field

    def get_readonly_fields(self, request: HttpRequest, obj: Category | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.is_in_use():
            fields.append("slug")
        return fields

    def get_prepopulated_fields(
        self, request: HttpRequest, obj: Category | None = None
    ) -> dict[str, Any]:
        if obj is not None and obj.is_in_use():
            return {}
        return dict(super().get_prepopulated_fields(request, obj))

    @admin.display(description="routing with the champion")
    def routing_now(self, obj: Category) -> str:
        champion = ModelVersion.objects.champion()
        # Per row, but certified once: the derivation is cached until an input changes.
        report = rule_for_category(obj, version=champion)
        rule = report.rule
        if champion is None:
            return "cold start: every item goes to review"
        if rule.threshold is None:
            return f"never auto-acts: {rule.note}"
        coverage = "" if report.coverage is None else f", automates {report.coverage:.0%}"
        if rule.mode == "target_precision":
            return f"threshold {rule.threshold:.3f} (derived{coverage}): {rule.note}"
        return f"threshold {rule.threshold:.3f} (raw{coverage})"


@admin.register(RoutingPolicy)
class RoutingPolicyAdmin(AuditedAdmin[RoutingPolicy]):
    audit_action = "policy"
    # updated_at and revision change on every save: they would show as a change in every
    # entry.
    audit_fields = [
        f.name
        for f in RoutingPolicy._meta.concrete_fields
        if f.name not in {"updated_at", "revision"}
    ]

    list_display = [
        "__str__",
        "target_precision",
        "delta",
        "certification",
        "default_threshold",
        "audit_rate",
        "audit_floor",
        "blind_review",
        "queue_order",
        "reroute_waiting",
        "min_support",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not RoutingPolicy.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def audit_target(self, obj: RoutingPolicy) -> str:
        return "routing policy"


@admin.register(ModelVersion)
class ModelVersionAdmin(SelectionCheckedAdmin[ModelVersion]):
    """Read-only records. Promote and roll back are the cockpit's, behind its comparison
    and confirmation: the actions here only lead there, so there is one write path and
    one place that states what the change will do."""

    list_display = [
        "__str__",
        "state",
        "macro_f1_rounded",
        "encoder",
        "created_at",
        "gate_decision",
    ]
    list_filter = ["status"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    actions = ["promote", "roll_back"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    # Predictions point at their version: a deleted version would orphan the record of
    # which model decided what. Versions are retired or rejected, never deleted.
    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="state", ordering="status")
    def state(self, obj: ModelVersion) -> str:
        # The cockpit's words: a rolled-back version is not "rejected" by the gate.
        return status_of(obj).label

    @admin.display(description="macro-F1")
    def macro_f1_rounded(self, obj: ModelVersion) -> str:
        return "—" if obj.macro_f1 is None else f"{obj.macro_f1:.3f}"

    @admin.action(description="Promote the selected version to champion (confirm in the cockpit)")
    def promote(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion]
    ) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return None
        return redirect("cockpit:promote", pk=queryset.get().pk)

    @admin.action(description="Roll back to the previous champion (confirm in the cockpit)")
    def roll_back(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> HttpResponse:
        return redirect("cockpit:rollback")


@admin.register(Item)
class ItemAdmin(ReadOnlyAdmin[Item]):
    list_display = ["external_id", "status", "final_category", "decided_by", "received_at"]
    list_filter = ["status", "final_category", "source"]
    search_fields = ["external_id", "text"]


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdmin[Prediction]):
    list_display = ["item", "label", "confidence", "route", "reason", "model_version"]
    list_filter = ["route", "reason", "label"]
    raw_id_fields = ["item"]


class ApiTokenForm(forms.ModelForm[ApiToken]):
    scopes = forms.MultipleChoiceField(
        choices=ApiToken.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=list(ApiToken.DEFAULT_SCOPES),
        help_text="What the token may call; a request outside them gets a 403.",
    )

    class Meta:
        model = ApiToken
        fields = ["name", "scopes", "revoked_at"]

    def clean_scopes(self) -> list[str]:
        return ApiToken.clean_scopes(self.cleaned_data["scopes"])


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin[ApiToken]):
    form = ApiTokenForm
    audit_action = "token"
    # Never the hash: the log says which token changed, not anything derived from its value.
    audit_fields = ["name", "prefix", "scopes", "created_at", "revoked_at"]
    list_display = ["name", "prefix", "scope_list", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes) or "none"

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # New token: generated here; only its hash is stored. The plain value rides on
        # this request's object to response_add, which shows it once; it is never put
        # in a message (the default message storage is a cookie) or the session.
        token, plain = ApiToken.issue(obj.name, scopes=obj.scopes)
        obj.pk, obj.token_hash, obj.prefix = token.pk, token.token_hash, token.prefix
        obj.created_at, obj.scopes = token.created_at, token.scopes
        obj._state.adding = False
        obj._issued_value = plain  # type: ignore[attr-defined]
        self._record(request, self.audit_target(obj), None, self.audit_snapshot(obj))

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        plain = getattr(obj, "_issued_value", None)
        if plain is None:
            return super().response_add(request, obj, post_url_continue)
        return shown_once(
            self,
            request,
            "admin/triage/apitoken/issued.html",
            title=f"API token {obj.name!r} created",
            token=obj,
            plain=plain,
        )

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        with transaction.atomic():
            tokens = list(queryset.select_for_update().filter(revoked_at__isnull=True))
            for token in tokens:
                before = self.audit_snapshot(token)
                token.revoked_at = timezone.now()
                token.save(update_fields=["revoked_at"])
                self._record(request, self.audit_target(token), before, self.audit_snapshot(token))
        self.message_user(request, f"Revoked {len(tokens)} token(s).")


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin[AuditLog]):
    list_display = ["at", "actor", "action", "detail"]
    list_filter = ["action"]
