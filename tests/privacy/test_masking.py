"""What the built-in detectors mask, and what they leave alone (no database)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.privacy.masking import Masker
from triage.routing import policy as routing

US = Masker(regions=("US",))


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("write to bob.smith+tag@example.co.uk today", "write to [email] today"),
        ("mail: José.Ñúñez@correo.es.", "mail: [email]."),
        ("call +41 44 668 18 00 now", "call [phone] now"),
        ("call (202) 555-0173 or 202.555.0199", "call [phone] or [phone]"),
        ("card 4111 1111 1111 1111 exp 12/29", "card [card] exp 12/29"),
        ("card 4111-1111-1111-1111-2029", "card [card]-2029"),
        ("amex 378282246310005.", "amex [card]."),
        ("IBAN DE89 3704 0044 0532 0130 00 THANKS", "IBAN [iban] THANKS"),
        ("pay GB82WEST12345698765432, ok", "pay [iban], ok"),
        ("iban de89370400440532013000", "iban [iban]"),
        (
            "bob@example.org, +44 20 7946 0958, 5500 0000 0000 0004, NL91ABNA0417164300",
            "[email], [phone], [card], [iban]",
        ),
    ],
)
def test_personal_data_is_replaced_by_its_kind(text, masked):
    assert US.mask(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        # 16 digits that fail the Luhn check: a reference, not a card.
        "reference 4111 1111 1111 1112",
        "order 4111111111111112 shipped",
        # A long digit blob is no card, even if a 16-digit stretch of it would pass.
        "tracking 41111111111111112029000",
        # A valid Luhn number whose first digit no card network uses.
        "id 0000 0000 0000 0000",
        # A wrong IBAN check digit.
        "IBAN DE88 3704 0044 0532 0130 00",
        "order 12345678 shipped on 2024-11-29 at 10:30, total 1234.56 USD",
        "200 families near km 15, need 3000 liters",
        "no domain: user@localhost",
        "COVID19 cases rose 12% in 2021",
    ],
)
def test_numbers_that_are_not_personal_data_are_left_alone(text):
    assert US.mask(text) == text


def test_national_phone_numbers_need_their_region():
    text = "appelez le 3456-7890 svp"  # a Haitian mobile number, written nationally
    assert US.mask(text) == text
    assert Masker(regions=("HT",)).mask(text) == "appelez le [phone] svp"
    assert Masker(regions=("US", "HT")).mask(text) == "appelez le [phone] svp"


def test_a_phone_number_in_arabic_indic_digits_is_found():
    assert US.mask("call +٤١ ٤٤ ٦٦٨ ١٨ ٠٠ now") == "call [phone] now"


def test_a_number_with_its_country_code_is_found_without_any_region():
    assert Masker(regions=()).mask("tel +509 3456 7890") == "tel [phone]"


def test_admin_patterns_mask_with_their_label_and_take_precedence_over_phones():
    case = ("case_number", routing.compile_pattern(r"\bcase-\d{6,}\b"))
    masker = Masker(patterns=(case,), regions=("US",))
    assert masker.mask("See CASE-2025550173 and case-123456.") == (
        "See [case_number] and [case_number]."
    )
    # Without the pattern the digits of the first look like a US phone number.
    assert US.mask("See CASE-2025550173") == "See CASE-[phone]"


def test_an_email_wins_over_a_phone_number_inside_it():
    assert US.mask("2025550173@txt.example.com") == "[email]"


def test_text_without_personal_data_is_returned_unchanged():
    text = "We need water and tents in Leogane\nplease"
    assert US.mask(text) is text


ALPHABET = st.sampled_from(list("0123456789 -+().@abcxyzDEGB/\n") + ["é", "٣", "\u200b", "😀"])
PIECES = st.sampled_from(
    ["4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00", "+41 44 668 18 00", "a.b@example.org"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(ALPHABET, max_size=40), PIECES), max_size=8).map("".join))
def test_masking_never_fails_and_leaves_no_address_it_found(text):
    masked = US.mask(text)
    for span in US.spans(text):
        if span.kind == "email":
            assert text[span.start : span.end] not in masked
