"""Number formatting for the cockpit: rounded for people, never a raw float."""

from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def pct(value: Any, digits: int = 1) -> str:
    """0.9234 -> "92.3%"; None -> "—"."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def num(value: Any, digits: int = 3) -> str:
    if value is None or value == "":
        return "—"
    return f"{float(value):.{int(digits)}f}"


@register.filter
def age(moment: datetime | None) -> str:
    """How long ago, in the largest sensible unit: "3 d", "5 h", "12 min"."""
    if moment is None:
        return "—"
    seconds = max(0.0, (timezone.now() - moment).total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 60:.0f} min"


@register.filter
def pair(values: tuple[object, object], index: int) -> object:
    return values[int(index)]


@register.filter
def shown(value: object) -> str:
    """An audit-log value as a person reads it."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)


@register.filter
def points(value: Any, digits: int = 1) -> str:
    """A difference of two shares, unsigned, in percentage points: -0.12 -> "12.0"."""
    if value is None or value == "":
        return "—"
    return f"{abs(float(value)) * 100:.{int(digits)}f}"
