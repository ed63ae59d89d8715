"""What the API says of an item: GET /api/items/<id>, and each item of an ingest's answer.

While a second review or a disagreement is open on an item (triage.access.under_check),
its first decision is not final and is not shown. An audit is reported as the automatic
action it also is: no token learns which items are audited.
"""

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from triage.access import under_check
from triage.models import Item, Prediction, ReviewTask, among


def _answer(
    *,
    external_id: str,
    status: str,
    received_at: datetime,
    checking: bool,
    final_category: str | None,
    decided_by: str,
    prediction: dict[str, Any] | None,
) -> dict[str, Any]:
    reason = prediction["reason"] if prediction else None
    if reason == ReviewTask.Reason.AUDIT_SAMPLE:
        reason = "above_threshold"
    return {
        "external_id": external_id,
        "status": Item.Status.IN_REVIEW if checking else status,
        "received_at": received_at.isoformat(),
        "prediction": (
            {
                "label": prediction["label"],
                "confidence": round(prediction["confidence"], 4),
                "model_version": prediction["model_version"],
                "scores": prediction["scores"],
            }
            if prediction
            else None
        ),
        "decision": (
            {"route": prediction["route"], "reason": reason, "threshold": prediction["threshold"]}
            if prediction
            else None
        ),
        "final_category": final_category if not checking else None,
        "decided_by": (decided_by or None) if not checking else None,
    }


# The latest prediction's columns, and the keys _answer reads them by.
PREDICTION_COLUMNS = (
    "label__slug",
    "confidence",
    "model_version_id",
    "scores",
    "reason",
    "route",
    "threshold",
)
PREDICTION_KEYS = ("label", "confidence", "model_version", "scores", "reason", "route", "threshold")


def _answers(items: QuerySet[Item]) -> dict[str, dict[str, Any]]:
    """The answer for each of these items, by external id: two queries (the items, then
    their latest predictions) and no model objects, so a batch of 1,000 costs little."""
    # "under_check" is the annotation under_check() adds, unknown to the type checker.
    rows = list(
        under_check(items).values_list(  # type: ignore[misc]
            "pk",
            "external_id",
            "status",
            "received_at",
            "under_check",
            "final_category__slug",
            "decided_by",
        )
    )
    if not rows:
        return {}
    latest: dict[int, dict[str, Any]] = {}
    for item_id, *values in (
        Prediction.objects.filter(item_id__in=among([row[0] for row in rows]))
        .order_by("item_id", "-id")
        .values_list("item_id", *PREDICTION_COLUMNS)
    ):
        latest.setdefault(item_id, dict(zip(PREDICTION_KEYS, values, strict=True)))
    return {
        external_id: _answer(
            external_id=external_id,
            status=status,
            received_at=received_at,
            checking=checking,
            final_category=final_category,
            decided_by=decided_by,
            prediction=latest.get(pk),
        )
        for pk, external_id, status, received_at, checking, final_category, decided_by in rows
    }


def items_json(ids: list[int]) -> dict[str, dict[str, Any]]:
    """The answer for each item in `ids`, by external id (an ingest batch's answer)."""
    return _answers(Item.objects.filter(pk__in=among(ids))) if ids else {}


def item_json(external_id: str) -> dict[str, Any] | None:
    """The answer for the item with this external id (GET /api/items/<id>); None if none."""
    return _answers(Item.objects.filter(external_id=external_id)).get(external_id)


def received_json(external_id: str, received_at: datetime) -> dict[str, Any]:
    """item_json of an item this request has just stored: received, not yet classified."""
    return _answer(
        external_id=external_id,
        status=Item.Status.RECEIVED,
        received_at=received_at,
        checking=False,
        final_category=None,
        decided_by="",
        prediction=None,
    )
