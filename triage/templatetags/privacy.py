"""`{{ text|masked }}`: personal data in a text as analysts may see it.

A builtin (settings.TEMPLATES), so templates need no {% load privacy %}. The result is
plain text, still escaped by the template (and by `linebreaksbr` after it).
"""

from django import template

from triage.privacy.masking import for_analysts

register = template.Library()


@register.filter
def masked(text: object) -> str:
    """E-mail addresses, phone numbers, cards, IBANs and admin patterns shown as their
    kind ("[email]"), unless TRIAGE_MASK_FOR_ANALYSTS is off."""
    return for_analysts("" if text is None else str(text))
