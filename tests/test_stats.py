"""The shared statistics: their conventions at the edges, and draws that never move."""

import numpy as np
import pytest

from triage.routing.policy import audit_draw
from triage.stats import (
    clopper_pearson_interval,
    clopper_pearson_lower,
    clopper_pearson_lower_bounds,
    clopper_pearson_upper,
    hajek_mean,
    hash_draw,
    kish_effective_n,
)


def test_without_trials_the_bounds_say_nothing() -> None:
    assert clopper_pearson_lower(0, 0) == 0.0
    assert clopper_pearson_upper(0, 0) == 1.0
    assert clopper_pearson_interval(0, 0) == (0.0, 1.0)


def test_all_or_no_successes_close_one_end() -> None:
    # n of n: the upper bound is 1 and the lower one is alpha ** (1 / n); 0 of n mirrors it.
    assert clopper_pearson_upper(10, 10) == 1.0
    assert clopper_pearson_lower(10, 10, 0.05) == pytest.approx(0.05 ** (1 / 10))
    assert clopper_pearson_lower(0, 10) == 0.0
    assert clopper_pearson_upper(0, 10, 0.05) == pytest.approx(1 - 0.05 ** (1 / 10))


def test_the_interval_puts_half_the_level_in_each_tail() -> None:
    lower, upper = clopper_pearson_interval(37, 50, confidence=0.9)
    assert lower == clopper_pearson_lower(37, 50, 0.05)
    assert upper == clopper_pearson_upper(37, 50, 0.05)


def test_the_vectorised_lower_bound_is_the_scalar_one() -> None:
    successes, n = np.array([0, 1, 30, 50, 95]), np.array([0, 5, 40, 50, 100])
    bounds = clopper_pearson_lower_bounds(successes, n, 0.05)
    assert bounds.tolist() == [
        clopper_pearson_lower(s, m) for s, m in zip(successes, n, strict=True)
    ]


@pytest.mark.parametrize(("successes", "n"), [(-1, 5), (6, 5), (0, -1)])
def test_impossible_counts_are_refused(successes: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        clopper_pearson_lower(successes, n)
    with pytest.raises(ValueError, match="successes"):
        clopper_pearson_upper(successes, n)


def test_equal_weights_give_the_plain_mean_and_n() -> None:
    assert hajek_mean([1, 0, 1, 1], [3.0] * 4) == 0.75
    assert kish_effective_n([3.0] * 4) == pytest.approx(4)
    # Unequal weights: fewer effective observations than rows.
    assert kish_effective_n([1.0, 1.0, 10.0]) == pytest.approx(144 / 102)


def test_hash_draws_never_move() -> None:
    # Pinned: these numbers decide train/holdout splits and audit samples already stored.
    assert hash_draw("item-1") == 0.3498619769283746
    assert hash_draw("item-1", salt="audit:") == 0.3748615435549655
    # The audit draw is keyed (an HMAC): pinned for a given key too.
    keyed = audit_draw("item-1", key=b"k")
    assert keyed == hash_draw("item-1", salt="audit:", secret=b"k") == 0.9562248315296201
    assert all(0 <= hash_draw(f"x{i}") < 1 for i in range(1000))
