"""Roles, and who may open what: the queue (analysts), the senior queue, the cockpit (admins);
and what a person may see of a task (blindness, below: the one place that rule lives).

The groups are kept in sync after every migrate (TriageConfig connects ensure_roles), so a
new model's permissions reach admins.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django_htmx.middleware import HtmxDetails

from triage.models import ReviewTask, RoutingPolicy

ANALYSTS = "analysts"
ADMINS = "admins"
# Analysts trusted with the senior queue (escalations, disagreements). Admins are seniors too.
SENIORS = "senior analysts"

ANALYST_PERMISSIONS = [
    ("triage", "add_review"),
    ("triage", "view_reviewtask"),
    ("triage", "view_item"),
    ("triage", "view_category"),
]
# Admins manage everything in these apps: categories, thresholds, tokens, models,
# webhook endpoints, deliveries and rules...
ADMIN_APPS = ["triage", "actions", "reviews"]
# ...except these records, which they may only view: the audit log (append-only) and what
# decisions and training rest on (changed only through the product's own, logged flows).
VIEW_ONLY_MODELS = [
    ("triage", "auditlog"),
    ("triage", "item"),
    ("triage", "embedding"),
    ("triage", "prediction"),
    ("triage", "reviewtask"),
    ("triage", "review"),
    ("triage", "trainingexample"),
    # Trust records change only through the quality page's logged actions.
    ("reviews", "reviewcheck"),
    ("reviews", "quarantine"),
    ("reviews", "heldlabel"),
]
# Admins review too (the queue asks for add_review); it creates a Review through the flow.
ADMIN_EXTRA_PERMISSIONS = [("triage", "add_review")]


def ensure_roles(**kwargs: Any) -> None:
    analysts, _ = Group.objects.get_or_create(name=ANALYSTS)
    admins, _ = Group.objects.get_or_create(name=ADMINS)
    seniors, _ = Group.objects.get_or_create(name=SENIORS)
    analyst_perms = [
        p
        for p in Permission.objects.filter(content_type__app_label="triage").select_related(
            "content_type"
        )
        if (p.content_type.app_label, p.codename) in ANALYST_PERMISSIONS
    ]
    analysts.permissions.set(analyst_perms)
    seniors.permissions.set(analyst_perms)
    admins.permissions.set(
        p
        for p in Permission.objects.filter(content_type__app_label__in=ADMIN_APPS).select_related(
            "content_type"
        )
        if (p.content_type.app_label, p.content_type.model) not in VIEW_ONLY_MODELS
        or p.codename.startswith("view_")
        or (p.content_type.app_label, p.codename) in ADMIN_EXTRA_PERMISSIONS
    )


def is_senior(user: User | AnonymousUser) -> bool:
    """Who may take the senior queue: superusers, admins and senior analysts."""
    if not user.is_authenticated:
        return False
    return bool(user.is_superuser) or user.groups.filter(name__in=[ADMINS, SENIORS]).exists()


def can_review(user: User | AnonymousUser) -> bool:
    """Whether the user may work the queue: `user.has_perm("triage.add_review")` as the
    model backend answers it (active, and superuser or the permission directly or through
    a group), in one EXISTS. has_perm loads every permission the user has in two queries,
    hundreds of rows for an admin, on each of the queue's requests."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return Permission.objects.filter(
        Q(user=user) | Q(group__user=user),
        content_type__app_label="triage",
        codename="add_review",
    ).exists()


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


View = TypeVar("View", bound=Callable[..., HttpResponse])


def is_admin(user: User | AnonymousUser) -> bool:
    return bool(
        user.is_authenticated and (user.is_superuser or user.groups.filter(name=ADMINS).exists())
    )


def admin_required(view: View) -> View:
    """Anonymous visitors go to the login page; signed-in non-admins get a 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_admin(request.user):
            raise PermissionDenied("the cockpit is for the admins group")
        return view(request, *args, **kwargs)

    return login_required(wrapped)  # type: ignore[return-value]


# --- Blindness: what a person may see of a task ----------------------------------------
# Audits measure the model's precision, second reviews and disagreements measure the first
# reviewer: shown the model's answer (or the first decision), people tend to agree with it,
# and the check would measure that instead. So these tasks are blind, and under the
# blind-review policy every task is. Every page, panel and API answer asks here.

BLIND_REASONS = (
    ReviewTask.Reason.AUDIT_SAMPLE,
    ReviewTask.Reason.SECOND_REVIEW,
    ReviewTask.Reason.DISAGREEMENT,
)
# Tasks that check someone's decision: until they close, that decision is not final.
CHECK_REASONS = (ReviewTask.Reason.SECOND_REVIEW, ReviewTask.Reason.DISAGREEMENT)


def is_blind(task: ReviewTask) -> bool:
    """Whoever decides this task sees no suggestion, confidence or model-based reason."""
    return task.reason in BLIND_REASONS or RoutingPolicy.current().blind_review


@dataclass(frozen=True)
class Viewer:
    """What one person may see of tasks, read once per request (not once per row)."""

    admin: bool
    blind_review: bool

    def sees_model_on(self, task: ReviewTask) -> bool:
        """Whether, outside the deciding card, this person may see what the model said
        about `task` and whether a decision agreed with it. Admins may (they see audits
        anyway); nobody else may on a blind task."""
        return self.admin or not (self.blind_review or task.reason in BLIND_REASONS)


def viewer(user: User | AnonymousUser) -> Viewer:
    return Viewer(admin=is_admin(user), blind_review=RoutingPolicy.current().blind_review)


def blind_task_q(prefix: str = "") -> Q:
    """The tasks is_blind() holds blind, as a filter (`prefix`: the path to the task)."""
    if RoutingPolicy.current().blind_review:
        return Q(**{f"{prefix}pk__isnull": False})  # every task
    return Q(**{f"{prefix}reason__in": BLIND_REASONS})


Q_ = TypeVar("Q_", bound=QuerySet[Any])


def under_check(items: Q_) -> Q_:
    """`items` annotated with `under_check`: a second review or disagreement is open on
    the item, so its decision so far is shown nowhere until the check closes."""
    open_checks = ReviewTask.objects.filter(
        item=OuterRef("pk"), completed_at__isnull=True, reason__in=CHECK_REASONS
    )
    annotated: Q_ = items.annotate(under_check=Exists(open_checks))
    return annotated
