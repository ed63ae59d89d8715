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


@register.filter
def isodate(value: Any) -> datetime | None:
    """An ISO timestamp from the metrics JSON, as a datetime for |date."""
    if not value:
        return None
    return datetime.fromisoformat(str(value))


@register.filter
def delta_points(value: Any, digits: int = 1) -> str:
    """A signed difference of two shares in percentage points: 0.031 -> "+3.1 pt"."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:+.{int(digits)}f} pt"


@register.filter
def shade(share: Any) -> str:
    """A CSS class darkening with a share (0–1) in tenths: the confusion matrix's cells.
    Classes, not inline styles, which the Content-Security-Policy refuses."""
    if share is None or share == "":
        return "shade-0"
    return f"shade-{min(10, max(0, round(float(share) * 10)))}"


@register.filter
def category_name(slug: Any) -> str:
    """A category's name from its slug (the stored metrics key by slug); the slug if gone."""
    from triage.models import Category

    name = Category.objects.filter(slug=slug).values_list("name", flat=True).first()
    return name or str(slug)
