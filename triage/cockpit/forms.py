from django import forms
from django.core.exceptions import ValidationError

from triage.cockpit.preview import Setting
from triage.models import Category


class RuleForm(forms.Form):
    """A category's rule as the admin tries it: a target precision or a raw threshold."""

    MODES = [
        ("target", "Target precision"),
        ("threshold", "Raw threshold"),
        ("inherit", "The global policy"),
    ]

    mode = forms.ChoiceField(choices=MODES, widget=forms.RadioSelect)
    target = forms.FloatField(label="Target precision", required=False)
    threshold = forms.FloatField(label="Raw threshold", required=False)

    def clean_target(self) -> float | None:
        value: float | None = self.cleaned_data.get("target")
        if value is None:
            return None
        if not 0 < value <= 1:
            raise ValidationError(
                f"Target precision must be above 0 and at most 1 (got {value:g})."
            )
        # Whatever else the stored field demands (e.g. a floor) applies here too.
        try:
            Category._meta.get_field("target_precision").run_validators(value)
        except ValidationError as exc:
            raise ValidationError([f"Target precision: {m}" for m in exc.messages]) from None
        return value

    def clean_threshold(self) -> float | None:
        value: float | None = self.cleaned_data.get("threshold")
        if value is not None and not 0 <= value <= 1:
            raise ValidationError(f"Raw threshold must be between 0 and 1 (got {value:g}).")
        return value

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        mode = data.get("mode")
        if mode == "target" and data.get("target") is None and "target" not in self.errors:
            self.add_error("target", "Target precision is required in this mode.")
        if mode == "threshold" and data.get("threshold") is None and "threshold" not in self.errors:
            self.add_error("threshold", "Raw threshold is required in this mode.")
        return data

    def setting(self) -> Setting:
        data = self.cleaned_data
        if data["mode"] == "target":
            return Setting(target=data["target"], threshold=None)
        if data["mode"] == "threshold":
            return Setting(target=None, threshold=data["threshold"])
        return Setting(target=None, threshold=None, inherit=True)

    @classmethod
    def initial_for(cls, setting: Setting) -> dict[str, object]:
        mode = "inherit" if setting.inherit else "target" if setting.target else "threshold"
        return {
            "mode": mode,
            "target": setting.target,
            "threshold": setting.threshold,
        }


class ResumeForm(forms.Form):
    reason = forms.CharField(
        label="Reason for resuming", max_length=500, widget=forms.Textarea(attrs={"rows": 2})
    )
    confirm_below_target = forms.BooleanField(
        required=False,
        label="I know its audited precision is still below target, and resume it anyway",
    )
