"""The admins' rules as the routing policy sees them, and their hit counts."""

from collections import Counter
from datetime import datetime

from django.db.models import F

from triage.routing import policy as routing
from triage.routing.models import Rule


def active_item_rules() -> tuple[routing.ItemRule, ...]:
    return tuple(
        routing.ItemRule(
            name=rule.name,
            route=routing.Route.AUTO if rule.action == Rule.Action.ROUTE else routing.Route.REVIEW,
            category=rule.category.slug if rule.category else None,
            keywords=tuple(rule.keywords) if rule.condition == Rule.Condition.KEYWORDS else (),
            pattern=rule.pattern if rule.condition == Rule.Condition.REGEX else "",
            metadata_field=(
                rule.metadata_field if rule.condition == Rule.Condition.METADATA else ""
            ),
            metadata_values=(
                tuple(rule.metadata_values) if rule.condition == Rule.Condition.METADATA else ()
            ),
        )
        for rule in Rule.objects.filter(is_active=True).select_related("category")
    )


def count_hits(hits: Counter[str], *, now: datetime) -> None:
    for name, count in hits.items():
        Rule.objects.filter(name=name).update(hits=F("hits") + count, last_hit_at=now)
