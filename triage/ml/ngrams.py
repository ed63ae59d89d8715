"""N-gram counts over a fixed vocabulary, vectorised: the TF-IDF head's serving path.

`NgramCounter(analyzer, ngram_range, terms).count(texts)` is the matrix that sklearn's
`CountVectorizer(analyzer=..., ngram_range=..., vocabulary=terms).transform(texts)` gives,
for the two analyzers the TF-IDF head uses, with sklearn's defaults otherwise (lowercase,
its token pattern, no accent stripping). sklearn builds one Python string per n-gram and
looks each up in a dict, about 0.25 ms per message at 140 characters, a few per cent of an
int8 encode; here each n-gram is an integer (its characters, or its tokens, as digits in a
fixed base) looked up in a sorted array, a whole batch at once. Tests hold the two equal.

  char_wb  n-grams of each whitespace-separated word padded with one space either side:
           the padded words joined by one space are a string in which every n-gram that
           spans two words contains two spaces, which no vocabulary term does, so the
           n-grams of that one string, kept when in the vocabulary, are exactly sklearn's.
  word     the token pattern's tokens, and n-grams of them joined by a space.

A vocabulary this cannot key (too many distinct characters or tokens for base ** n to fit
in 63 bits; other analyzers or n-gram ranges) is counted by sklearn itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from itertools import repeat

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

# sklearn's defaults (CountVectorizer.token_pattern, and what _char_wb_ngrams collapses).
TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")
_WHITE_SPACES = re.compile(r"\s\s+")
_KEY_LIMIT = 2**63
_DENSE_LIMIT = 2**20  # keys below it are looked up in a table (8 MB at most)


class _Keys:
    """Integer keys of vocabulary terms and each key's column: a dense table when the keys
    are small (one lookup each), else sorted (a binary search each)."""

    def __init__(self, keys: np.ndarray, columns: np.ndarray, *, span: int) -> None:
        self.dense: np.ndarray | None = None
        if span <= _DENSE_LIMIT:
            self.dense = np.full(span, -1, dtype=np.int64)
            self.dense[keys] = columns
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.columns = columns[order]

    def find(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which queries are keys, their columns); every query is in [0, span)."""
        if self.dense is not None:
            found = self.dense[queries]
            hit = found >= 0
            return hit, found[hit]
        if not len(self.keys):
            return np.zeros(len(queries), dtype=bool), np.zeros(0, dtype=np.int64)
        at = np.searchsorted(self.keys, queries).clip(max=len(self.keys) - 1)
        hit = self.keys[at] == queries
        return hit, self.columns[at[hit]]


def _codepoints(text: str) -> np.ndarray:
    # surrogatepass: a lone surrogate is a character like any other here, as in sklearn.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


