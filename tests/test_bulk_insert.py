"""insert_rows and insert_values (triage.models.bulk): rows written by COPY are the rows
bulk_create writes, with their keys, in order; a conflict is skipped as bulk_create's
ignore_conflicts does."""

import datetime as dt

import numpy as np
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import make_category, make_item
from triage.models import Embedding, Prediction, ReviewTask, RoutingPolicy
from triage.models.bulk import COPY_MIN, insert_rows, insert_values

pytestmark = [pytest.mark.needs_postgres("COPY is PostgreSQL's"), pytest.mark.django_db]

WHEN = dt.datetime(2026, 12, 6, 9, 30, 15, 123456, tzinfo=dt.UTC)


def predictions(items, category, n):
    return [
        Prediction(
            item=items[i],
            label=category,
            confidence=0.5 + i / 1000,
            scores=[{"label": "ü \\ \t\n 'quoted' \"x\"", "confidence": i / 7, "none": None}],
            route=Prediction.Route.AUTO if i % 2 else Prediction.Route.REVIEW,
            reason="above_threshold",
            threshold=None if i % 3 else 0.9,
            lower_bound=None,
            mode="per_category",
            created_at=WHEN,
        )
        for i in range(n)
    ]


def stored(ids):
    rows = Prediction.objects.filter(pk__in=ids).order_by("pk").values()
    return [{k: v for k, v in row.items() if k != "id"} for row in rows]


def test_rows_by_copy_equal_the_orm_rows_with_their_keys_in_order():
    category = make_category("billing")
    items = [make_item(f"text {i}") for i in range(COPY_MIN + 5)]
    by_orm = Prediction.objects.bulk_create(predictions(items, category, len(items)))
    with CaptureQueriesContext(connection) as queries:
        by_copy = insert_rows(predictions(items, category, len(items)))
    assert not [q for q in queries.captured_queries if "INSERT" in q["sql"]]
    keys = [p.pk for p in by_copy]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert min(keys) > max(p.pk for p in by_orm)
    assert all(not p._state.adding for p in by_copy)
    assert stored(keys) == stored([p.pk for p in by_orm])
    assert stored(keys)[0]["created_at"] == WHEN
    # The table's sequence moved on: the next ordinary insert gets a key above them.
    after = Prediction.objects.create(
        item=items[0], label=category, confidence=0.9, scores=[], route="auto", reason="x"
    )
    assert after.pk > max(keys)


def test_vector_bytes_come_back_unchanged():
    items = [make_item(f"text {i}") for i in range(COPY_MIN)]
    vectors = [bytes(range(256)) + bytes([i]) * 5 for i in range(len(items))]
    insert_rows(
        [
            Embedding(item=item, encoder="enc", vector=vector)
            for item, vector in zip(items, vectors, strict=True)
        ]
    )
    stored_vectors = dict(Embedding.objects.values_list("item_id", "vector"))
    assert [bytes(stored_vectors[item.pk]) for item in items] == vectors


@pytest.mark.parametrize("n", [COPY_MIN + 1, COPY_MIN - 1])
@pytest.mark.parametrize("as_values", [False, True])
@pytest.mark.parametrize("in_transaction", [False, True])
def test_a_conflicting_row_is_skipped_and_the_others_stored(in_transaction, as_values, n):
    """insert_rows of objects and insert_values of rows alike, by COPY (then bulk_create,
    once the COPY met the conflict) and by bulk_create for a handful."""
    items = [make_item(f"text {i}") for i in range(n)]
    Embedding.objects.create(item=items[3], encoder="enc", vector=b"first")

    def insert():
        if as_values:
            rows = [{"item_id": item.pk, "encoder": "enc", "vector": b"second"} for item in items]
            assert insert_values(Embedding, rows, ignore_conflicts=True) == []
        else:
            insert_rows(
                [Embedding(item=item, encoder="enc", vector=b"second") for item in items],
                ignore_conflicts=True,
            )

    if in_transaction:
        with transaction.atomic():
            insert()
            # The transaction is still usable after the conflict.
            assert Embedding.objects.count() == len(items)
    else:
        insert()
    vectors = dict(Embedding.objects.values_list("item_id", "vector"))
    assert len(vectors) == len(items)
    assert bytes(vectors[items[3].pk]) == b"first"
    assert {bytes(v) for k, v in vectors.items() if k != items[3].pk} == {b"second"}


def test_a_conflict_without_ignore_conflicts_fails_and_writes_nothing():
    items = [make_item(f"text {i}") for i in range(COPY_MIN)]
    Embedding.objects.create(item=items[0], encoder="enc", vector=b"first")
    with pytest.raises(Exception, match="one_embedding_per_encoder"), transaction.atomic():
        insert_rows([Embedding(item=item, encoder="enc", vector=b"x") for item in items])
    assert Embedding.objects.count() == 1


def test_rows_without_a_conflict_get_their_keys_with_ignore_conflicts():
    items = [make_item(f"text {i}") for i in range(COPY_MIN)]
    rows = [{"item_id": item.pk, "encoder": "enc", "vector": b"v"} for item in items]
    keys = insert_values(Embedding, rows, ignore_conflicts=True)
    assert sorted(Embedding.objects.values_list("pk", flat=True)) == keys


