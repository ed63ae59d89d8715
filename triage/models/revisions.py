"""Revision counters on the rows routing is derived from (the policy, the categories).

Certifying thresholds is too slow to redo for every classify batch, so the
derived policy is cached per process (triage.routing.cache) under a key built
from these counters. Every write bumps its row's counter: save() through the
models' save methods, QuerySet.update() (and so bulk_update) through
RevisionQuerySet. Deleting a row changes the number of rows, which the key
also holds.

Why a random step rather than +1: a transaction can derive and cache a policy
under its own uncommitted revision and then roll back; with +1 the next
committed change would reuse that number for different content, and the stale
entry would be served. With a step drawn from a million values a rolled-back
revision is practically never reused, while committed revisions still only go
up (so two writers that commit in either order always change the key).
"""

import secrets
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import models
from django.db.models.expressions import Combinable

REVISION_STEP = 1 << 20

M = TypeVar("M", bound=models.Model)


def revision_step() -> int:
    return secrets.randbelow(REVISION_STEP) + 1


def next_revision() -> Combinable:
    """An atomic increment, safe against two writers reading the same revision."""
    return models.F("revision") + revision_step()


class RevisionQuerySet(models.QuerySet[M]):
    def update(self, **kwargs: Any) -> int:
        kwargs.setdefault("revision", next_revision())
        return super().update(**kwargs)


def save_with_revision(
    instance: models.Model, save: Any, args: Sequence[Any], kwargs: dict[str, Any]
) -> None:
    """Call the model's save with its revision bumped, then read the new value back."""
    update_fields = kwargs.get("update_fields")
    if update_fields is not None:
        if not update_fields:
            save(*args, **kwargs)  # Django saves nothing: nothing changes
            return
        kwargs["update_fields"] = {*update_fields, "revision"}
    adding = instance._state.adding
    instance.revision = revision_step() if adding else next_revision()  # type: ignore[attr-defined]
    save(*args, **kwargs)
    if not adding:
        # The F() expression must not linger on the instance (the audit log snapshots it).
        instance.refresh_from_db(fields=["revision"])
