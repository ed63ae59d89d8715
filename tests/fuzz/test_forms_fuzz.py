"""The admin's, the cockpit's and the review queue's forms under random field values:
never a 5xx, and a refused submission writes nothing (no row added, changed or deleted)."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import event, given
from hypothesis import strategies as st

from triage import training
from triage.access import ADMINS
from triage.actions.models import Endpoint, Event
from triage.models import (
    ApiToken,
    AuditLog,
    Category,
    Item,
    ModelVersion,
    Review,
    ReviewTask,
    RoutingPolicy,
)
from triage.monitoring.models import CategoryWatch
from triage.routing.models import Rule
from triage.training.models import TrainingExample

from ..factories import make_item, make_labelled_history, make_task, make_user
from .strategies import FUZZ, TEXT, form_body

pytestmark = pytest.mark.django_db

# Small tables are compared value by value (an UPDATE must not slip through); big ones
# by their row counts.
SMALL = [Category, RoutingPolicy, Endpoint, Rule, ApiToken, ModelVersion, CategoryWatch]
BIG = [AuditLog, Item, ReviewTask, Review, TrainingExample, Event]


def stored_state() -> dict[str, Any]:
    state: dict[str, Any] = {m.__name__: list(m.objects.order_by("pk").values()) for m in SMALL}
    state.update({m.__name__: m.objects.count() for m in BIG})
    # A token's last use is touched by authentication, not by a form.
    for token in state["ApiToken"]:
        token.pop("last_used_at")
    return state


# Values a form might get: hostile text, numbers at and past their limits, plausible
# choices (so that some submissions are accepted and the success path is exercised too).
PLAUSIBLE = st.sampled_from(
    [
        "1",
        "0",
        "0.5",
        "0.95",
        "1.5",
        "-1",
        "1e309",
        "nan",
        "on",
        "billing",
        "outage",
        "per_category",
        "pooled",
        "target",
        "threshold",
        "global",
        "keywords",
        "regex",
        "metadata",
        "route",
        "review",
        "ingest",
        "metrics",
        "item.routed",
        '["vip"]',
        "(a+)+$",
        "https://hooks.example.org/x",
        "http://127.0.0.1/x",
        "a-new-name",
    ]
)
VALUE = st.one_of(PLAUSIBLE, TEXT)


def fields_strategy(valid: dict[str, str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """A valid submission with some fields replaced, dropped or repeated, plus odd extras:
    so both the refusals and the success path are exercised."""

    def field(name: str, good: str) -> st.SearchStrategy[list[tuple[str, str]]]:
        return st.one_of(
            st.just([(name, good)]),
            st.just([(name, good)]),
            st.lists(VALUE, max_size=2).map(lambda values: [(name, v) for v in values]),
        )

    extra = st.lists(st.tuples(TEXT, VALUE), max_size=2)
    return st.tuples(st.tuples(*(field(n, v) for n, v in valid.items())), extra).map(
        lambda parts: [pair for group in parts[0] for pair in group] + parts[1]
    )


@pytest.fixture
def world(categories, client):
    make_labelled_history(categories)
    version = training.retrain().version
    user = make_user("fuzz-admin", group=ADMINS)
    client.force_login(user)
    return {"client": client, "version": version, "user": user}


def submit(
    client, url: str, fields: list[tuple[str, str]], accepted: Callable[[Any], bool]
) -> None:
    before = stored_state()
    response = client.post(
        url, data=form_body(fields), content_type="application/x-www-form-urlencoded"
    )
    event(f"status {response.status_code}")
    assert response.status_code < 500, response.content[:500]
    if not accepted(response):
        assert stored_state() == before, (response.status_code, fields)


def redirected(response) -> bool:
    return response.status_code == 302


def token_shown(response) -> bool:
    return response.status_code == 200 and b'id="issued-token"' in response.content


def secret_shown(response) -> bool:
    return response.status_code == 200 and b'id="issued-secret"' in response.content


# A valid submission of each form ({billing}, {policy}: ids from the fixture).
ADMIN_FORMS = {
    "/admin/triage/category/add/": {
        "name": "Refunds",
        "slug": "refunds",
        "description": "refund money back",
        "action_queue": "refunds",
        "threshold": "",
        "target_precision": "",
        "is_active": "on",
    },
    "/admin/triage/routingpolicy/{policy}/change/": {
        "target_precision": "",
        "delta": "0.05",
        "certification": "per_category",
        "min_support": "30",
        "default_threshold": "0.9",
        "audit_rate": "0",
        "audit_floor": "20",
    },
    # An address literal: a host name would be resolved (the private-address check).
    "/admin/actions/endpoint/add/": {
        "url": "https://93.184.216.34/hook",
        "description": "desk",
        "is_active": "on",
        "event_types": "item.routed",
        "categories": "{billing}",
    },
    "/admin/triage/rule/add/": {
        "name": "vip",
        "position": "10",
        "is_active": "on",
        "condition": "keywords",
        "keywords": "refund",
        "pattern": "",
        "metadata_field": "",
        "metadata_values": "",
        "action": "route",
        "category": "{billing}",
    },
    "/admin/triage/apitoken/add/": {"name": "bridge", "scopes": "ingest"},
    # The changelist's list_editable formset and its actions.
    "/admin/triage/category/": {
        "action": "delete_selected",
        "_selected_action": "{billing}",
        "index": "0",
        "select_across": "0",
    },
}


def ids(world) -> dict[str, Any]:
    return {
        "policy": RoutingPolicy.current().pk,
        "billing": Category.objects.get(slug="billing").pk,
        "version": world["version"].pk,
    }


@pytest.mark.parametrize("url", sorted(ADMIN_FORMS))
def test_admin_forms_never_fail_and_write_nothing_when_refused(world, url):
    known = ids(world)
    valid = {name: value.format(**known) for name, value in ADMIN_FORMS[url].items()}
    # A new token, or a new endpoint's signing secret, is shown once on its own page (200);
    # everything else saved redirects.
    accepted = (
        token_shown
        if url.startswith("/admin/triage/apitoken/")
        else secret_shown
        if url == "/admin/actions/endpoint/add/"
        else redirected
    )

    @FUZZ
    @given(fields=fields_strategy(valid))
    def run(fields):
        submit(world["client"], url.format(**known), fields, accepted)

    run()


COCKPIT_FORMS: dict[str, tuple[dict[str, str], Callable[[Any], bool]]] = {
    "/cockpit/categories/billing/save": (
        {"mode": "target", "target": "0.9", "threshold": ""},
        redirected,
    ),
    # Refusals redirect too, back to the saved view (?saved=1); success to the page itself.
    "/cockpit/categories/billing/reroute": (
        {"expected": "0"},
        lambda r: r.status_code == 302 and "saved=" not in r["Location"],
    ),
    "/cockpit/categories/billing/resume": ({"reason": "checked by hand"}, redirected),
    "/cockpit/categories/billing/preview": (
        {"mode": "threshold", "target": "", "threshold": "0.8"},
        lambda r: False,
    ),
    "/cockpit/models/{version}/promote": ({"confirm": "1"}, redirected),
    "/cockpit/models/rollback": ({"confirm": "1"}, redirected),
}


@pytest.mark.parametrize("url", sorted(COCKPIT_FORMS))
def test_cockpit_forms_never_fail_and_write_nothing_when_refused(world, url):
    valid, accepted = COCKPIT_FORMS[url]

    @FUZZ
    @given(fields=fields_strategy(valid))
    def run(fields):
        submit(world["client"], url.format(**ids(world)), fields, accepted)

    run()


def test_cockpit_queries_never_fail(world):
    client = world["client"]

    query_fields = {"mode": "target", "target": "0.9", "a": "1", "b": "1", "action": "policy"}

    @FUZZ
    @given(fields=fields_strategy(query_fields))
    def run(fields):
        query = form_body(fields).decode()
        for url in [
            "/cockpit/categories/billing/preview",
            "/cockpit/models/compare",
            "/cockpit/audit/",
        ]:
            before = stored_state()
            response = client.get(f"{url}?{query}")
            assert response.status_code < 500, (url, response.content[:500])
            assert stored_state() == before

    run()


def test_review_decisions_never_fail_and_write_nothing_when_refused(world):
    client = world["client"]

    @FUZZ
    @given(fields=fields_strategy({"category": "billing", "shown_at": "1700000000"}))
    def run(fields):
        lease = timezone.now() + timedelta(minutes=10)
        task = make_task(
            make_item("please refund my card"), claimed_by=world["user"], lease_expires_at=lease
        )
        # Accepted: on to the queue (302). Refused: 400 or 409, the card with the error.
        submit(client, f"/reviews/tasks/{task.pk}/decide", fields, redirected)

    run()
