"""GET /metrics: the Prometheus text exposition, for scrapers on an allowed network or
holding a token with the `metrics` scope."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from triage.api.auth import ScopeMissing, TokenRejected, scoped
from triage.models import ApiToken
from triage.monitoring.prometheus import scrape_registry

metrics_token = scoped(ApiToken.Scope.METRICS)


def from_allowed_network(request: HttpRequest) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.TRIAGE_METRICS_ALLOW)


@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    if not from_allowed_network(request):
        try:
            metrics_token(request)
        except TokenRejected as exc:
            response = JsonResponse({"error": str(exc)}, status=401)
            response["WWW-Authenticate"] = exc.challenge
            return response
        except ScopeMissing as exc:
            return JsonResponse({"error": str(exc), "missing_scope": exc.scope}, status=403)
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
