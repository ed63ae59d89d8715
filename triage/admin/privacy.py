"""The admins' masking patterns, audited like every other admin change."""

from django.contrib import admin

from triage.admin.base import AuditedAdmin
from triage.privacy.models import MaskPattern


@admin.register(MaskPattern)
class MaskPatternAdmin(AuditedAdmin[MaskPattern]):
    audit_action = "mask_pattern"
    list_display = ["name", "label", "pattern", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "label"]
