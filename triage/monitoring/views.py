"""GET /api/metrics: the live figures as JSON, for integrations and the admins' cockpit."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from triage.api import token_required

from .live import live_report


def _metrics(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"live": live_report().as_json()})


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Staff with a session (the cockpit) or any API token may read the metrics."""
    if request.user.is_authenticated and request.user.is_staff:
        return _metrics(request)
    return token_required(_metrics)(request)
