"""The API: POST /api/items, GET /api/items/<external_id>, GET /api/metrics.

Authentication is a bearer token; only its sha256 is stored (ApiToken).
Errors are JSON with a message naming what was wrong.
"""

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import services
from .intake import InvalidItems, parse_items
from .models import ApiToken, Item
from .monitoring.metrics import metrics_snapshot
from .text import normalize_external_id


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def reject_non_json_constant(name: str) -> None:
    # Python accepts NaN and Infinity, JSON does not, and neither database can store them.
    raise ValueError(f"{name} is not valid JSON")


def token_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            response = error(401, "missing bearer token: send 'Authorization: Bearer <token>'")
            response["WWW-Authenticate"] = "Bearer"
            return response
        api_token = ApiToken.authenticate(token.strip())
        if api_token is None:
            response = error(401, "invalid or revoked API token")
            response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=timezone.now())
        return view(request, *args, **kwargs)

    return wrapper


def item_json(item: Item) -> dict[str, Any]:
    prediction = item.latest_prediction()
    return {
        "external_id": item.external_id,
        "status": item.status,
        "received_at": item.received_at.isoformat(),
        "prediction": (
            {
                "label": prediction.label.slug,
                "confidence": round(prediction.confidence, 4),
                "model_version": prediction.model_version_id,
                "scores": prediction.scores,
            }
            if prediction
            else None
        ),
        "decision": (
            {
                "route": prediction.route,
                "reason": prediction.reason,
                "threshold": prediction.threshold,
            }
            if prediction
            else None
        ),
        "final_category": item.final_category.slug if item.final_category else None,
        "decided_by": item.decided_by or None,
    }


@csrf_exempt
@require_POST
@token_required
def items_collection(request: HttpRequest) -> HttpResponse:
    if request.content_type != "application/json":
        return error(415, "send JSON with 'Content-Type: application/json'")
    try:
        payload = json.loads(request.body, parse_constant=reject_non_json_constant)
    except RecursionError:
        return error(400, "malformed JSON: nested too deeply")
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN / Infinity
        return error(400, f"malformed JSON: {exc}")
    is_batch = isinstance(payload, list)
    raws = payload if is_batch else [payload]
    if is_batch and not raws:
        return error(400, "empty list: send one item or a list of 1 to 1,000 items")
    if len(raws) > settings.TRIAGE_MAX_BATCH:
        return error(
            400, f"batch of {len(raws):,} items; the limit is {settings.TRIAGE_MAX_BATCH:,}"
        )
    try:
        items = parse_items(raws)
    except InvalidItems as exc:
        return error(
            400,
            f"invalid item(s); nothing was stored: {exc}",
            errors=[e.as_dict() for e in exc.errors],
        )
    try:
        result = services.ingest_items(items=items, source=Item.Source.API)
    except services.NotConfigured as exc:
        return error(503, f"{exc}; nothing was stored")
    except services.IngestConflict as exc:
        return error(
            409,
            f"conflict; nothing was stored: {exc}",
            conflicts=[{"index": i, "external_id": e} for i, e in exc.conflicts],
        )
    # Re-read so a classification that already ran (in-process tasks) is shown.
    fresh = Item.objects.in_bulk([i.pk for i in result.items])
    by_eid = {item.external_id: item for item in fresh.values()}
    body = [item_json(by_eid[i.external_id]) for i in items if i.external_id in by_eid]
    body = list({b["external_id"]: b for b in body}.values())
    status = 201 if result.created else 200
    if is_batch:
        return JsonResponse(
            {"created": len(result.created), "existing": len(result.existing), "items": body},
            status=status,
        )
    return JsonResponse(body[0], status=status)


@require_GET
@token_required
def item_detail(request: HttpRequest, external_id: str) -> HttpResponse:
    # Stored ids are NFC-normalised and stripped (see intake): look up the same form.
    external_id = normalize_external_id(external_id)
    item = Item.objects.select_related("final_category").filter(external_id=external_id).first()
    if item is None:
        return error(404, f"no item with external_id {external_id!r}")
    return JsonResponse(item_json(item))


@require_GET
@token_required
def metrics(request: HttpRequest) -> HttpResponse:
    """Certified thresholds and automation, per category and pooled (see metrics_snapshot)."""
    return JsonResponse(metrics_snapshot())
