"""Model versions as an admin reads them: truthful statuses, summaries, comparisons.

Metrics are the ones stored on each version when it was measured; automation is
what triage.routing.derive derives for that version under today's rules. Nothing is
re-scored here.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triage.ml.artifacts import file_sha256
from triage.ml.calibration import ReliabilityBin, reliability_table
from triage.ml.heads import ArtifactError
from triage.models import AuditLog, ModelVersion
from triage.routing.automation import automation_of
from triage.routing.derive import RuleReport, derived
from triage.routing.evidence import HoldoutPredictions, load_evidence
from triage.training.gate import MAX_AUTOMATION_DROP


@dataclass(frozen=True)
class Status:
    label: str
    css: str
    explanation: str


def status_of(version: ModelVersion) -> Status:
    """What happened to a version, in words that match its history.

    The stored status alone misleads: a roll back marks the champion it replaces
    "rejected", although that version passed the gate and served.
    """
    S = ModelVersion.Status
    if version.status == S.CHAMPION:
        return Status("champion", "ok", "classifies new items now")
    if version.status == S.RETIRED:
        return Status("retired", "muted", "served as champion, then replaced by a newer one")
    if version.status == S.REJECTED and version.promoted_at is not None:
        return Status(
            "rolled back", "warn", "passed the gate and served, then an admin rolled it back"
        )
    if version.status == S.REJECTED:
        return Status("rejected by the gate", "bad", "the gate kept the champion")
    return Status("passed the gate, not promoted", "muted", "waiting for an admin's promotion")


@dataclass(frozen=True)
class VersionSummary:
    version: ModelVersion
    status: Status
    reports: list[RuleReport]  # today's rules, certified on this version's evidence
    evidence: int  # predictions the automation figures rest on
    automation: float | None  # share of them today's rules automate

    @property
    def macro_f1(self) -> float | None:
        return self.version.macro_f1

    @property
    def ece(self) -> float | None:
        value = self.version.metrics.get("ece")
        return float(value) if value is not None else None

    def report_for(self, slug: str) -> RuleReport | None:
        return next((r for r in self.reports if r.slug == slug), None)

    @property
    def model(self) -> str:
        return model_description(self.version)


HEADS = {
    "ensemble": "encoder head averaged with a TF-IDF head",
    "embedding": "encoder head",
}


def model_description(version: ModelVersion) -> str:
    """What the version serves, in a few words: its head, and whether its encoder was
    fine-tuned (from its metrics; versions from before heads were recorded say so)."""
    metrics = version.metrics or {}
    if version.kind != ModelVersion.Kind.HEAD:
        return version.get_kind_display()
    head = HEADS.get(str(metrics.get("head", "")), "head (kind not recorded)")
    if metrics.get("head") == "ensemble" and metrics.get("voters"):
        head += f", and a vote of the nearest of {int(metrics['voters']):,} labelled examples"
    tuned = metrics.get("fine_tune") or {}
    if tuned.get("kept") == "fine-tuned":
        return f"fine-tuned encoder (max length {tuned.get('max_length')}), {head}"
    return head


def summarize(version: ModelVersion) -> VersionSummary:
    # The same cached derivation classification uses (triage.routing.derive.derived).
    found = derived(version)
    holdout = found.evidence
    return VersionSummary(
        version=version,
        status=status_of(version),
        reports=list(found.reports),
        evidence=0 if holdout is None else len(holdout),
        automation=(
            automation_of(holdout, found.reports).coverage
            if holdout is not None and len(holdout)
            else None
        ),
    )


def artifact_problem(version: ModelVersion) -> str | None:
    """Why the version's artifact cannot be trusted, or None when it checks out.

    Read fresh every time (not through the loader's cache), so a file changed on
    disk since it was last loaded is caught before a promotion.
    """
    path = Path(version.artifact_path)
    if not path.is_file():
        return f"the artifact {path} is missing"
    actual = file_sha256(path)
    if actual != version.artifact_sha256:
        return (
            f"the artifact {path} has sha256 {actual[:12]}…, but {version.artifact_sha256[:12]}… "
            "was recorded when it was trained: the file changed"
        )
    return _evidence_problem(version)


def _evidence_problem(version: ModelVersion) -> str | None:
    try:
        load_evidence(version)
    except ArtifactError as exc:
        return f"its evidence cannot be loaded ({exc}): it would certify no threshold"
    return None


def _evidence_or_none(version: ModelVersion) -> HoldoutPredictions | None:
    """For the charts: a version whose evidence cannot be read has none to show
    (artifact_problem says why on the same page)."""
    try:
        return load_evidence(version)
    except ArtifactError:
        return None


def reliability(version: ModelVersion, n_bins: int = 10) -> list[ReliabilityBin]:
    """The reliability table of the version's held-out top-label confidences."""
    holdout = _evidence_or_none(version)
    if holdout is None:
        return []
    known = holdout.truth >= 0
    if not known.any():
        return []
    conf = holdout.confidence[known]
    k = len(holdout.labels)
    # reliability_table reads only each row's top probability and its argmax, so a
    # row holding the stored top confidence (the rest spread evenly) gives the same table.
    probs = np.repeat(((1.0 - conf) / max(k - 1, 1))[:, None], k, axis=1)
    probs[np.arange(len(conf)), holdout.predicted[known]] = conf
    return reliability_table(probs, holdout.truth[known], n_bins=n_bins)


@dataclass(frozen=True)
class Confusion:
    labels: list[str]
    rows: list[list[int]]  # rows: true category; columns: predicted
    n: int

    @property
    def shares(self) -> list[list[tuple[int, float | None]]]:
        """Each cell with its share of its row (of the items truly in that category):
        raw counts hide where a small category goes wrong."""
        out = []
        for row in self.rows:
            total = sum(row)
            out.append([(n, n / total if total else None) for n in row])
        return out


def confusion(version: ModelVersion) -> Confusion | None:
    holdout = _evidence_or_none(version)
    if holdout is None:
        return None
    labels = list(holdout.labels)
    k = len(labels)
    known = holdout.truth >= 0
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (holdout.truth[known], holdout.predicted[known]), 1)
    return Confusion(labels, matrix.tolist(), int(known.sum()))


