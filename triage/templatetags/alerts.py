from django import template
from django.db.models import QuerySet

from triage.monitoring.models import Alert

register = template.Library()


@register.simple_tag
def open_alerts() -> QuerySet[Alert]:
    return Alert.objects.filter(resolved_at__isnull=True)[:5]
