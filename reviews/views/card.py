"""What the review card shows: the true reason, the text (collapsed when long), metadata."""

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from triage.access import is_blind
from triage.models import Category, HandOff, Prediction, ReviewTask
from triage.privacy.masking import for_analysts
from triage.routing.policy import first_matching_rule
from triage.routing.rules import active_item_rules

# Texts longer than this show their start and a "show all"; the decision buttons stay
# within a screen or two of the top whatever the length (up to TRIAGE_MAX_TEXT_CHARS).
COLLAPSE_AFTER_CHARS = 2000
# Where the model stops reading is approximated, not tokenized: the encoder reads
# TRIAGE_MAX_LENGTH tokens including two special ones, and its WordPiece tokens average
# about four characters of English prose. Tokenizing here would load the tokenizer in
# every web process; an approximate mark says what analysts need (the end is unread).
CHARS_PER_TOKEN = 4
# Where an item came from, in an analyst's words (not the stored value "api").
SOURCE_LABELS = {"api": "sent through the API", "import": "imported from a file"}
# With more categories than this, a type-ahead filter is shown above the buttons.
TYPE_AHEAD_FROM = 6


@dataclass(frozen=True)
class TextSegments:
    """The item's text cut for display: shown at once or behind "show all", and on
    either side of where the model stops reading.

    The card draws an item's text only through here (given the text masked for
    analysts, see card_context) and templates/reviews/_item_text.html.
    """

    shown_read: str
    shown_unread: str
    hidden_read: str
    hidden_unread: str
    model_stops_at: int | None
    length: int

    @property
    def mark_shown(self) -> bool:
        return self.model_stops_at is not None and not self.hidden_read

    @property
    def mark_hidden(self) -> bool:
        return self.model_stops_at is not None and bool(self.hidden_read)

    @property
    def length_display(self) -> str:
        return f"{self.length:,}"

    @property
    def collapsed(self) -> bool:
        return bool(self.hidden_read or self.hidden_unread)


def _snap_to_space(text: str, offset: int) -> int:
    """Move a cut back to just after the previous space (within 40 characters), so no
    word is split."""
    space = text.rfind(" ", max(0, offset - 40), offset)
    return space + 1 if space > 0 else offset


def text_segments(text: str) -> TextSegments:
    n = len(text)
    # Collapse only when it hides a good part: a text just over the limit stays whole.
    collapse = n
    if n > COLLAPSE_AFTER_CHARS * 5 // 4:
        collapse = _snap_to_space(text, COLLAPSE_AFTER_CHARS)
    stop = (settings.TRIAGE_MAX_LENGTH - 2) * CHARS_PER_TOKEN
    if stop >= n:
        return TextSegments(text[:collapse], "", text[collapse:], "", None, n)
    stop = _snap_to_space(text, stop)
    if stop <= collapse:
        return TextSegments(text[:stop], text[stop:collapse], "", text[collapse:], stop, n)
    return TextSegments(text[:collapse], "", text[collapse:stop], text[stop:], stop, n)


def percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def reason_text(
    task: ReviewTask, prediction: Prediction | None, names: dict[int, str], blind: bool
) -> str:
    """Why this task needs a person, in the words an analyst needs.

    Blind tasks say nothing that tells an audit apart, and under the blind-review policy
    no task says anything about the model (it would anchor the decision).
    """
    # Only the senior queue holds escalated tasks (an escalated audit keeps its reason).
    escalation = (
        HandOff.objects.filter(task=task, kind=HandOff.Kind.ESCALATE)
        .select_related("user")
        .order_by("-id")
        .first()
        if task.senior_only or task.reason == ReviewTask.Reason.ESCALATED
        else None
    )
    if escalation is not None:
        note = f": “{for_analysts(escalation.note)}”" if escalation.note else ""
        return f"Escalated by {escalation.user.get_username()}, who was not sure{note}"
    if blind:
        return ""
    reasons = ReviewTask.Reason
    label = names.get(prediction.label_id, "") if prediction else ""
    if task.reason == reasons.LOW_CONFIDENCE and prediction is not None:
        if prediction.reason == "target_unreachable":
            return (
                f"{label} never acts alone: there is not yet enough evidence that it meets its "
                "precision target, so every item suggested as it comes to a person"
            )
        if prediction.threshold is not None:
            return (
                f"{label} {percent(prediction.confidence)}: not sure enough to act alone "
                f"(needs {percent(prediction.threshold)})"
            )
    if task.reason == reasons.COLD_START:
        return (
            "Cold start: no model is trained yet; the suggestion is similarity to the "
            "category descriptions"
        )
    if task.reason == reasons.RULE:
        matched = first_matching_rule(active_item_rules(), task.item.text, task.item.metadata)
        name = f" “{matched.name}”" if matched else ""
        return f"The rule{name} sends items like this to a person"
    if task.reason == reasons.MODEL_UNAVAILABLE:
        return "The model could not score this item (admins have an alert); decide it by hand"
    if task.reason == reasons.CATEGORY_INACTIVE:
        which = label or "the chosen category"
        return f"{which} is switched off, so nothing is routed there automatically"
    if task.reason == reasons.SUSPENDED:
        return (
            f"{label or 'Its category'} is suspended: its audited precision fell below target, "
            "so people decide its items until it resumes"
        )
    if task.reason == reasons.SECOND_REVIEW:
        return "A second, independent look at a decision"
    if task.reason == reasons.DISAGREEMENT:
        return "Two analysts disagreed on this item: settle it"
    # Audits (shown only when not blind, i.e. never) and anything new.
    return "A person's decision is needed"


def ordered_categories() -> list[Category]:
    return list(Category.objects.filter(is_active=True).order_by("display_order", "pk"))


def card_context(
    task: ReviewTask | None, *, categories: list[Category] | None = None
) -> dict[str, Any]:
    """Everything _card.html needs for a task (or for no task). `categories`: the active
    ones in display order, when the caller has them already."""
    if task is None:
        return {"task": None}
    blind = is_blind(task)
    latest = task.item.latest_prediction()
    prediction = None if blind else latest
    categories = ordered_categories() if categories is None else categories
    names = {c.pk: c.name for c in categories}
    by_slug = {c.slug: c for c in categories}
    suggestions = [
        {"category": by_slug.get(s["label"]), "label": s["label"], "confidence": s["confidence"]}
        for s in (prediction.scores if prediction else [])
    ]
    top = suggestions[0]["category"] if suggestions else None
    reason = reason_text(task, latest, names, blind)
    summary = f"Task {task.pk}" + (f", {reason.split(':')[0].lower()}" if reason else "")
    if top is not None:
        summary += f"; suggested {top.name}, press Enter to accept"
    return {
        "task": task,
        "blind": blind,
        "prediction": prediction,
        "suggestions": suggestions,
        "top": top,
        "reason": reason,
        "summary": summary,
        # Masked whole, then cut: a pattern (an e-mail, a card number) could straddle a cut.
        "segments": text_segments(for_analysts(task.item.text)),
        "categories": categories,
        "type_ahead": len(categories) > TYPE_AHEAD_FROM,
        "metadata": [
            (
                key.replace("_", " ").strip().capitalize() or key,
                value if isinstance(value, str) else json.dumps(value, ensure_ascii=False),
            )
            for key, value in sorted(task.item.metadata.items())
        ],
        "source_label": SOURCE_LABELS.get(task.item.source, task.item.source),
        # Renew well before the lease runs out, at most every two minutes.
        "heartbeat_seconds": max(5, min(120, settings.TRIAGE_LEASE_SECONDS // 3)),
    }
