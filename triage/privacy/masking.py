"""Masking personal data in a text: each match is replaced by its kind, "[email]".

Built in: e-mail addresses, phone numbers, payment card numbers and IBANs; admins add
their own patterns (MaskPattern). Every pattern runs on RE2, whose time is linear in
the text (Python's `re` takes quadratic time to scan 20,000 letters for an e-mail
address), and the number-like kinds are confirmed by a checker so that a random run
of digits is left alone:

- phone numbers: libphonenumber's matcher (`phonenumbers`), which finds numbers written
  the ways people write them and keeps only valid ones for the configured regions
  (TRIAGE_PHONE_REGIONS; a number written with its +country code is found whatever
  the regions);
- card numbers: 13 to 19 digits (spaces or dashes between groups allowed), a major
  industry digit of 2 to 6, and a valid Luhn check digit (`python-stdnum`);
- IBANs: the country's length and the mod-97 check (`python-stdnum`).

When two matches overlap, the kind checked more strictly wins: e-mail, IBAN, card,
then the admins' patterns, then phone numbers (the loosest).
"""

import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import phonenumbers
import re2
from django.conf import settings
from phonenumbers import PhoneMetadata
from stdnum import iban, luhn

from triage.routing import policy as routing

logger = logging.getLogger(__name__)


class Kind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    IBAN = "iban"


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str


def _compile(pattern: str) -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    return re2.compile(pattern, options)


_WORD = r"[\p{L}\p{N}]"
EMAIL = _compile(
    rf"[\p{{L}}\p{{N}}.!#$%&'*+/=?^_`{{|}}~-]+@{_WORD}(?:[\p{{L}}\p{{N}}-]*{_WORD})?"
    rf"(?:\.{_WORD}(?:[\p{{L}}\p{{N}}-]*{_WORD})?)+"
)
# A run of digits, single spaces or dashes between them; cards are looked for inside it.
DIGIT_RUN = _compile(r"\d(?:[ -]?\d)*")
CARD_DIGITS = range(13, 20)
# Two letters and two check digits, then up to 30 letters or digits in groups.
IBAN_CANDIDATE = _compile(r"\b[a-z]{2}\d{2}(?:[ ]?[a-z0-9]){11,30}")
IBAN_MIN_LENGTH = 15  # Norway's, the shortest


@functools.lru_cache(maxsize=32)
def phone_hint(regions: tuple[str, ...]) -> Any:
    """A cheap test before the phone matcher: as many digits close together as the
    shortest valid number has. One written with its +country code has at least five
    (a country code and four digits); a national one, its region's shortest length."""
    shortest = [5]
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region)
        general = metadata.general_desc if metadata is not None else None
        if general is not None and general.possible_length:
            shortest.append(min(general.possible_length))
    # Any script's decimal digits: libphonenumber reads Arabic-Indic digits, for one.
    return _compile(rf"\p{{Nd}}(?:[^\p{{Nd}}\n]{{0,3}}\p{{Nd}}){{{min(shortest) - 1}}}")


def _digits_at(text: str, start: int, end: int) -> list[int]:
    """Positions of the digits of text[start:end]."""
    return [i for i in range(start, end) if text[i].isdigit()]


def find_cards(text: str) -> list[Span]:
    """Card numbers: a group-aligned stretch of a digit run that passes Luhn.

    The stretch must start and end on the run's group boundaries, so "4111 1111 1111
    1111-2024" finds the card and leaves the year, while a 25-digit blob with no
    separators is no card at all.
    """
    spans = []
    for match in DIGIT_RUN.finditer(text):
        start, end = match.start(), match.end()
        digits = _digits_at(text, start, end)
        if len(digits) < CARD_DIGITS.start:
            continue
        # Group boundaries: indexes into `digits` where a new group starts.
        starts = [0] + [k for k in range(1, len(digits)) if digits[k] != digits[k - 1] + 1]
        ends = [*starts[1:], len(digits)]
        found = None
        for index, first in enumerate(starts):
            for last in ends[index:]:
                count = last - first
                if count > CARD_DIGITS[-1]:
                    break
                if count < CARD_DIGITS.start:
                    continue
                number = "".join(text[digits[k]] for k in range(first, last))
                if number[0] in "23456" and luhn.is_valid(number):
                    found = Span(digits[first], digits[last - 1] + 1, Kind.CARD)
                    break
            if found:
                spans.append(found)
                break
    return spans


def find_ibans(text: str) -> list[Span]:
    """IBANs: the longest prefix of a candidate that passes the country's checks.

    The candidate's pattern may run on into the next words ("DE89 3704 … 00 THANKS"),
    so prefixes are tried from the longest down.
    """
    spans = []
    for match in IBAN_CANDIDATE.finditer(text):
        start, end = match.start(), match.end()
        positions = [i for i in range(start, end) if text[i] != " "]
        compact = "".join(text[i] for i in positions).upper()
        for length in range(len(compact), IBAN_MIN_LENGTH - 1, -1):
            if iban.is_valid(compact[:length]):
                spans.append(Span(start, positions[length - 1] + 1, Kind.IBAN))
                break
    return spans


