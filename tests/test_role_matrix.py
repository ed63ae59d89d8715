"""Who gets what: every URL pattern × every method × every role, with the expected status.

Roles: anonymous, an analyst, a senior analyst, an admin (the admins group, staff),
and an API token holding exactly one scope, for each scope. A token is a credential
for the API only: on pages it counts as anonymous.

Every pattern of the URLconf (ninja's API routes included) needs an entry in MATRIX;
the admin's ~130 patterns are one family, checked on representative URLs. A new URL
without an entry fails test_every_url_pattern_has_an_entry, which prints the line to
add. Each entry is one line: the example URL and, per method, who gets what, built
from the profiles below (`admins(200)`: an admin gets 200, analysts 403, anyone
else is sent to log in).
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, path

from triage import training
from triage.access import ADMINS, ANALYSTS, SENIORS
from triage.models import ApiToken, Category, RoutingPolicy

from .factories import make_item, make_labelled_history, make_task, make_token, make_user

pytestmark = pytest.mark.django_db

SCOPES = tuple(ApiToken.Scope.values)
PEOPLE = ("analyst", "senior", "admin")
ROLES = ("anonymous", *PEOPLE, *(f"token:{scope}" for scope in SCOPES))
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ADMIN_FAMILY = "admin/"

Statuses = dict[str, int]


# --- Profiles: who gets what for one method ---------------------------------------


def people(anonymous: int, analyst: int, senior: int, admin: int) -> Statuses:
    """Pages: tokens are not sessions, so a token holder is treated as anonymous."""
    session = {"anonymous": anonymous, "analyst": analyst, "senior": senior, "admin": admin}
    return session | {f"token:{scope}": anonymous for scope in SCOPES}


def everyone(status: int) -> Statuses:
    return {role: status for role in ROLES}


def admins(ok: int, *, anonymous: int = 302) -> Statuses:
    """The cockpit: admins get `ok`, analysts and seniors 403, others go to log in (302)."""
    return people(anonymous, 403, 403, ok)


def reviewers(ok: int, *, anonymous: int = 302) -> Statuses:
    """The review queue: every analyst, senior and admin."""
    return people(anonymous, ok, ok, ok)


def staff(ok: int) -> Statuses:
    """The Django admin: staff (the admins group) get `ok`; the rest go to its login page."""
    return people(302, 302, 302, ok)


def token(scope: str, ok: int) -> Statuses:
    """The API: 401 without a token (sessions do not count), 403 with another scope."""
    return {role: 401 for role in ROLES} | {f"token:{s}": ok if s == scope else 403 for s in SCOPES}


@dataclass(frozen=True)
class Entry:
    """Example URL(s) for a pattern, and per method the status each role gets.

    `other` covers the methods not named in `methods`. URLs may use {task}, {version},
    {category} and {token}: ids of objects the fixture creates.
    """

    urls: tuple[str, ...]
    methods: dict[str, Statuses] = field(default_factory=dict)
    other: Statuses = field(default_factory=lambda: everyone(405))

    def expected(self, method: str) -> Statuses:
        return self.methods.get(method, self.other)


def R(*urls: str, other: Statuses | None = None, **methods: Statuses) -> Entry:  # noqa: N802
    return Entry(urls, {m.upper(): s for m, s in methods.items()}, other or everyone(405))


# --- The matrix: one line per URL pattern -------------------------------------------
# Notes: cockpit pages without require_POST answer any method like GET, so `other` is
# their GET status; with empty bodies, forms answer their validation status (422 in the
# cockpit, 400 for a review), the sole champion cannot be promoted again or rolled back
# (409). The API's docs and schema are public and describe no data.

MATRIX: dict[str, Entry] = {
    "": R("/", other=everyone(302)),
    "accounts/login/": R(
        "/accounts/login/", GET=everyone(200), POST=everyone(200), PUT=everyone(200)
    ),
    "accounts/logout/": R("/accounts/logout/", POST=everyone(302)),
    "api/": R("/api/", other=everyone(404)),
    "api/docs": R("/api/docs", other=everyone(200)),
    "api/openapi.json": R("/api/openapi.json", other=everyone(200)),
    "api/items": R("/api/items", POST=token("ingest", 415)),
    "api/items/<path:external_id>": R("/api/items/nothing-here", GET=token("read", 404)),
    "api/events": R("/api/events", GET=token("events", 200)),
    "api/metrics": R("/api/metrics", GET=token("metrics", 200)),
    "api/export": R("/api/export?dataset=items&format=csv", GET=token("export", 200)),
    "metrics": R("/metrics", GET=token("metrics", 200)),
    "reviews/": R("/reviews/", GET=reviewers(200)),
    "reviews/claim": R("/reviews/claim", POST=reviewers(302)),
    "reviews/undo": R("/reviews/undo", GET=reviewers(409)),  # nothing to undo yet
    "reviews/tasks/<int:task_id>/decide": R("/reviews/tasks/{task}/decide", POST=reviewers(400)),
    # A task nobody holds: only admins may open its panel (triage.access, blindness).
    "reviews/tasks/<int:task_id>/similar": R(
        "/reviews/tasks/{task}/similar", GET=people(302, 404, 404, 200)
    ),
    "reviews/tasks/<int:task_id>/bulk": R(
        "/reviews/tasks/{task}/bulk", POST=people(302, 404, 404, 400)
    ),
    "reviews/quality/": R("/reviews/quality/", other=admins(200)),
    "reviews/quality/<int:user_id>/": R("/reviews/quality/999999/", GET=admins(404)),
    "reviews/quality/quarantines/<int:quarantine_id>": R(
        "/reviews/quality/quarantines/999999", POST=admins(404)
    ),
    "reviews/tasks/<int:task_id>/skip": R("/reviews/tasks/{task}/skip", POST=reviewers(409)),
    "reviews/tasks/<int:task_id>/escalate": R(
        "/reviews/tasks/{task}/escalate", POST=reviewers(409)
    ),
    "reviews/tasks/<int:task_id>/heartbeat": R(
        "/reviews/tasks/{task}/heartbeat", POST=reviewers(409)
    ),
    "reviews/decisions/": R("/reviews/decisions/", GET=reviewers(200)),
    # Another analyst's decision, or none: 404 for everyone who may review at all.
    "reviews/decisions/<int:review_id>/": R("/reviews/decisions/999999/", GET=reviewers(404)),
    "reviews/decisions/<int:review_id>/change-all": R(
        "/reviews/decisions/999999/change-all", POST=reviewers(409)
    ),
    "reviews/decisions/<int:review_id>/change": R(
        "/reviews/decisions/999999/change", POST=reviewers(404)
    ),
    "cockpit/": R("/cockpit/", other=admins(200)),
    "cockpit/audit/": R("/cockpit/audit/", other=admins(200)),
    "cockpit/categories/<slug:slug>/": R("/cockpit/categories/billing/", other=admins(200)),
    "cockpit/categories/<slug:slug>/preview": R(
        "/cockpit/categories/billing/preview", other=admins(422)
    ),
    "cockpit/categories/<slug:slug>/save": R(
        "/cockpit/categories/billing/save", POST=admins(422), other=admins(405)
    ),
    "cockpit/categories/<slug:slug>/reroute": R(
        "/cockpit/categories/billing/reroute", POST=admins(302), other=admins(405)
    ),
    "cockpit/categories/<slug:slug>/resume": R(
        "/cockpit/categories/billing/resume", POST=admins(422), other=admins(405)
    ),
    "cockpit/models/": R("/cockpit/models/", other=admins(200)),
    "cockpit/models/compare": R("/cockpit/models/compare", other=admins(200)),
    "cockpit/models/rollback": R("/cockpit/models/rollback", POST=admins(409), other=admins(200)),
    "cockpit/models/<int:pk>/": R("/cockpit/models/{version}/", other=admins(200)),
    "cockpit/models/<int:pk>/promote": R(
        "/cockpit/models/{version}/promote", POST=admins(409), other=admins(200)
    ),
    # The Django admin, as a family: representative pages of each kind.
    ADMIN_FAMILY: R(
        "/admin/",
        "/admin/triage/category/",
        "/admin/triage/category/add/",
        "/admin/triage/category/{category}/change/",
        "/admin/triage/apitoken/{token}/change/",
        "/admin/triage/auditlog/",
        other=staff(200),
    ),
}


# --- Enumerating the URLconf -------------------------------------------------------


def routes(resolver: URLResolver, prefix: str = "") -> Iterator[str]:
    """Every pattern's full route, e.g. 'cockpit/models/<int:pk>/' (ninja's included)."""
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from routes(pattern, prefix + str(pattern.pattern))
        else:
            assert isinstance(pattern, URLPattern)
            yield prefix + str(pattern.pattern)


def matrix_key(route: str) -> str:
    return ADMIN_FAMILY if route.startswith(ADMIN_FAMILY) else route


def unlisted(resolver: URLResolver, matrix: dict[str, Entry]) -> list[str]:
    return sorted({r for r in routes(resolver) if matrix_key(r) not in matrix})


def test_every_url_pattern_has_an_entry():
    missing = unlisted(get_resolver(), MATRIX)
    template = "\n".join(f'    "{r}": R("/example/url", GET=admins(200)),' for r in missing)
    assert not missing, f"URL patterns with no entry in MATRIX; add a line each:\n{template}"


def test_every_entry_is_a_url_pattern():
    known = {matrix_key(r) for r in routes(get_resolver())}
    assert sorted(set(MATRIX) - known) == []


def test_a_new_url_without_an_entry_is_caught():
    urlconf = ModuleType("urls_with_a_new_page")
    urlconf.urlpatterns = [  # type: ignore[attr-defined]
        *get_resolver().url_patterns,
        path("reports/weekly/", lambda request: None),
    ]
    assert unlisted(get_resolver(urlconf), MATRIX) == ["reports/weekly/"]


def test_the_admin_family_covers_the_admins_patterns():
    admin_routes = [r for r in routes(get_resolver()) if r.startswith(ADMIN_FAMILY)]
    assert len(admin_routes) > 50  # every registered model's pages, and nothing unlisted
    assert unlisted(get_resolver(), MATRIX) == []


# --- Running it ---------------------------------------------------------------------


def _user(role: str) -> User:
    group = {"analyst": ANALYSTS, "senior": SENIORS, "admin": ADMINS}[role]
    return make_user(f"matrix-{role}", group=group)


@pytest.fixture
def world(categories) -> dict[str, Any]:
    """A champion, a review task, a token: objects the example URLs name."""
    make_labelled_history(categories)
    RoutingPolicy.objects.update_or_create(
        pk=1, defaults={"target_precision": 0.7, "min_support": 5, "audit_rate": 0}
    )
    version = training.retrain().version
    task = make_task(make_item("please refund my card"))
    token_obj, _ = ApiToken.issue("matrix-example")
    ids = {
        "task": task.pk,
        "version": version.pk,
        "category": Category.objects.get(slug="billing").pk,
        "token": token_obj.pk,
    }
    clients: dict[str, tuple[Client, dict[str, str]]] = {"anonymous": (Client(), {})}
    for role in PEOPLE:
        client = Client()
        client.force_login(_user(role))
        clients[role] = (client, {})
    for scope in SCOPES:
        plain = make_token(f"matrix-{scope}", scopes=[scope])
        clients[f"token:{scope}"] = (Client(), {"HTTP_AUTHORIZATION": f"Bearer {plain}"})
    return {"ids": ids, "clients": clients}


@pytest.mark.parametrize("key", sorted(MATRIX))
def test_each_role_gets_the_expected_status(world, key, settings):
    settings.TRIAGE_API_RATE_LIMIT = None  # hundreds of requests per token here
    entry = MATRIX[key]
    wrong = []
    for template in entry.urls:
        url = template.format(**world["ids"])
        for method in METHODS:
            expected = entry.expected(method)
            got = {}
            for role in ROLES:
                client, headers = world["clients"][role]
                got[role] = client.generic(method, url, **headers).status_code
            if got != expected:
                diff = ", ".join(
                    f"{role} {got[role]} (not {expected[role]})"
                    for role in ROLES
                    if got[role] != expected[role]
                )
                wrong.append(f"{method} {url}: {diff}")
    assert not wrong, "\n".join(wrong)


# --- What no answer reveals to anyone but admins --------------------------------------
# Audits, second reviews and disagreements are blind (triage.access): no page or API
# answer shows their agreement, suggestion or confidence, which open tasks are audits,
# or a first decision while a second review or disagreement is open on its item.

# (method, url, data, strings no non-admin may find in the answer). URLs name:
# {audited}/{checked} external ids; the analyst's own decisions page is theirs.
SECRET_ROWS = [
    ("GET", "/reviews/decisions/", {}, ("<td>yes</td>", "<td>no</td>")),
    ("GET", "/reviews/decisions/?agreed=yes", {}, ("data-review=",)),
    ("GET", "/reviews/decisions/?agreed=no", {}, ("data-review=",)),
    ("GET", "/reviews/decisions/{own_audit}/", {}, ("Model suggests", "99%")),
    ("GET", "/api/items/{audited}", {}, ("audit",)),
    ("GET", "/api/items/{checked}", {}, ("billing", "matrix-first")),
]
# Asked by task id, an audit and an ordinary open task answer alike (status and body).
TWIN_ROWS = [
    ("GET", "/reviews/tasks/{task}/similar", {}),
    ("POST", "/reviews/tasks/{task}/bulk", {"category": "billing"}),
]


@pytest.fixture
def blind_world(world, categories) -> dict[str, Any]:
    from datetime import timedelta

    from django.utils import timezone

    from reviews.decisions import submit_review
    from reviews.trust.second_review import ask_second_review
    from triage.models import Item, ReviewTask

    from .factories import make_prediction

    billing = categories["billing"]
    later = timezone.now() + timedelta(minutes=5)
    ids: dict[str, Any] = {}

    def decide(user: User, item: Item, reason: str) -> Any:
        task = make_task(item, reason=reason, claimed_by=user, lease_expires_at=later)
        return submit_review(task_id=task.pk, user=user, category_slug="billing")

    # Each person decided an audit as the model had it: agreed_with_model is True.
    for role in PEOPLE:
        user = User.objects.get(username=f"matrix-{role}")
        item = make_item("audited refund", status=Item.Status.ROUTED, final_category=billing)
        make_prediction(item, billing, reason="audit_sample")
        ids[f"own_audit:{role}"] = decide(user, item, ReviewTask.Reason.AUDIT_SAMPLE).pk
    ids["audited"] = item.external_id
    # An open audit, its twin (an ordinary task), and an item under second review.
    audit_item = make_item("refund twin", status=Item.Status.ROUTED, final_category=billing)
    make_prediction(audit_item, billing, reason="audit_sample")
    ids["audit_task"] = make_task(audit_item, reason=ReviewTask.Reason.AUDIT_SAMPLE).pk
    ordinary = make_item("refund twin", status=Item.Status.IN_REVIEW)
    make_prediction(ordinary, billing, route="review", reason="below_threshold")
    ids["ordinary_task"] = make_task(ordinary).pk
    first = make_user("matrix-first")
    checked = make_item("checked refund", status=Item.Status.IN_REVIEW)
    first_review = decide(first, checked, ReviewTask.Reason.LOW_CONFIDENCE)
    ask_second_review(first_review, why="random")
    ids["checked"] = checked.external_id
    return world | {"blind": ids}


@pytest.mark.parametrize("role", ROLES)
def test_no_answer_reveals_blind_state_to_anyone_but_admins(blind_world, role, settings):
    settings.TRIAGE_API_RATE_LIMIT = None
    ids = blind_world["blind"]
    client, headers = blind_world["clients"][role]
    found = []
    for method, template, _data, secrets in SECRET_ROWS:
        own = ids.get(f"own_audit:{role}", 999999)
        url = template.format(own_audit=own, audited=ids["audited"], checked=ids["checked"])
        answer = client.generic(method, url, **headers)
        body = answer.content.decode()
        found += [f"{method} {url}: {s!r}" for s in secrets if s in body]
    if role == "admin":
        # The admin sees what the others may not: proof the rows can catch a leak.
        assert "GET /reviews/decisions/: '<td>yes</td>'" in found
    else:
        assert found == [], "\n".join(found)


@pytest.mark.parametrize("role", ROLES)
def test_by_task_id_an_audit_answers_as_any_other_task(blind_world, role, settings):
    settings.TRIAGE_API_RATE_LIMIT = None
    ids = blind_world["blind"]
    client, headers = blind_world["clients"][role]
    differ = []
    for method, template, data in TWIN_ROWS:
        answers = []
        for task in (ids["audit_task"], ids["ordinary_task"]):
            url = template.format(task=task)
            answer = client.generic(
                method,
                url,
                urlencode(data | {"tasks": task}),
                **headers,
                content_type="application/x-www-form-urlencoded",
            )
            body = answer.content.decode().replace(str(task), "{task}")
            answers.append((answer.status_code, body))
        if answers[0] != answers[1] and role != "admin":
            differ.append(f"{method} {template}: {answers[0][0]} vs {answers[1][0]}")
    assert differ == []
