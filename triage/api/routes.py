"""The HTTP API on django-ninja: items in, the events feed and metrics out. OpenAPI at /api/docs.

Authentication is a bearer token with the endpoint's scope, rate-limited per token
(triage.api.auth); only the token's sha256 is stored (ApiToken).
Errors are JSON: {"error": "<what was wrong>"}, plus "errors" (each bad item's
index, field and message) or "conflicts" where that helps a client fix its request.
Item bodies are parsed by triage.api.intake (shared with the file import), so every
bad field of a 1,000-item batch is reported at once, by index.
"""

import json
import math
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from ninja import Field, NinjaAPI, Query, Schema, Status
from ninja.errors import Throttled
from ninja.errors import ValidationError as NinjaValidationError

from triage.actions.feed import MAX_LIMIT, FeedError, read_events
from triage.api import ingest as ingestion
from triage.api.answers import item_json, items_json, received_json
from triage.api.auth import (
    ScopeMissing,
    TokenRateThrottle,
    TokenRejected,
    TooManyFailures,
    scoped,
)
from triage.api.export import ExportError, start_export
from triage.api.intake import InvalidItems, parse_batch, too_deep_body
from triage.api.schemas import (
    ITEM_BODY_SCHEMA,
    BatchOut,
    ErrorOut,
    EventsPage,
    ItemOut,
)
from triage.models import ApiToken, Item
from triage.models.text import normalize_external_id
from triage.monitoring.summary import metrics_snapshot
from triage.web.middleware import database_unavailable

api = NinjaAPI(
    title="Triage API",
    version="1",
    description=(
        "Push items in (one, or a batch of up to 1,000) and read every decision back "
        "through the events feed. Send `Authorization: Bearer <token>`; a token needs the "
        "endpoint's scope (403 otherwise) and is rate-limited (429 with Retry-After)."
    ),
    # Each endpoint names its scope (auth=scoped(...)); one that does not refuses every token.
    auth=scoped(None),
    throttle=[TokenRateThrottle()],
    urls_namespace="api",
)


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


@api.exception_handler(TokenRejected)
def token_rejected(request: HttpRequest, exc: TokenRejected) -> HttpResponse:
    response = error(401, str(exc))
    response["WWW-Authenticate"] = exc.challenge
    return response


# The middleware's 503 + Retry-After, also when DEBUG is on (ninja would answer a 500
# with the traceback itself rather than let the exception reach the middleware).
@api.exception_handler(OperationalError)
@api.exception_handler(InterfaceError)
def database_gone(request: HttpRequest, exc: Exception) -> HttpResponse:
    return database_unavailable(request, exc)


@api.exception_handler(ScopeMissing)
def scope_missing(request: HttpRequest, exc: ScopeMissing) -> HttpResponse:
    return error(403, str(exc), missing_scope=exc.scope)


@api.exception_handler(Throttled)
def throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
    # Ninja adds Retry-After (whole seconds) to this answer.
    limit = settings.TRIAGE_API_RATE_LIMIT
    return error(429, f"too many requests for this token (limit {limit}); retry later")


@api.exception_handler(TooManyFailures)
def too_many_failures(request: HttpRequest, exc: TooManyFailures) -> HttpResponse:
    response = error(429, str(exc))
    response["Retry-After"] = str(max(1, math.ceil(exc.wait)))
    return response


@api.exception_handler(NinjaValidationError)
def invalid_parameters(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors = [
        {"field": str(e["loc"][-1]) if e.get("loc") else "(request)", "message": e["msg"]}
        for e in exc.errors
    ]
    return error(
        400,
        "invalid parameters: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
        errors=errors,
    )


def reject_non_json_constant(name: str) -> None:
    # Python accepts NaN and Infinity, JSON does not, and neither database can store them.
    raise ValueError(f"{name} is not valid JSON")


# --- Items -------------------------------------------------------------------


@api.post(
    "/items",
    response={
        200: ItemOut | BatchOut,
        201: ItemOut | BatchOut,
        400: ErrorOut,
        401: ErrorOut,
        403: ErrorOut,
        429: ErrorOut,
    },
    auth=scoped(ApiToken.Scope.INGEST),
    summary="Ingest one item or a batch of up to 1,000",
    description=(
        "201 when anything new was stored, 200 when every item already existed with the "
        "same text. 400 names each bad item's index and field (nothing is stored), except "
        "that in a batch an item whose text is over the limit is refused by itself (listed "
        "in `refused`) and the others are stored. 409 a "
        "conflicting external_id, 415 a body that is not JSON, 503 when no category exists. "
        "Classification is queued after the commit."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            ITEM_BODY_SCHEMA,
                            {"type": "array", "items": ITEM_BODY_SCHEMA, "maxItems": 1000},
                        ]
                    }
                }
            },
        }
    },
)
def ingest(request: HttpRequest) -> Any:
    if request.content_type != "application/json":
        return error(415, "send JSON with 'Content-Type: application/json'")
    try:
        payload = json.loads(request.body, parse_constant=reject_non_json_constant)
    except RecursionError:
        deep = too_deep_body(request.body.decode("utf-8", errors="replace"))
        if deep is None:
            return error(400, "malformed JSON: nested too deeply")
        return error(
            400,
            f"invalid item(s); nothing was stored: item {deep.index}: {deep.field}: {deep.message}",
            errors=[deep.as_dict()],
        )
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
        items, refused = parse_batch(raws)
    except InvalidItems as exc:
        return error(
            400,
            f"invalid item(s); nothing was stored: {exc}",
            errors=[e.as_dict() for e in exc.errors],
        )
    try:
        result = ingestion.ingest_items(items=items, source=Item.Source.API)
    except ingestion.NotConfigured as exc:
        return error(503, f"{exc}; nothing was stored")
    except ingestion.IngestConflict as exc:
        return error(
            409,
            f"conflict; nothing was stored: {exc}",
            conflicts=[{"index": i, "external_id": e} for i, e in exc.conflicts],
        )
    if result.received_at is not None and not settings.CELERY_TASK_ALWAYS_EAGER:
        # Stored by this request a moment ago, their classification queued for a worker
        # on commit (it embeds for far longer than this takes): received, as stored.
        by_eid = items_json(result.existing_ids)
        for external_id in dict.fromkeys(i.external_id for i in items):
            if external_id not in by_eid:
                by_eid[external_id] = received_json(external_id, result.received_at)
    else:
        # Re-read so a classification that already ran (in-process tasks) is shown.
        by_eid = items_json(result.created_ids + result.existing_ids)
    body = [by_eid[e] for e in dict.fromkeys(i.external_id for i in items) if e in by_eid]
    status = 201 if result.created_ids else 200
    if is_batch:
        # Built to BatchOut's shape here (tests/test_api_schema.py checks it): validating
        # 1,000 items through the schema again cost more than storing them.
        return api.create_response(
            request,
            {
                "created": len(result.created_ids),
                "existing": len(result.existing_ids),
                "items": body,
                "refused": [r.as_dict() for r in refused],
            },
            status=status,
        )
    return Status(status, body[0])


