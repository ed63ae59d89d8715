"""Tests for temperature scaling and calibration metrics."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from triage.ml.calibration import (
    ReliabilityBin,
    expected_calibration_error,
    fit_temperature,
    reliability_table,
    softmax,
)


def calibrated_logits(
    n: int = 20_000, n_classes: int = 5, seed: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """Logits whose softmax is calibrated by construction: labels are drawn from it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.5, size=(n, n_classes))
    probs = softmax(logits)
    # Inverse-CDF sampling of one label per row from that row's distribution.
    labels = (rng.random((n, 1)) > probs.cumsum(axis=1)).sum(axis=1)
    return logits, np.minimum(labels, n_classes - 1)


def test_softmax_rows_sum_to_one_even_for_huge_logits() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0], [-5.0, 0.0, 5.0]])
    for temperature in (0.1, 1.0, 7.0):
        probs = softmax(logits, temperature)
        assert np.all(np.isfinite(probs))
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(softmax(logits)[1], [0.5, 0.5, 0.0])


def test_softmax_rejects_non_positive_temperature() -> None:
    with pytest.raises(ValueError, match="temperature"):
        softmax(np.zeros((1, 2)), temperature=0.0)


def test_fitted_temperature_is_about_one_for_calibrated_logits() -> None:
    logits, labels = calibrated_logits()
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.1)


def test_fitted_temperature_undoes_overconfidence() -> None:
    logits, labels = calibrated_logits()
    temperature = fit_temperature(4 * logits, labels)
    assert temperature > 1
    assert temperature == pytest.approx(4.0, rel=0.1)


def test_temperature_scaling_lowers_ece_of_overconfident_scores() -> None:
    logits, labels = calibrated_logits()
    overconfident = 4 * logits
    before = expected_calibration_error(softmax(overconfident), labels)
    temperature = fit_temperature(overconfident, labels)
    after = expected_calibration_error(softmax(overconfident, temperature), labels)
    assert before > 0.1
    assert after < before / 4


def test_ece_is_zero_for_perfectly_calibrated_case() -> None:
    # Confidence 0.75 and 3 of 4 right; confidence 1.0 and always right.
    probs = np.array([[0.75, 0.25]] * 4 + [[0.0, 1.0]] * 2)
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_a_known_miscalibration() -> None:
    # Claims 90% but is right half the time: gap 0.4 on every item.
    probs = np.array([[0.9, 0.1]] * 4)
    labels = np.array([0, 1, 0, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)


def test_reliability_table_skips_empty_bins() -> None:
    probs = np.array([[0.95, 0.05], [0.92, 0.08], [0.55, 0.45]])
    labels = np.array([0, 1, 1])
    table = reliability_table(probs, labels, n_bins=10)
    assert [(b.lower, b.upper, b.count) for b in table] == [
        pytest.approx((0.5, 0.6, 1)),
        pytest.approx((0.9, 1.0, 2)),
    ]
    assert table[0].accuracy == 0.0
    assert table[1].mean_confidence == pytest.approx(0.935)
    assert table[1].accuracy == 0.5
    assert all(isinstance(b, ReliabilityBin) for b in table)


def test_rejects_labels_out_of_range_or_mismatched() -> None:
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="labels"):
        expected_calibration_error(np.full((2, 2), 0.5), np.array([0]))