def _change(pair: tuple[float | None, float | None]) -> float | None:
    a, b = pair
    return None if a is None or b is None else b - a


@dataclass(frozen=True)
class CategoryComparison:
    slug: str
    precision: tuple[float | None, float | None]
    recall: tuple[float | None, float | None]
    automation: tuple[float | None, float | None]

    @property
    def precision_change(self) -> float | None:
        return _change(self.precision)

    @property
    def recall_change(self) -> float | None:
        return _change(self.recall)

    @property
    def automation_change(self) -> float | None:
        return _change(self.automation)

    @property
    def automation_switches_off(self) -> bool:
        """The category acts alone under the first version and never under the second."""
        a, b = self.automation
        return bool(a) and not b


@dataclass(frozen=True)
class Comparison:
    a: VersionSummary
    b: VersionSummary
    categories: list[CategoryComparison]
    confusion: tuple[Confusion | None, Confusion | None]

    @property
    def automation_change(self) -> float | None:
        """b's automation minus a's, each on its own evidence under today's rules."""
        if self.a.automation is None or self.b.automation is None:
            return None
        return self.b.automation - self.a.automation

    @property
    def automation_drop_blocks(self) -> bool:
        """Whether the gate would hold b for an admin for cutting automation."""
        change = self.automation_change
        return change is not None and -change > MAX_AUTOMATION_DROP


def compare(a: ModelVersion, b: ModelVersion) -> Comparison:
    left, right = summarize(a), summarize(b)
    slugs = sorted(
        set(a.metrics.get("per_class", {}))
        | set(b.metrics.get("per_class", {}))
        | {r.slug for r in left.reports}
    )

    def metric(v: ModelVersion, slug: str, key: str) -> float | None:
        value = v.metrics.get("per_class", {}).get(slug, {}).get(key)
        return float(value) if value is not None else None

    def automation(s: VersionSummary, slug: str) -> float | None:
        report = s.report_for(slug)
        return report.coverage if report is not None else None

    return Comparison(
        a=left,
        b=right,
        categories=[
            CategoryComparison(
                slug,
                (metric(a, slug, "precision"), metric(b, slug, "precision")),
                (metric(a, slug, "recall"), metric(b, slug, "recall")),
                (automation(left, slug), automation(right, slug)),
            )
            for slug in slugs
        ],
        confusion=(confusion(a), confusion(b)),
    )


def rollback_target() -> ModelVersion | None:
    """The version a roll back would bring back: the query triage.training.rollback runs,
    read here to show the comparison before anything changes."""
    return (
        ModelVersion.objects.filter(status=ModelVersion.Status.RETIRED)
        .exclude(promoted_at__isnull=True)
        .order_by("-promoted_at")
        .first()
    )


def history_of(version: ModelVersion) -> list[AuditLog]:
    return [
        entry
        for entry in AuditLog.objects.filter(
            action__in=["promote", "reject", "hold", "rollback"]
        ).order_by("at")
        if entry.detail.get("version") == version.pk
        or version.pk in (entry.detail.get("previous") or [])
        or version.pk in ((entry.detail.get("before") or {}).get("champion") or [])
    ]