def test_a_few_rows_go_through_bulk_create():
    category = make_category("billing")
    items = [make_item(f"text {i}") for i in range(COPY_MIN - 1)]
    with CaptureQueriesContext(connection) as queries:
        rows = insert_rows(predictions(items, category, len(items)))
    assert [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert all(p.pk for p in rows)
    assert insert_rows([]) == []


def test_values_preparation_would_change_are_prepared_as_bulk_create_prepares_them():
    """Values of the column's own type are written as they are; others (a naive datetime,
    an int in a float column, a numpy float, a str subclass) go through Django's
    preparation, so COPY stores what bulk_create stores."""
    category = make_category("billing")
    items = [make_item(f"text {i}") for i in range(COPY_MIN)]

    def odd_rows():
        rows = predictions(items, category, len(items))
        for i, p in enumerate(rows):
            p.created_at = WHEN.replace(tzinfo=None) if i % 2 else WHEN
            p.confidence = [1, np.float32(0.25), 0.5][i % 3]
            p.mode = Prediction.Route.AUTO  # a TextChoices member in a CharField
        return rows

    with pytest.warns(RuntimeWarning, match="naive datetime"):
        by_orm = Prediction.objects.bulk_create(odd_rows())
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        by_copy = insert_rows(odd_rows())
    assert stored([p.pk for p in by_copy]) == stored([p.pk for p in by_orm])


def values_of(items, category, n):
    """predictions() as insert_values' rows, {attname: value}."""
    return [
        {
            "item_id": p.item_id,
            "label_id": p.label_id,
            "confidence": p.confidence,
            "scores": p.scores,
            "route": p.route,
            "reason": p.reason,
            "threshold": p.threshold,
            "mode": p.mode,
            "created_at": p.created_at,
        }  # lower_bound and model_version_id left out: their defaults, None
        for p in predictions(items, category, n)
    ]


@pytest.mark.parametrize("n", [COPY_MIN + 5, COPY_MIN - 1])
def test_rows_given_as_values_are_the_rows_objects_give(n):
    """By COPY above COPY_MIN rows, by bulk_create below: the same stored rows as
    insert_rows of the same predictions as objects, and their keys in order."""
    category = make_category("billing")
    items = [make_item(f"text {i}") for i in range(n)]
    by_objects = insert_rows(predictions(items, category, n))
    with CaptureQueriesContext(connection) as queries:
        keys = insert_values(Prediction, values_of(items, category, n))
    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert bool(inserts) == (n < COPY_MIN)
    assert keys == sorted(keys) and len(set(keys)) == n
    assert min(keys) > max(p.pk for p in by_objects)
    assert stored(keys) == stored([p.pk for p in by_objects])


def test_a_field_left_out_takes_its_default_and_a_callable_one_per_row():
    items = [make_item(f"text {i}") for i in range(COPY_MIN)]
    started = timezone.now()
    keys = insert_values(ReviewTask, [{"item_id": item.pk, "reason": "low"} for item in items])
    tasks = list(ReviewTask.objects.filter(pk__in=keys).order_by("pk"))
    assert [t.item_id for t in tasks] == [item.pk for item in items]
    assert {(t.priority, t.margin, t.senior_only, t.claimed_by_id) for t in tasks} == {
        (0, 1.0, False, None)
    }
    assert all(t.created_at >= started for t in tasks)


def test_values_preparation_would_change_are_prepared_for_values_too():
    category = make_category("billing")
    items = [make_item(f"text {i}") for i in range(COPY_MIN)]
    rows = values_of(items, category, len(items))
    for i, row in enumerate(rows):
        row["created_at"] = WHEN.replace(tzinfo=None) if i % 2 else WHEN
        row["confidence"] = [1, np.float32(0.25), 0.5][i % 3]
        row["mode"] = Prediction.Route.AUTO
    objects = predictions(items, category, len(items))
    for i, p in enumerate(objects):
        p.created_at, p.confidence, p.mode = (
            rows[i]["created_at"],
            rows[i]["confidence"],
            rows[i]["mode"],
        )
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        by_orm = Prediction.objects.bulk_create(objects)
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        keys = insert_values(Prediction, rows)
    assert stored(keys) == stored([p.pk for p in by_orm])


def test_a_field_the_model_does_not_have_is_refused_and_nothing_written():
    items = [make_item(f"text {i}") for i in range(COPY_MIN)]
    rows = [{"item_id": item.pk, "reason": "low"} for item in items]
    rows[-1]["reviewer"] = 7
    with pytest.raises(TypeError, match="ReviewTask has no field.s. reviewer"):
        insert_values(ReviewTask, rows)
    assert not ReviewTask.objects.exists()


@pytest.mark.parametrize("n", [1, COPY_MIN])
def test_a_field_set_on_save_is_refused_by_either_path(n):
    """RoutingPolicy.updated_at is auto_now: it has no value until an object is saved, so
    insert_values refuses the model, by COPY or by bulk_create alike."""
    before = RoutingPolicy.objects.count()
    with pytest.raises(ValueError, match="updated_at is set on save"):
        insert_values(RoutingPolicy, [{} for _ in range(n)])
    assert RoutingPolicy.objects.count() == before
