"""Rules for incoming strings: what a database can store, what counts as empty, and ids.

Shared by the ingest parser, the file import and the request middleware, so the same
string is judged the same way wherever it arrives.
"""

import unicodedata

# Characters drawn as nothing that are not whitespace or format controls (below):
# combining grapheme joiner, Hangul fillers, Khmer inherent vowels, the Mongolian vowel
# separator, the blank Braille pattern, and the variation selectors.
_INVISIBLE = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))
    + "".join(chr(c) for c in range(0xE0100, 0xE01F0))
)
# Control (Cc), format (Cf: zero-width space and joiners, BOM, soft hyphen, bidi marks,
# tag characters) and separator (Z*) categories.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def unstorable_string(value: str) -> str | None:
    """Why a database cannot store this string, or None.

    PostgreSQL refuses NUL in text and jsonb, and a lone surrogate (valid in
    JSON as an escape) cannot be encoded as UTF-8 by any backend: both would
    otherwise surface as a 500 at insert or query time.
    """
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain lone surrogates (invalid Unicode)"
    return None


def is_blank(value: str) -> bool:
    """True when the string shows nothing: only whitespace and invisible characters.

    A text of zero-width spaces is not something a person or a model can decide on.
    """
    return all(
        ch.isspace() or ch in _INVISIBLE or unicodedata.category(ch) in _INVISIBLE_CATEGORIES
        for ch in value
    )


def normalize_external_id(value: str) -> str:
    """The stored form of an external id: NFC-normalised, surrounding whitespace removed.

    NFC first, so an id typed with a decomposed accent (NFD, as macOS file names
    are) and the same id precomposed are one item, not two.
    """
    return unicodedata.normalize("NFC", value).strip()
