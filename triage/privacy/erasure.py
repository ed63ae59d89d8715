"""Removing the copies of items' texts and metadata that other tables hold.

Where an item's text or metadata lives, besides the item row:
- its cached embeddings (a vector is derived from the text and can leak it);
- its training examples (a copy of the text, masked or not);
- the payloads of its events (`data.item.text` and `data.item.metadata`), which the
  events feed serves and deliveries send; a receiver's answer to a delivery
  (`last_response`) may echo the text back;
- what analysts wrote about it in free text: a decision's comment, a skip's or an
  escalation's note (they quote the customer as often as not).

Predictions, the rest of reviews, review tasks, audit samples and the audit log hold none of it
(labels, confidences, who and when); model versions hold probabilities, labels and
example ids, never texts. Forget and retention both call erase_copies inside their own
transaction, then mark the item rows.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from triage.actions.models import Delivery, Event
from triage.models import Embedding, HandOff, Review
from triage.training.models import TrainingExample


@dataclass
class Erased:
    """How many rows held a copy, and what was done to them."""

    embeddings: int = 0
    training_examples: int = 0
    event_payloads: int = 0
    delivery_responses: int = 0
    analyst_notes: int = 0

    def add(self, other: "Erased") -> None:
        self.embeddings += other.embeddings
        self.training_examples += other.training_examples
        self.event_payloads += other.event_payloads
        self.delivery_responses += other.delivery_responses
        self.analyst_notes += other.analyst_notes


def scrubbed_payload(payload: dict[str, Any], *, reason: str) -> dict[str, Any]:
    """The event payload without the item's text and metadata.

    The fields stay (an empty text, an empty object) so receivers of schema version 1
    still parse it; `text_removed` says why ("forgotten" or "retention").
    """
    data = dict(payload.get("data") or {})
    item = data.get("item")
    if isinstance(item, dict):
        data["item"] = item | {"text": "", "metadata": {}, "text_removed": reason}
    return payload | {"data": data}


def erase_copies(item_ids: Sequence[int], *, reason: str) -> Erased:
    """Delete the items' embeddings and training examples, scrub their events' payloads,
    the answers their deliveries got and the analysts' comments and notes on them. Call
    inside a transaction."""
    ids = list(item_ids)
    erased = Erased()
    erased.embeddings, _ = Embedding.objects.filter(item_id__in=ids).delete()
    erased.training_examples, _ = TrainingExample.objects.filter(item_id__in=ids).delete()
    events = list(Event.objects.filter(item_id__in=ids).only("pk", "payload"))
    for event in events:
        event.payload = scrubbed_payload(event.payload, reason=reason)
    Event.objects.bulk_update(events, ["payload"], batch_size=500)
    erased.event_payloads = len(events)
    erased.delivery_responses = (
        Delivery.objects.filter(event__in=[e.pk for e in events])
        .exclude(last_response="", last_error="")
        .update(last_response="", last_error="")
    )
    erased.analyst_notes = Review.objects.filter(item_id__in=ids).exclude(comment="").update(
        comment=""
    ) + HandOff.objects.filter(task__item_id__in=ids).exclude(note="").update(note="")
    return erased
