"""/cockpit/ took 40 s on stale planner statistics, until ANALYZE: its open-tasks-per-
category query walked the predictions' primary key backwards for every open task. It
must read each task's latest prediction from an index, whatever the statistics say."""

import pytest
from django.db import connection

from tests.factories import make_item, make_prediction, make_task
from triage.cockpit.figures import queue_by_category, queue_rows
from triage.models import Item

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres("the planner")]


def test_the_latest_prediction_per_open_task_is_read_from_its_index(categories):
    items = [make_item(f"message {n}", status=Item.Status.IN_REVIEW) for n in range(40)]
    for item in items:
        make_prediction(item, categories["billing"], route="review")
        make_prediction(item, categories["outage"], route="review")
    for item in items[:10]:
        make_task(item)
    with connection.cursor() as cursor:
        # As after a bulk load that autovacuum has not analysed yet.
        cursor.execute(
            "UPDATE pg_class SET reltuples = -1, relpages = 0 "
            "WHERE relname IN ('triage_item', 'triage_prediction', 'reviews_reviewtask')"
        )
    plan = queue_rows().explain()
    assert "prediction_item_latest_idx" in plan, plan
    assert "Backward using triage_prediction_pkey" not in plan, plan
    assert queue_by_category()["outage"]["n"] == 10
