"""Recording the gate's verdict, promotion and roll back."""

from functools import partial

from django.db import transaction
from django.utils import timezone

from triage.classify.tasks import reroute_waiting
from triage.ml.heads import read_head
from triage.models import AuditLog, ModelVersion
from triage.monitoring.watch import restart_watches
from triage.routing.derive import thresholds_snapshot
from triage.routing.evidence import load_evidence
from triage.training.snapshot import RetrainError


def record_gate(
    version: ModelVersion, *, promote: bool, message: str, actor: str, hold: bool = False
) -> None:
    """Store the version's thresholds and act on the gate: promote, hold, or reject.

    A held version stays a candidate: it passed on quality but an admin must
    decide (for example because it would automate much less).
    """
    version.thresholds = thresholds_snapshot(version)
    version.save(update_fields=["thresholds"])
    if promote:
        make_champion(version, actor=actor, action="promote", reason=message)
    elif hold:
        AuditLog.record(actor=actor, action="hold", version=version.pk, reason=message)
    else:
        before = version.status
        version.status = ModelVersion.Status.REJECTED
        version.save(update_fields=["status"])
        AuditLog.record_change(
            actor=actor,
            action="reject",
            target=f"model version {version.pk}",
            before={"status": before},
            after={"status": version.status},
            version=version.pk,
            reason=message,
        )


def make_champion(
    version: ModelVersion,
    *,
    actor: str,
    action: str,
    reason: str,
    old_champion_becomes: str = ModelVersion.Status.RETIRED,
) -> None:
    """The one place a version becomes champion (gate, admin promotion, roll back).

    Call inside a transaction.
    """
    previous = ModelVersion.objects.select_for_update().filter(status=ModelVersion.Status.CHAMPION)
    previous_ids = list(previous.values_list("pk", flat=True))
    previous.update(status=old_champion_becomes)
    version.status = ModelVersion.Status.CHAMPION
    # A rolled-back-to version keeps its first promotion time, so a second
    # roll back goes one step further back instead of flip-flopping.
    version.promoted_at = version.promoted_at or timezone.now()
    version.save(update_fields=["status", "promoted_at"])
    AuditLog.record_change(
        actor=actor,
        action=action,
        target="champion",
        before={"champion": previous_ids},
        after={"champion": [version.pk]},
        version=version.pk,
        reason=reason,
    )
    # Verdicts on the old model say nothing about this one: the drift watch starts
    # over and lifts any suspension (logged per category).
    restart_watches(version=version, actor=actor)
    # The items still waiting because the old model was unsure meet the new one, once
    # this commits (triage.classify.waiting). Robust: the change of champion stands
    # whatever happens to the hand-off (a broker that is down is logged).
    transaction.on_commit(partial(queue_reroute, version.pk, actor), robust=True)


def queue_reroute(version_id: int, actor: str) -> None:
    reroute_waiting.delay(version_id, actor)


def _check_loadable(version: ModelVersion) -> None:
    # The file on disk, not this process's cached copy: a head loaded here before its
    # file was tampered with would otherwise pass the check.
    if version.kind == ModelVersion.Kind.HEAD:
        read_head(version.artifact_path, version.artifact_sha256)
    # A champion whose evidence cannot be read certifies nothing: every category with
    # a target would send all its items to review.
    load_evidence(version)


def promote_version(*, version: ModelVersion, actor: str) -> None:
    """An admin's explicit promotion, bypassing the gate (recorded in the audit log)."""
    _check_loadable(version)  # refuse a broken artifact
    with transaction.atomic():
        make_champion(version, actor=actor, action="promote", reason="promoted by an admin")


def rollback(*, actor: str) -> ModelVersion:
    """Reject the champion and bring back the one that served before it."""
    previous = (
        ModelVersion.objects.filter(status=ModelVersion.Status.RETIRED)
        .exclude(promoted_at__isnull=True)
        .order_by("-promoted_at")
        .first()
    )
    if previous is None:
        raise RetrainError("nothing to roll back to: no earlier champion")
    _check_loadable(previous)
    with transaction.atomic():
        make_champion(
            previous,
            actor=actor,
            action="rollback",
            reason="rolled back by an admin",
            old_champion_becomes=ModelVersion.Status.REJECTED,
        )
    return previous
