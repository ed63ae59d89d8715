from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import training
from .ml.heads import ArtifactError
from .models import (
    ApiToken,
    AuditLog,
    Category,
    Item,
    ModelVersion,
    Prediction,
    RoutingPolicy,
    actor_name,
)
from .policy import HoldoutPredictions, rule_for_category


def _actor(request: HttpRequest) -> str:
    return actor_name(request.user)


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin[Category]):
    list_display = [
        "slug",
        "name",
        "action_queue",
        "threshold",
        "target_precision",
        "routing_now",
        "is_active",
    ]
    list_editable = ["threshold", "target_precision", "is_active"]
    prepopulated_fields = {"slug": ["name"]}
    # Webhooks are Endpoints now (Actions → Endpoints, filtered by category), signed and
    # retried; the old per-category URL is not offered, so nobody relies on it.
    exclude = ["webhook_url"]

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
        holdout = HoldoutPredictions.from_json(champion.holdout) if champion else None
        report = rule_for_category(obj, policy=RoutingPolicy.current(), holdout=holdout)
        rule = report.rule
        if champion is None:
            return "cold start: every item goes to review"
        if rule.threshold is None:
            return f"never auto-acts: {rule.note}"
        coverage = "" if report.coverage is None else f", automates {report.coverage:.0%}"
        if rule.mode == "target_precision":
            return f"threshold {rule.threshold:.3f} (derived{coverage}): {rule.note}"
        return f"threshold {rule.threshold:.3f} (raw{coverage})"

    def save_model(self, request: HttpRequest, obj: Category, form: object, change: bool) -> None:
        super().save_model(request, obj, form, change)
        AuditLog.record(
            actor=_actor(request), action="category", slug=obj.slug, threshold=obj.threshold
        )


@admin.register(RoutingPolicy)
class RoutingPolicyAdmin(admin.ModelAdmin[RoutingPolicy]):
    list_display = [
        "__str__",
        "target_precision",
        "delta",
        "certification",
        "default_threshold",
        "audit_rate",
        "min_support",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not RoutingPolicy.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: RoutingPolicy, form: object, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        AuditLog.record(
            actor=_actor(request),
            action="policy",
            target_precision=obj.target_precision,
            delta=obj.delta,
            certification=obj.certification,
            default_threshold=obj.default_threshold,
            audit_rate=obj.audit_rate,
        )


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin[ModelVersion]):
    list_display = ["__str__", "status", "macro_f1", "encoder", "created_at", "gate_decision"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    actions = ["promote", "roll_back"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Promote the selected version to champion")
    def promote(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        version = queryset.get()
        try:
            training.promote_version(version=version, actor=_actor(request))
        except ArtifactError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{version} is now the champion.")

    @admin.action(description="Roll back to the previous champion")
    def roll_back(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        try:
            version = training.rollback(actor=_actor(request))
        except (training.RetrainError, ArtifactError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"Rolled back: {version} is the champion again.")


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin[Item]):
    list_display = ["external_id", "status", "final_category", "decided_by", "received_at"]
    list_filter = ["status", "final_category", "source"]
    search_fields = ["external_id", "text"]
    readonly_fields = ["received_at", "decided_at"]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin[Prediction]):
    list_display = ["item", "label", "confidence", "route", "reason", "model_version"]
    list_filter = ["route", "reason", "label"]
    raw_id_fields = ["item"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    list_display = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    def save_model(self, request: HttpRequest, obj: ApiToken, form: object, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # New token: generate it here and show it once; only its hash is stored.
        token, plain = ApiToken.issue(obj.name)
        obj.pk = token.pk
        self.message_user(
            request,
            f"Token for {obj.name}: {plain} — copy it now, it will not be shown again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        from django.utils import timezone

        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).")


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin[AuditLog]):
    list_display = ["at", "actor", "action", "detail"]
    list_filter = ["action"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
