"""The retired one-look bound on audited precision, kept only so tests and benchmarks can
show why it was replaced: read after every verdict, it certifies a threshold below its
target far more often than delta (tests/monitoring/test_audit_certificate.py). The live
certificate on audits is triage.monitoring.precision.anytime_lower.
"""

from triage.monitoring.precision import PrecisionEstimate
from triage.stats import clopper_pearson_interval


def one_sided_lower(estimate: PrecisionEstimate, *, delta: float) -> float:
    """Exact one-sided lower bound at level 1 − δ (same effective n as the interval).

    The certification's form: with probability at least 1 − δ the precision of
    all auto-actions is at least this. 0.0 when nothing was audited.
    """
    if estimate.precision is None:
        return 0.0
    n = estimate.effective_n
    # The lower end of the two-sided interval at 1 − 2δ (lower tail δ), as it has always
    # been computed: (1 − (1 − 2δ)) / 2 is not δ to the last bit, and a direct one-sided
    # call would move the published bound by up to 4e-16.
    return clopper_pearson_interval(estimate.precision * n, n, 1 - 2 * delta)[0]
