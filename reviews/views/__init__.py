"""The analysts' pages: the queue and its card (queue), their own decisions (decisions)."""

from reviews.views.decisions import change, change_all, decision, my_decisions
from reviews.views.queue import claim, decide, escalate, heartbeat, queue, skip, undo
from triage.access import is_blind

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
