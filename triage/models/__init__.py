"""The core's records, one module per aggregate.

Models that belong to one concern live with it and register through TriageConfig
(triage.apps): training examples in triage.training.models, rules in
triage.routing.models, audits, watches and alerts in triage.monitoring.models, mask
patterns in triage.privacy.models.
"""

from triage.models.audit_log import AuditLog, actor_name, snapshot
from triage.models.categories import (
    DEFAULT_HOTKEYS,
    RESERVED_KEYS,
    TARGET_RANGE,
    UNIT_INTERVAL,
    Category,
    first_free_hotkey,
    validate_delta,
    validate_hotkey,
    validate_target,
)
from triage.models.items import (
    Embedding,
    Item,
    ItemQuerySet,
    Prediction,
    among,
    latest_predictions,
)
from triage.models.policy import RoutingPolicy
from triage.models.queue import HandOff, Review, ReviewTask, ReviewTaskQuerySet
from triage.models.tokens import ApiToken, default_scopes, hash_token
from triage.models.versions import ModelVersion, ModelVersionQuerySet

__all__ = [
    "DEFAULT_HOTKEYS",
    "RESERVED_KEYS",
    "TARGET_RANGE",
    "UNIT_INTERVAL",
    "ApiToken",
    "AuditLog",
    "Category",
    "Embedding",
    "HandOff",
    "Item",
    "ItemQuerySet",
    "ModelVersion",
    "ModelVersionQuerySet",
    "Prediction",
    "among",
    "latest_predictions",
    "Review",
    "ReviewTask",
    "ReviewTaskQuerySet",
    "RoutingPolicy",
    "actor_name",
    "default_scopes",
    "first_free_hotkey",
    "hash_token",
    "snapshot",
    "validate_delta",
    "validate_hotkey",
    "validate_target",
]
