"""GET /api/metrics and `manage.py policy`: the certified numbers an admin reads."""

import pytest
from django.core.management import call_command

from triage import training
from triage.models import RoutingPolicy
from triage.monitoring.summary import metrics_snapshot
from triage.routing.evidence import load_evidence

from .factories import make_labelled_history, make_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def champion(categories):
    make_labelled_history(categories, copies=16)
    return training.retrain().version


def set_policy(**fields):
    RoutingPolicy.objects.update_or_create(pk=1, defaults=fields)


def test_metrics_need_a_token(client, champion):
    response = client.get("/api/metrics")
    assert response.status_code == 401
    assert "bearer token" in response.json()["error"]


def test_metrics_give_per_category_and_pooled_figures(client, champion):
    set_policy(target_precision=0.9, min_support=5, certification="per_category")
    token = make_token()
    response = client.get("/api/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    body = response.json()
    assert body["policy"]["delta"] == 0.05
    assert body["policy"]["certification"] == "per_category"
    assert "95% confidence" in body["guarantee"]
    assert body["champion"]["id"] == champion.pk
    assert body["champion"]["evidence"] == "out_of_fold"
    assert body["champion"]["evidence_count"] == 240
    by_slug = {c["slug"]: c for c in body["categories"]}
    assert set(by_slug) == {"billing", "outage", "other"}
    for row in by_slug.values():
        assert row["target"] == 0.9
        assert row["evidence_count"] == sum(
            1 for s in load_evidence(champion).predicted if champion.labels[s] == row["slug"]
        )
        if row["threshold"] is None:
            assert row["why_not"] and row["automation_share"] == 0.0
        else:
            assert row["certified_bound"] >= 0.9 and row["why_not"] is None
            assert 0 < row["automation_share"] <= 1
    pooled = body["pooled"]
    assert pooled["in_force"] is False
    assert pooled["evidence_count"] == 240
    assert pooled["certified_bound"] >= 0.9
    assert body["overall"]["automation_share"] > 0


def test_pooled_certification_automates_where_categories_alone_cannot(champion):
    # At 97% no category has enough evidence alone; together they do.
    set_policy(target_precision=0.97, min_support=5, certification="per_category")
    alone = metrics_snapshot()
    assert all(c["threshold"] is None for c in alone["categories"])
    assert all("needs about" in c["why_not"] for c in alone["categories"])
    set_policy(certification="pooled")
    pooled = metrics_snapshot()
    assert pooled["pooled"]["in_force"] is True
    assert all(c["threshold"] == pooled["pooled"]["threshold"] for c in pooled["categories"])
    assert all(c["scope"] == "pooled" for c in pooled["categories"])
    assert pooled["overall"]["automation_share"] > 0.5
    # The default falls back to the same pool: every category here is thin at 97%.
    set_policy(certification="fallback")
    fallback = metrics_snapshot()
    assert all(c["scope"] == "pooled" for c in fallback["categories"])
    assert fallback["pooled"]["in_force"] is True
    assert all(len(c["pooled_with"]) == 2 for c in fallback["categories"])
    assert fallback["overall"]["automation_share"] > 0.5
    assert "split across these scopes" in fallback["guarantee"]


def test_all_categories_at_once_splits_delta_across_them(champion):
    from triage.routing.derive import category_rule

    set_policy(target_precision=0.9, min_support=5, certification="all_categories")
    together = {c["slug"]: c for c in metrics_snapshot()["categories"]}
    evidence = load_evidence(champion)
    for slug, row in together.items():
        assert row["scope"] == "all categories"
        split = category_rule(
            slug, target=0.9, threshold=1.0, holdout=evidence, min_support=5, delta=0.05 / 3
        )
        assert row["threshold"] == (
            None if split.rule.threshold is None else round(split.rule.threshold, 4)
        )
        assert row["why_not"] == (None if split.rule.threshold is not None else split.rule.note)


def test_policy_command_prints_the_guarantee_and_pooled_figures(champion, capsys):
    call_command("policy", "--target-precision", "0.9", "--certification", "pooled")
    out = capsys.readouterr().out
    assert "guarantee: With 95% confidence" in out
    assert "auto-actions of the categories following the global target as a whole" in out
    assert "pooled*" in out
    assert "overall: the current rules automate" in out
    policy = RoutingPolicy.current()
    assert (policy.target_precision, policy.certification) == (0.9, "pooled")
    call_command("policy", "--delta", "0.1", "--certification", "per_category")
    out = capsys.readouterr().out
    assert "With 90% confidence" in out
    assert "for each category on its own" in out
    assert RoutingPolicy.current().delta == 0.1


def test_the_frontier_gives_each_target_and_the_highest_certifiable(champion):
    set_policy(target_precision=0.99, min_support=5)
    body = metrics_snapshot()
    shape = body["frontier"]
    assert shape["targets"][0] == 0.8 and shape["targets"][-1] == 0.99
    assert set(shape["categories"]) == {"billing", "outage", "other"}
    for slug, rows in shape["categories"].items():
        assert len(rows) == 20
        highest = shape["highest_certifiable"][slug]
        certified = [r["target"] for r in rows if r["threshold"] is not None]
        # The highest certifiable target is the highest row with a threshold, when any is.
        if certified:
            assert highest == max(certified)
    by_slug = {c["slug"]: c for c in body["categories"]}
    for slug, c in by_slug.items():
        assert c["highest_certifiable"] == shape["highest_certifiable"][slug]
    assert len(shape["overall"]) == 20 and len(shape["pooled"]) == 20