@api.get(
    "/items/{path:external_id}",
    response={200: ItemOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 429: ErrorOut},
    auth=scoped(ApiToken.Scope.READ),
    summary="One item: its status, prediction, decision and final category",
)
def item_detail(request: HttpRequest, external_id: str) -> Any:
    # Stored ids are NFC-normalised and stripped (see intake): look up the same form.
    external_id = normalize_external_id(external_id)
    answer = item_json(external_id)
    if answer is None:
        return error(404, f"no item with external_id {external_id!r}")
    return Status(200, answer)


# --- Events ------------------------------------------------------------------


class EventsQuery(Schema):
    after: str | None = Field(None, description="The `next` of the previous page.")
    limit: int = Field(100, ge=1, le=MAX_LIMIT)
    type: list[str] = Field(default_factory=list, description="Only these types (repeatable).")


@api.get(
    "/events",
    response={200: EventsPage, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 429: ErrorOut},
    auth=scoped(ApiToken.Scope.EVENTS),
    summary="Every committed event, in a stable order, from a cursor",
    description=(
        "Poll with the `next` of the previous answer as `after`: no event is ever skipped, "
        "even when transactions commit out of order. Each entry is the webhook payload."
    ),
)
def events_feed(request: HttpRequest, query: Query[EventsQuery]) -> Any:
    types = [t for value in query.type for t in value.split(",") if t]
    try:
        page = read_events(after=query.after, limit=query.limit, types=types)
    except FeedError as exc:
        return error(400, str(exc), errors=[{"field": exc.field, "message": str(exc)}])
    return Status(
        200,
        {
            "events": [event.payload for event in page.events],
            "next": page.next_cursor,
            "has_more": page.has_more,
        },
    )


# --- Metrics -----------------------------------------------------------------


@api.get(
    "/metrics",
    response={200: dict[str, Any], 401: ErrorOut, 403: ErrorOut, 429: ErrorOut},
    auth=scoped(ApiToken.Scope.METRICS),
    summary="Certified thresholds and automation, per category and pooled",
)
def metrics(request: HttpRequest) -> Any:
    """See triage.monitoring.metrics.metrics_snapshot for the fields."""
    return Status(200, metrics_snapshot())


# --- Export ------------------------------------------------------------------


class ExportQuery(Schema):
    dataset: str = Field(description="items, reviews or training")
    format: str = Field("csv", description="csv or jsonl")
    model_version: int | None = Field(
        None, description="With dataset=training: exactly the examples that version trained on."
    )


@api.get(
    "/export",
    response={200: str, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 429: ErrorOut},
    auth=scoped(ApiToken.Scope.EXPORT),
    summary="Items, reviews or training examples as CSV or JSON Lines, streamed",
    description=(
        "Streamed from a server-side cursor in constant memory. With `model_version`, the "
        "training set is rebuilt from that version's snapshot and checked against its "
        "digest first; 400 names a bad dataset, format or version."
    ),
)
def export(request: HttpRequest, query: Query[ExportQuery]) -> Any:
    try:
        result = start_export(
            dataset=query.dataset, format=query.format, model_version=query.model_version
        )
    except ExportError as exc:
        return error(400, str(exc), errors=[{"field": exc.field, "message": str(exc)}])
    response = StreamingHttpResponse(result.chunks, content_type=result.content_type)
    response["Content-Disposition"] = f'attachment; filename="{result.filename}"'
    return response
