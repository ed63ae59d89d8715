"""The API's request and response schemas: what OpenAPI at /api/docs shows clients."""

from typing import Any, Literal

from ninja import Field, Schema


class ItemIn(Schema):
    external_id: str = Field(max_length=255, description="Your id; ingest is idempotent on it.")
    text: str = Field(min_length=1, description="At most TRIAGE_MAX_TEXT_CHARS characters.")
    metadata: dict[str, Any] = Field(default_factory=dict)


class PredictionOut(Schema):
    label: str
    confidence: float
    model_version: int | None
    scores: list[dict[str, Any]]


class DecisionOut(Schema):
    route: Literal["auto", "review"]
    reason: str
    threshold: float | None


class ItemOut(Schema):
    external_id: str
    status: Literal["received", "routed", "in_review", "resolved"]
    received_at: str
    prediction: PredictionOut | None
    decision: DecisionOut | None
    final_category: str | None
    decided_by: str | None


class RefusedOut(Schema):
    index: int
    external_id: str | None
    field: str
    message: str


class BatchOut(Schema):
    created: int
    existing: int
    items: list[ItemOut]
    refused: list[RefusedOut] = Field(
        default_factory=list,
        description="Items refused one by one (a text over the limit); the rest were stored.",
    )


class FieldErrorOut(Schema):
    index: int | None = None
    field: str
    message: str


class ErrorOut(Schema):
    error: str
    errors: list[FieldErrorOut] | None = None


class EventOut(Schema):
    id: str = Field(description="evt_…; the webhook-id header of its deliveries.")
    type: str
    schema_version: int
    timestamp: str
    data: dict[str, Any]


class EventsPage(Schema):
    events: list[EventOut]
    next: str = Field(description="Pass as `after` to read on; unchanged when nothing is new.")
    has_more: bool


ITEM_BODY_SCHEMA = ItemIn.model_json_schema()
ITEM_BODY_SCHEMA.pop("title", None)
