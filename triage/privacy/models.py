"""The admins' own masking patterns.

Imported by triage.models so Django registers the model in the triage app (its
migration lives there).
"""

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from triage.routing import policy as routing


def validate_mask_pattern(value: str) -> None:
    """A pattern must compile on RE2 (linear time, like the rules) and match something.

    A pattern that matches the empty string (`a*`) would put a label between every two
    characters of every text; it is refused rather than silently skipped.
    """
    try:
        compiled = routing.compile_pattern(value)
    except routing.RuleSyntaxError as exc:
        raise ValidationError(
            "This regular expression does not compile on RE2: %(reason)s.",
            params={"reason": exc},
        ) from None
    if compiled.search("") is not None:
        raise ValidationError(
            "This regular expression matches the empty string; make it match at least "
            "one character (e.g. use + instead of *)."
        )


class MaskPattern(models.Model):
    """A pattern an admin adds to the built-in ones (e-mail, phone, card, IBAN).

    Matches are replaced by "[label]" wherever masking applies. Patterns run on RE2,
    case-insensitively, like the rules' regular expressions.
    """

    name = models.CharField(max_length=100, unique=True)
    pattern = models.CharField(
        max_length=500,
        validators=[validate_mask_pattern],
        help_text="RE2 syntax, matched case-insensitively, e.g. \\bCASE-\\d{6}\\b.",
    )
    label = models.SlugField(
        max_length=40, help_text='What a match is replaced by, in brackets: "case_number".'
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