class NgramCounter:
    def __init__(self, analyzer: str, ngram_range: tuple[int, int], terms: Sequence[str]) -> None:
        self.analyzer = analyzer
        self.ngram_range = ngram_range
        self.size = len(terms)
        self._fallback: CountVectorizer | None = None
        keyed = False
        # A padded word has 3 characters or more; below a shorter minimum sklearn also
        # counts a padded word shorter than n as one n-gram, which this does not.
        if analyzer == "char_wb" and ngram_range[0] <= 3:
            keyed = self._key_chars(terms)
        elif analyzer == "word":
            keyed = self._key_words(terms)
        if not keyed and terms:
            self._fallback = CountVectorizer(
                analyzer=analyzer,
                ngram_range=ngram_range,
                vocabulary={term: i for i, term in enumerate(terms)},
                dtype=np.float64,
            )

    # --------------------------------------------------------------- the vocabulary

    def _key_chars(self, terms: Sequence[str]) -> bool:
        alphabet = np.unique(_codepoints(" " + "".join(terms)))
        base = len(alphabet) + 1  # digit 0: a character no term has
        if base ** self.ngram_range[1] >= _KEY_LIMIT:
            return False
        self._alphabet, self._base = alphabet, base
        self._chars: dict[int, _Keys] = {}
        lengths = np.fromiter(map(len, terms), dtype=np.int64, count=len(terms))
        for n in range(self.ngram_range[0], self.ngram_range[1] + 1):
            columns = np.flatnonzero(lengths == n)
            joined = "".join(terms[int(i)] for i in columns)
            digits = self._digits(_codepoints(joined)).reshape(len(columns), n)
            keys = digits @ base ** np.arange(n - 1, -1, -1)
            self._chars[n] = _Keys(keys, columns, span=base**n)
        return True

    def _key_words(self, terms: Sequence[str]) -> bool:
        split = [term.split(" ") for term in terms]
        self._token_ids: dict[str, int] = {}
        for tokens in split:
            for token in tokens:
                self._token_ids.setdefault(token, len(self._token_ids))
        base = len(self._token_ids) + 1  # id 0: a token in no term
        if base ** self.ngram_range[1] >= _KEY_LIMIT:
            return False
        self._base = base
        self._words: dict[int, _Keys] = {}
        for n in range(self.ngram_range[0], self.ngram_range[1] + 1):
            columns = np.array([i for i, t in enumerate(split) if len(t) == n], dtype=np.int64)
            keys = np.zeros(len(columns), dtype=np.int64)
            for position in range(n):
                ids = [self._token_ids[split[i][position]] + 1 for i in columns]
                keys = keys * base + np.asarray(ids, dtype=np.int64)
            self._words[n] = _Keys(keys, columns, span=base**n)
        return True

    def _digits(self, codepoints: np.ndarray) -> np.ndarray:
        """Each character's digit: its place in the alphabet + 1, or 0 for one no term has.
        A table indexed by code point, up to the alphabet's largest (one lookup each)."""
        table = self._digit_table
        digits = table[np.minimum(codepoints, len(table) - 1)]
        return np.where(codepoints < len(table), digits, 0).astype(np.int64)

    @functools.cached_property
    def _digit_table(self) -> np.ndarray:
        table = np.zeros(int(self._alphabet.max()) + 1, dtype=np.int32)
        table[self._alphabet] = np.arange(1, len(self._alphabet) + 1)
        return table

    # --------------------------------------------------------------------- counting

    def count(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Counts, (len(texts), len(terms)), float64: CountVectorizer.transform's matrix."""
        texts = list(texts)
        if not self.size:
            return sparse.csr_matrix((len(texts), 0), dtype=np.float64)
        if self._fallback is not None:
            return self._fallback.transform(texts).tocsr()
        if self.analyzer == "char_wb":
            units, starts = self._char_units(texts)
            grams = self._chars
            # The padded words: each starts at a space after a space (or at the start).
            space = units == self._digits(_codepoints(" "))[0]
            first = space.copy()
            first[1:] &= space[:-1]
            first[:1] = True
            segment = np.cumsum(first)
        else:
            units, starts = self._word_units(texts)
            grams = self._words
        rows, columns = [], []
        row_of = np.repeat(np.arange(len(texts)), np.diff(starts))
        if self.analyzer != "char_wb":
            segment = row_of
        keys = np.zeros(len(units), dtype=np.int64)
        for n in range(1, self.ngram_range[1] + 1):
            # keys[p]: the n-gram starting at unit p (its units as base-`base` digits).
            keys = keys[: len(units) - n + 1] * self._base + units[n - 1 :]
            if n < self.ngram_range[0]:
                continue
            # Only n-grams inside one segment (a padded word; for words, a text): the
            # others are in no term, and looking them up costs as much as the rest.
            inside = segment[: len(keys)] == segment[n - 1 :] if n > 1 else slice(None)
            hit, found = grams[n].find(keys[inside])
            rows.append(row_of[: len(keys)][inside][hit])
            columns.append(found)
        data = np.ones(sum(map(len, columns)), dtype=np.float64)
        counts = sparse.csr_matrix(
            (data, (np.concatenate(rows), np.concatenate(columns))),
            shape=(len(texts), self.size),
        )
        counts.sum_duplicates()
        return counts

    def _char_units(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each text lowercased, its words padded and joined as sklearn's char_wb pads them."""
        words = [_WHITE_SPACES.sub(" ", text.lower()).split() for text in texts]
        padded = [" " + "  ".join(w) + " " if w else "" for w in words]
        starts = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, padded), dtype=np.int64, count=len(texts)), out=starts[1:])
        return self._digits(_codepoints("".join(padded))), starts

    def _word_units(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each text's tokens as ids (0: in no term), all texts end to end."""
        tokens: list[str] = []
        starts = [0]
        for text in texts:
            tokens.extend(TOKEN_PATTERN.findall(text.lower()))
            starts.append(len(tokens))
        ids = np.fromiter(
            map(self._token_ids.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens)
        )
        return ids + 1, np.asarray(starts, dtype=np.int64)
