"""Vectorised n-gram counts: exactly sklearn's CountVectorizer over the same vocabulary."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import CountVectorizer

from triage.ml.ngrams import NgramCounter

FIT = [
    "Water and food needed in Leogane, water!",
    "We need WATER urgently — please help (Jacmel)",
    "a b c  d\te\nf  İstanbul straße ÉCOLE école",
    "x_1 y2 42 4242 a a a aa aaa",
    "\u00a0non\u00a0breaking\u2003em space\x1cfile sep",
    "emoji 🌊🌊 water 🌊",
]
TRICKY = [
    "",
    "   ",
    "a",
    "aa aa aa",
    "water water WATER wAtEr",
    "İİ Straße STRASSE",
    "never seen: ЖЖЖ ΩΩ 漢字",
    "tabs\tand\nnewlines\r\nand  runs   of    spaces",
    "\u00a0non\u00a0breaking\u2003em\x1cfile",
    "lone \ud800 surrogate",
    "🌊🌊🌊 water🌊",
    "x_1 y2 42 4242",
    "Water and food needed in Leogane, water!",
]


def _reference(analyzer, ngrams, terms, texts):
    vocabulary = {term: i for i, term in enumerate(terms)}
    counter = CountVectorizer(analyzer=analyzer, ngram_range=ngrams, vocabulary=vocabulary)
    return counter.transform(texts).toarray().astype(np.float64)


def _vocabulary(analyzer, ngrams):
    fitted = CountVectorizer(analyzer=analyzer, ngram_range=ngrams).fit(FIT)
    return sorted(fitted.vocabulary_, key=fitted.vocabulary_.get)


CASES = [("char_wb", (2, 5)), ("char_wb", (1, 3)), ("word", (1, 2)), ("word", (1, 3))]


@pytest.mark.parametrize(("analyzer", "ngrams"), CASES)
def test_counts_equal_sklearns_on_tricky_texts(analyzer, ngrams):
    terms = _vocabulary(analyzer, ngrams)
    counter = NgramCounter(analyzer, ngrams, terms)
    assert counter._fallback is None  # the vectorised path, not sklearn's
    ours = counter.count(TRICKY)
    assert ours.shape == (len(TRICKY), len(terms))
    assert ours.dtype == np.float64
    assert np.array_equal(ours.toarray(), _reference(analyzer, ngrams, terms, TRICKY))
    assert ours.toarray().max() >= 3  # repeated n-grams are counted, not just flagged


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list("aAbé İ\t\n_1🌊Ж.")), max_size=30),
        max_size=6,
    )
)
@pytest.mark.parametrize(("analyzer", "ngrams"), CASES[:1] + CASES[2:3])
def test_counts_equal_sklearns_on_any_texts(analyzer, ngrams, texts):
    fitted = CountVectorizer(analyzer=analyzer, ngram_range=ngrams).fit(
        ["a ab abé İa aa b bb", "é_1 🌊 Ж. a1 ab ab"]
    )
    terms = sorted(fitted.vocabulary_, key=fitted.vocabulary_.get)
    ours = NgramCounter(analyzer, ngrams, terms).count(texts)
    assert np.array_equal(ours.toarray(), _reference(analyzer, ngrams, terms, texts))


@pytest.mark.parametrize(("analyzer", "ngrams"), [("char_wb", (4, 5)), ("char", (2, 3))])
def test_what_it_cannot_key_is_counted_by_sklearn(analyzer, ngrams):
    # char_wb from 4 counts a short padded word (" a ") whole; plain "char" is not keyed.
    terms = _vocabulary(analyzer, ngrams)
    counter = NgramCounter(analyzer, ngrams, terms)
    assert counter._fallback is not None
    assert np.array_equal(
        counter.count(TRICKY).toarray(), _reference(analyzer, ngrams, terms, TRICKY)
    )


def test_an_empty_vocabulary_counts_nothing():
    assert NgramCounter("char_wb", (2, 5), []).count(["abc", ""]).shape == (2, 0)
