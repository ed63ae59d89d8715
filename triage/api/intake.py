"""Parsing of incoming items, shared by the HTTP API and the file import.

Every problem is reported with the item's position and the field, so a client
can fix a 1,000-item batch without guessing.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from triage.models.text import is_blank, normalize_external_id, unstorable_string

ALLOWED_FIELDS = frozenset({"external_id", "text", "metadata", "label"})
UNLABELLED_FIELDS = ALLOWED_FIELDS - {"label"}


@dataclass(frozen=True)
class Limits:
    """The TRIAGE_MAX_* limits of an item, read once per batch rather than per field."""

    text_chars: int
    metadata_bytes: int
    metadata_depth: int

    @classmethod
    def current(cls) -> "Limits":
        return cls(
            settings.TRIAGE_MAX_TEXT_CHARS,
            settings.TRIAGE_MAX_METADATA_BYTES,
            settings.TRIAGE_MAX_METADATA_DEPTH,
        )


@dataclass(frozen=True)
class ItemIn:
    external_id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    label: str | None = None


# An item refused on its own in a batch: nothing is wrong with the request, only with
# that one item's data (an email too long to keep), so the rest of the batch is stored.
TOO_LONG = "too_long"


@dataclass(frozen=True)
class FieldError:
    index: int
    field: str
    message: str
    code: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"index": self.index, "field": self.field, "message": self.message}


class InvalidItems(Exception):
    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"item {e.index}: {e.field}: {e.message}" for e in errors))


def unstorable_json(value: object) -> str | None:
    """Why a database cannot store this JSON value, or None.

    Walked with an explicit stack: a deeply nested document must not hit
    Python's recursion limit here.
    """
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, str):
            problem = unstorable_string(current)
            if problem:
                return problem
        elif isinstance(current, float) and not math.isfinite(current):
            return "must not contain NaN or Infinity"
        elif isinstance(current, dict):
            stack.extend(current.keys())
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return None


def too_deep_json(value: object, limit: int | None = None) -> str | None:
    """Why this JSON value is nested too deeply to accept, or None.

    Checked first, with an explicit stack: thousands of levels would otherwise exhaust
    the recursion of whatever walks the value next (the JSON encoder, the database
    adapter, the card), and an item stored that deep could not be decided.
    """
    limit = settings.TRIAGE_MAX_METADATA_DEPTH if limit is None else limit
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        children = list(current.values()) if isinstance(current, dict) else current
        assert isinstance(children, list)
        nested = [c for c in children if isinstance(c, dict | list)]
        if nested and depth >= limit:
            return f"is nested more than {limit} levels deep (TRIAGE_MAX_METADATA_DEPTH)"
        stack.extend((child, depth + 1) for child in nested)
    return None


def too_deep_body(text: str) -> FieldError | None:
    """Where a body too deep for the JSON parser nests too deeply: the item and its field
    (None when the deep part is not inside an item's field).

    Read only after the parser gave up (RecursionError), with a scan of the text that
    keeps a stack of open containers and the key each object is in.
    """
    stack: list[list[Any]] = []  # per open container: [kind, key or element count]
    last_string, i = "", 0
    while i < len(text):
        char = text[i]
        if char == '"':
            end = i + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            last_string, i = text[i + 1 : end], end
        elif char == ":" and stack and stack[-1][0] == "{":
            stack[-1][1] = last_string
        elif char == "," and stack and stack[-1][0] == "[":
            stack[-1][1] += 1
        elif char in "{[":
            stack.append([char, "" if char == "{" else 0])
            batch = stack[0][0] == "["
            item_level = 1 if batch else 0
            if len(stack) > item_level + 1 + settings.TRIAGE_MAX_METADATA_DEPTH:
                index = stack[0][1] if batch else 0
                if stack[item_level][0] != "{" or not stack[item_level][1]:
                    return None  # not inside an item's field: malformed, not an item
                return FieldError(
                    index,
                    stack[item_level][1],
                    f"is nested more than {settings.TRIAGE_MAX_METADATA_DEPTH} levels deep "
                    "(TRIAGE_MAX_METADATA_DEPTH)",
                )
        elif char in "}]" and stack:
            stack.pop()
        i += 1
    return None


def oversized_json(value: object, limit: int | None = None) -> str | None:
    """Why this JSON value is too big to store as metadata, or None.

    Measured as compact UTF-8 JSON, the form in which it is stored and sent on.
    """
    limit = settings.TRIAGE_MAX_METADATA_BYTES if limit is None else limit
    try:
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    except RecursionError:
        return "is nested too deeply"
    if size > limit:
        return f"is {size:,} bytes as JSON; the limit is {limit:,} (TRIAGE_MAX_METADATA_BYTES)"
    return None


def parse_item(
    raw: object, index: int, *, allow_label: bool = False, limits: Limits | None = None
) -> ItemIn | list[FieldError]:
    if not isinstance(raw, dict):
        return [FieldError(index, "(item)", "must be a JSON object")]
    limits = limits or Limits.current()
    errors: list[FieldError] = []
    allowed = ALLOWED_FIELDS if allow_label else UNLABELLED_FIELDS
    if not raw.keys() <= allowed:
        for key in sorted(set(raw) - allowed):
            errors.append(
                FieldError(index, key, f"unknown field; allowed: {', '.join(sorted(allowed))}")
            )

    external_id = raw.get("external_id")
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    if external_id is not None and not isinstance(external_id, str):
        errors.append(FieldError(index, "external_id", "must be a string"))
        external_id = None
    elif external_id is None or is_blank(external_id):
        errors.append(FieldError(index, "external_id", "is required"))
        external_id = None
    elif problem := unstorable_string(external_id):
        errors.append(FieldError(index, "external_id", problem))
        external_id = None
    else:
        # Normalised before the length check, so the limit applies to what is stored.
        external_id = normalize_external_id(external_id)
        if len(external_id) > 255:
            errors.append(FieldError(index, "external_id", "is longer than 255 characters"))

    text = raw.get("text")
    limit = limits.text_chars
    if text is None:
        errors.append(FieldError(index, "text", "is required"))
    elif not isinstance(text, str):
        errors.append(FieldError(index, "text", "must be a string"))
    elif len(text) > limit:
        errors.append(
            FieldError(
                index,
                "text",
                f"is {len(text):,} characters; the limit is {limit:,} (TRIAGE_MAX_TEXT_CHARS)",
                code=TOO_LONG,
            )
        )
    elif problem := unstorable_string(text):
        errors.append(FieldError(index, "text", problem))
    elif is_blank(text):
        shows = "" if not text.strip() else " (it has only invisible characters)"
        errors.append(FieldError(index, "text", f"must not be empty{shows}"))

    metadata = raw.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        errors.append(FieldError(index, "metadata", "must be a JSON object"))
    elif metadata and (
        problem := too_deep_json(metadata, limits.metadata_depth)
        or unstorable_json(metadata)
        or oversized_json(metadata, limits.metadata_bytes)
    ):
        errors.append(FieldError(index, "metadata", problem))

    label = raw.get("label")
    if label is not None and label != "" and not isinstance(label, str):
        errors.append(FieldError(index, "label", "must be a string"))

    if errors:
        return errors
    assert isinstance(external_id, str) and isinstance(text, str) and isinstance(metadata, dict)
    return ItemIn(
        external_id=external_id,
        text=text,
        metadata=metadata,
        label=(label.strip() or None) if isinstance(label, str) else None,
    )


@dataclass(frozen=True)
class Refusal:
    """An item of a batch refused on its own, and why."""

    index: int
    external_id: str | None
    error: FieldError

    def as_dict(self) -> dict[str, object]:
        return {"external_id": self.external_id} | self.error.as_dict()


def parse_batch(raws: Sequence[object]) -> tuple[list[ItemIn], list[Refusal]]:
    """Parse an API batch: the items to store, and those refused one by one.

    A malformed item (a missing field, a wrong type) is a bug in the client's request:
    InvalidItems rejects the whole batch, naming every bad field. An item whose only
    problem is a text over TRIAGE_MAX_TEXT_CHARS is well formed but cannot be kept: it is
    refused by itself, and the rest of the batch is stored.
    """
    items: list[ItemIn] = []
    errors: list[FieldError] = []
    refused: list[Refusal] = []
    limits = Limits.current()
    for index, raw in enumerate(raws):
        parsed = parse_item(raw, index, limits=limits)
        if not isinstance(parsed, list):
            items.append(parsed)
        elif all(e.code == TOO_LONG for e in parsed):
            external_id = raw.get("external_id") if isinstance(raw, dict) else None
            refused.extend(
                Refusal(index, external_id if isinstance(external_id, str) else None, e)
                for e in parsed
            )
        else:
            errors.extend(parsed)
    if errors or (refused and not items):
        everything = errors + [r.error for r in refused]
        raise InvalidItems(sorted(everything, key=lambda e: e.index))
    return items, refused
