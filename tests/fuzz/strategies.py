"""Hypothesis strategies for hostile input: odd unicode, wrong types, odd sizes."""

import json
from typing import Any
from urllib.parse import quote_from_bytes

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Each example is a real request against the database; keep runs modest. The database
# fixture is per test, not per example: every invariant is checked as a before/after.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Characters that have broken web apps: NUL, lone surrogates, zero-width and bidi marks,
# the BOM, combining marks, and astral characters.
NASTY_CHARACTERS = st.sampled_from(
    ["\x00", "\ud800", "\udfff", "\u200b", "\u200d", "\ufeff", "\u202e", "\u0301", "😀", "\n"]
)
CHARACTERS = st.one_of(st.characters(), st.characters(categories=["Cs"]), NASTY_CHARACTERS)
TEXT = st.one_of(
    st.text(CHARACTERS, max_size=40),
    st.text(CHARACTERS, min_size=200, max_size=400),
    st.sampled_from(["", " ", "0", "-1", "1e309", "NaN", "null", "true", "x" * 300]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


def encode(text: str) -> bytes:
    """UTF-8, keeping lone surrogates as the (invalid) bytes a hostile client could send."""
    return text.encode("utf-8", "surrogatepass")


def json_bytes(value: Any, *, ascii_only: bool) -> bytes:
    # ensure_ascii escapes surrogates as \ud800 (valid JSON, unstorable text); without
    # it they become invalid UTF-8 bytes.
    return encode(json.dumps(value, ensure_ascii=ascii_only))


def form_body(fields: list[tuple[str, str]]) -> bytes:
    """An application/x-www-form-urlencoded body that may carry invalid UTF-8."""
    return "&".join(
        f"{quote_from_bytes(encode(k))}={quote_from_bytes(encode(v))}" for k, v in fields
    ).encode()
