"""The analysts' pages: the queue and its card (queue), their own decisions (decisions)."""

from reviews.views.card import is_blind
from reviews.views.decisions import change, change_all, decision, my_decisions
from reviews.views.queue import claim, decide, escalate, heartbeat, queue, skip, undo

__all__ = [
    "change",
    "change_all",
    "claim",
    "decide",
    "decision",
    "escalate",
    "heartbeat",
    "is_blind",
    "my_decisions",
    "queue",
    "skip",
    "undo",
]
