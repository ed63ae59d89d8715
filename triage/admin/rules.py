"""The admin for rules applied before the model."""

from typing import Any

from django import forms
from django.contrib import admin

from triage.admin.base import AuditedAdmin
from triage.routing import policy as routing
from triage.routing.models import Rule


class RuleForm(forms.ModelForm[Rule]):
    keywords = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="One per line; matched case-insensitively anywhere in the text.",
    )
    metadata_values = forms.JSONField(
        required=False,
        help_text='A value or a JSON list of values, e.g. ["vip", "press"]. true is not "true".',
    )

    class Meta:
        model = Rule
        fields = [
            "name",
            "position",
            "is_active",
            "condition",
            "keywords",
            "pattern",
            "metadata_field",
            "metadata_values",
            "action",
            "category",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and isinstance(self.instance.keywords, list):
            self.initial["keywords"] = "\n".join(self.instance.keywords)

    def clean_keywords(self) -> list[str]:
        raw: str = self.cleaned_data.get("keywords") or ""
        return [line.strip() for line in raw.splitlines() if line.strip()]

    def clean_metadata_values(self) -> list[object]:
        value = self.cleaned_data.get("metadata_values")
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        condition = data.get("condition")
        if condition == Rule.Condition.KEYWORDS and not data.get("keywords"):
            self.add_error("keywords", "Give at least one keyword.")
        if condition == Rule.Condition.REGEX:
            pattern = data.get("pattern") or ""
            if not pattern:
                self.add_error("pattern", "Give a regular expression.")
            else:
                try:
                    routing.compile_pattern(pattern)
                except routing.RuleSyntaxError as exc:
                    self.add_error("pattern", f"This regular expression does not compile: {exc}.")
        if condition == Rule.Condition.METADATA:
            if not data.get("metadata_field"):
                self.add_error("metadata_field", "Name the metadata field.")
            if not data.get("metadata_values"):
                self.add_error("metadata_values", "Give at least one value.")
        if data.get("action") == Rule.Action.ROUTE and not data.get("category"):
            self.add_error("category", "A rule that routes needs a category.")
        return data


@admin.register(Rule)
class RuleAdmin(AuditedAdmin[Rule]):
    form = RuleForm
    audit_action = "rule"
    # Not the hit counters: routing bumps them, they are not an admin's change.
    audit_fields = [
        f.name for f in Rule._meta.concrete_fields if f.name not in {"hits", "last_hit_at"}
    ]
    list_display = ["name", "position", "is_active", "condition", "action", "category", "hits"]
    list_editable = ["position", "is_active"]
    readonly_fields = ["hits", "last_hit_at"]
