"""A TF-IDF linear head: word and character n-grams, multinomial logistic regression.

It sees what the sentence encoder blurs (names, codes, misspellings, exact phrases), and
averaged with the embedding head it ranks predictions better for almost no CPU
(benchmarks/model_quality.py). It is stored as plain arrays: the vocabularies (as JSON
bytes), the idf weights and the coefficients; nothing is pickled. Serving rebuilds the
features by counting n-grams over the fixed vocabulary (triage.ml.ngrams: the counts
sklearn's CountVectorizer gives, vectorised), then applies sublinear tf, idf
and l2 normalisation exactly as sklearn's TfidfVectorizer does (a test holds them equal).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from triage.ml.logistic import fit_logistic
from triage.ml.ngrams import NgramCounter

# (analyzer, n-gram range, most features kept). min_df=2: a term seen in one text only
# teaches nothing general (and would keep that text's rare words in the artifact).
ANALYZERS: tuple[tuple[str, tuple[int, int], int], ...] = (
    ("word", (1, 2), 50_000),
    ("char_wb", (2, 5), 100_000),
)
MIN_DF = 2
C = 10.0


@dataclass(frozen=True)
class TfidfFeatures:
    """The fitted vocabularies and idf weights, one per analyzer in ANALYZERS."""

    vocabularies: tuple[tuple[str, ...], ...]
    idfs: tuple[np.ndarray, ...]

    @functools.cached_property
    def _counters(self) -> list[NgramCounter]:
        return [
            NgramCounter(analyzer, ngrams, terms)
            for (analyzer, ngrams, _), terms in zip(ANALYZERS, self.vocabularies, strict=True)
        ]

    @property
    def dim(self) -> int:
        return sum(len(terms) for terms in self.vocabularies)

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """The texts' features: each analyzer's block l2-normalised, side by side."""
        return sparse.hstack(
            [sparse.diags(1 / norms) @ x for x, norms in self.weighted(texts)], format="csr"
        )

    def weighted(self, texts: Sequence[str]) -> list[tuple[sparse.csr_matrix, np.ndarray]]:
        """Per analyzer, each text's sublinear tf times idf (a row of a CSR matrix, not yet
        normalised) and the row's l2 norm (1 for a text with none of the terms, whose row
        is empty). A product with the normalised rows is the product with these, divided
        by the norms afterwards: one division per row and label instead of per term."""
        out = []
        for counter, idf in zip(self._counters, self.idfs, strict=True):
            x = counter.count(texts)
            np.log(x.data, out=x.data)
            x.data += 1.0  # sublinear tf: 1 + log(count)
            x.data *= idf[x.indices]
            rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
            norms = np.sqrt(np.bincount(rows, weights=x.data * x.data, minlength=x.shape[0]))
            norms[norms == 0] = 1.0
            out.append((x, norms))
        return out

    @classmethod
    def fit(cls, texts: Sequence[str]) -> tuple[TfidfFeatures, sparse.csr_matrix]:
        """Vocabularies and idf from these texts, and the texts' features."""
        vocabularies, idfs, parts = [], [], []
        for analyzer, ngrams, most in ANALYZERS:
            vectorizer = TfidfVectorizer(
                analyzer=analyzer,
                ngram_range=ngrams,
                min_df=MIN_DF if len(texts) >= 2 * MIN_DF else 1,
                max_features=most,
                sublinear_tf=True,
                dtype=np.float64,
            )
            try:
                parts.append(vectorizer.fit_transform(list(texts)))
            except ValueError:  # no term survives min_df (a handful of tiny texts)
                vectorizer.set_params(min_df=1)
                parts.append(vectorizer.fit_transform(list(texts)))
            terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
            vocabularies.append(tuple(terms))
            idfs.append(np.asarray(vectorizer.idf_, dtype=np.float64))
        return cls(tuple(vocabularies), tuple(idfs)), sparse.hstack(parts, format="csr")

    def as_tensors(self) -> dict[str, np.ndarray]:
        tensors = {}
        for k, (terms, idf) in enumerate(zip(self.vocabularies, self.idfs, strict=True)):
            tensors[f"tfidf_terms_{k}"] = np.frombuffer(
                json.dumps(list(terms), ensure_ascii=False).encode(), dtype=np.uint8
            )
            tensors[f"tfidf_idf_{k}"] = np.asarray(idf, dtype=np.float64)
        return tensors

    @classmethod
    def from_tensors(cls, tensors: dict[str, Any]) -> TfidfFeatures:
        vocabularies, idfs = [], []
        for k in range(len(ANALYZERS)):
            terms = json.loads(bytes(tensors[f"tfidf_terms_{k}"]).decode())
            idf = np.asarray(tensors[f"tfidf_idf_{k}"], dtype=np.float64)
            if not isinstance(terms, list) or len(terms) != len(idf):
                raise ValueError(f"tfidf vocabulary {k} does not match its idf weights")
            vocabularies.append(tuple(str(t) for t in terms))
            idfs.append(idf)
        return cls(tuple(vocabularies), tuple(idfs))


@dataclass(frozen=True)
class TfidfHead:
    labels: tuple[str, ...]
    features: TfidfFeatures
    weights: np.ndarray  # (n_labels, features.dim)
    bias: np.ndarray  # (n_labels,)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """transform(texts) @ weights.T + bias, a block of terms at a time (no combined
        matrix is built)."""
        logits = np.zeros((len(texts), len(self.bias)))
        logits += self.bias
        for (x, norms), weights in zip(self.features.weighted(texts), self._blocks, strict=True):
            logits += np.asarray(x @ weights) / norms[:, None]
        return logits

    @functools.cached_property
    def _blocks(self) -> list[np.ndarray]:
        """The weights of each analyzer's terms, (terms, labels), contiguous for the product."""
        blocks, start = [], 0
        for terms in self.features.vocabularies:
            blocks.append(np.ascontiguousarray(self.weights[:, start : start + len(terms)].T))
            start += len(terms)
        return blocks


def train_tfidf_head(texts: Sequence[str], labels: Sequence[str], *, c: float = C) -> TfidfHead:
    """TF-IDF features fitted on these texts, and a logistic head over them."""
    features, x = TfidfFeatures.fit(texts)
    classes, weights, bias = fit_logistic(x, labels, c=c)
    return TfidfHead(labels=classes, features=features, weights=weights, bias=bias)