def find_emails(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), Kind.EMAIL) for m in EMAIL.finditer(text)]


def find_phones(text: str, *, regions: Sequence[str]) -> list[Span]:
    if not phone_hint(tuple(regions)).search(text):
        return []
    spans: list[Span] = []
    # No region: only numbers written with their +country code.
    wanted: list[str | None] = [*regions] or [None]
    for region in wanted:
        matcher = phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        )
        spans.extend(Span(m.start, m.end, Kind.PHONE) for m in matcher)
    return spans


def find_pattern(text: str, *, compiled: Any, label: str) -> list[Span]:
    return [Span(m.start(), m.end(), label) for m in compiled.finditer(text) if m.end() > m.start()]


def _without_overlaps(groups: Iterable[list[Span]]) -> list[Span]:
    """Keep spans in the groups' order of precedence; drop any that overlaps a kept one."""
    kept: list[Span] = []
    for group in groups:
        for span in group:
            if all(span.end <= k.start or span.start >= k.end for k in kept):
                kept.append(span)
    return sorted(kept, key=lambda s: s.start)


@dataclass(frozen=True)
class Masker:
    """The built-in detectors plus a set of admin patterns, ready to mask many texts."""

    patterns: tuple[tuple[str, Any], ...] = ()  # (label, compiled RE2 pattern)
    regions: tuple[str, ...] = ()

    def spans(self, text: str) -> list[Span]:
        return _without_overlaps(
            [
                find_emails(text),
                find_ibans(text),
                find_cards(text),
                *(
                    find_pattern(text, compiled=compiled, label=label)
                    for label, compiled in self.patterns
                ),
                find_phones(text, regions=self.regions),
            ]
        )

    def mask(self, text: str) -> str:
        spans = self.spans(text)
        if not spans:
            return text
        parts, at = [], 0
        for span in spans:
            parts += [text[at : span.start], f"[{span.kind}]"]
            at = span.end
        parts.append(text[at:])
        return "".join(parts)


def configured_regions() -> tuple[str, ...]:
    return tuple(settings.TRIAGE_PHONE_REGIONS)


def current_masker() -> Masker:
    """The built-ins and the active admin patterns (one query)."""
    # Models are imported here, not at the top: the detectors run without Django set up
    # (benchmarks/masking.py).
    from triage.privacy.models import MaskPattern

    patterns = []
    for label, pattern in MaskPattern.objects.filter(is_active=True).values_list(
        "label", "pattern"
    ):
        try:
            patterns.append((label, routing.compile_pattern(pattern)))
        except routing.RuleSyntaxError as exc:
            # Saved patterns are validated; this is an RE2 upgrade that changed its mind.
            logger.error("mask pattern %r (%s) no longer compiles: %s", pattern, label, exc)
    return Masker(patterns=tuple(patterns), regions=configured_regions())


def mask_text(text: str) -> str:
    return current_masker().mask(text)


# Shown instead of a text that masking failed on: failing open would show the data.
UNMASKABLE = "[this text is hidden: it could not be masked; the error is logged]"


def for_analysts(text: str) -> str:
    """The text as the review card shows it (masked when TRIAGE_MASK_FOR_ANALYSTS)."""
    if not settings.TRIAGE_MASK_FOR_ANALYSTS:
        return text
    try:
        return mask_text(text)
    except Exception:
        logger.exception("masking failed on a text of %d characters", len(text))
        return UNMASKABLE


def training_texts(texts: Sequence[str]) -> list[str]:
    """Texts as training examples store them (masked when TRIAGE_MASK_TRAINING)."""
    if not settings.TRIAGE_MASK_TRAINING:
        return list(texts)
    masker = current_masker()
    return [masker.mask(text) for text in texts]


def training_text(text: str) -> str:
    (stored,) = training_texts([text])
    return stored


def mask_stored_training_examples(*, batch: int = 1000) -> tuple[int, int]:
    """Mask the text of training examples written before TRIAGE_MASK_TRAINING was on.

    Returns (examples read, examples changed). Batches of `batch`, each in its own
    transaction, read on from the last primary key.
    """
    from django.db import transaction

    from triage.training.models import TrainingExample

    masker = current_masker()
    read = changed = 0
    after = 0
    while True:
        with transaction.atomic():
            examples = list(
                TrainingExample.objects.select_for_update()
                .filter(pk__gt=after)
                .order_by("pk")
                .only("pk", "text")[:batch]
            )
            if not examples:
                return read, changed
            after = examples[-1].pk
            updated = []
            for example in examples:
                masked = masker.mask(example.text)
                if masked != example.text:
                    example.text = masked
                    updated.append(example)
            TrainingExample.objects.bulk_update(updated, ["text"], batch_size=500)
            read += len(examples)
            changed += len(updated)
