import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.factories import make_item
from triage.models import ApiToken, Category, Item, ReviewTask, hash_token
from triage.training.models import TrainingExample

pytestmark = pytest.mark.django_db


def write_csv(tmp_path, text, name="items.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(tmp_path, rows, name="items.jsonl"):
    path = tmp_path / name
    path.write_text(
        "\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n",
        encoding="utf-8",
    )
    return path


def import_items(path, *args):
    out, err = StringIO(), StringIO()
    call_command("import_items", str(path), *args, verbosity=0, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def nothing_written():
    return not Item.objects.exists() and not TrainingExample.objects.exists()


# --- import_items: what gets stored ---------------------------------------------


def test_labelled_csv_rows_become_resolved_items_and_training_examples(tmp_path, categories):
    path = write_csv(
        tmp_path,
        "external_id,text,label\n"
        "h-1,please refund my card,billing\n"
        "h-2,the server is down,outage\n",
    )
    out, _ = import_items(path)
    assert "2 labelled row(s) as history" in out

    items = {i.external_id: i for i in Item.objects.all()}
    assert set(items) == {"h-1", "h-2"}
    for external_id, slug in [("h-1", "billing"), ("h-2", "outage")]:
        item = items[external_id]
        assert item.status == Item.Status.RESOLVED
        assert item.final_category.slug == slug
        assert item.decided_by == "import"
        assert item.source == Item.Source.IMPORT
        example = TrainingExample.objects.get(item=item)
        assert example.source == TrainingExample.Source.IMPORT
        assert example.category.slug == slug
        assert example.text == item.text
    # History is already decided: nothing is classified or queued for review.
    assert not ReviewTask.objects.exists()
    assert not Item.objects.filter(predictions__isnull=False).exists()


def test_unlabelled_rows_are_ingested_and_classified_on_commit(
    tmp_path, categories, django_capture_on_commit_callbacks
):
    path = write_csv(
        tmp_path,
        "external_id,text,label\nn-1,the server is down,\nh-1,please refund my card,billing\n",
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        out, _ = import_items(path)
    assert len(callbacks) == 1
    assert "1 labelled row(s) as history, 1 queued for classification" in out

    fresh = Item.objects.get(external_id="n-1")
    assert fresh.source == Item.Source.IMPORT
    # Cold start: no model yet, so the item waits for a reviewer.
    assert fresh.status == Item.Status.IN_REVIEW
    assert fresh.predictions.get().reason == "cold_start"
    assert ReviewTask.objects.filter(item=fresh).exists()
    assert not TrainingExample.objects.filter(item=fresh).exists()
    assert Item.objects.get(external_id="h-1").status == Item.Status.RESOLVED


def test_unlabelled_rows_are_queued_only_after_the_import_commits(
    tmp_path, categories, django_capture_on_commit_callbacks
):
    path = write_csv(tmp_path, "external_id,text\nn-1,hello\nn-2,thanks\n")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        import_items(path)
    assert len(callbacks) == 1
    assert set(Item.objects.values_list("status", flat=True)) == {Item.Status.RECEIVED}


@pytest.mark.django_db(transaction=True)
def test_a_committed_import_classifies_its_unlabelled_rows(tmp_path, categories):
    path = write_csv(tmp_path, "external_id,text\nn-1,the server is down\n")
    import_items(path)
    assert Item.objects.get(external_id="n-1").status == Item.Status.IN_REVIEW


def test_extra_csv_columns_become_metadata(tmp_path, categories):
    path = write_csv(
        tmp_path, "external_id,text,label,customer,channel\nh-1,refund,billing,acme,email\n"
    )
    import_items(path)
    assert Item.objects.get().metadata == {"customer": "acme", "channel": "email"}


def test_a_csv_with_a_byte_order_mark_is_read(tmp_path, categories):
    path = tmp_path / "bom.csv"
    path.write_text("external_id,text,label\nh-1,refund,billing\n", encoding="utf-8-sig")
    import_items(path)
    assert Item.objects.get().external_id == "h-1"


def test_jsonl_rows_are_imported_with_metadata(tmp_path, categories):
    path = write_jsonl(
        tmp_path,
        [
            {"external_id": "h-1", "text": "refund", "label": "billing", "metadata": {"a": 1}},
            "",
            {"external_id": "h-2", "text": "down", "label": "outage"},
        ],
    )
    out, _ = import_items(path)
    assert "2 labelled row(s) as history" in out
    assert Item.objects.get(external_id="h-1").metadata == {"a": 1}
    assert TrainingExample.objects.count() == 2


def test_importing_the_same_file_twice_stores_nothing_new(tmp_path, categories):
    path = write_csv(tmp_path, "external_id,text,label\nh-1,refund,billing\n")
    import_items(path)
    out, _ = import_items(path)
    assert "0 labelled row(s) as history" in out
    assert "1 already present" in out
    assert Item.objects.count() == 1
    assert TrainingExample.objects.count() == 1


# --- import_items: labels ---------------------------------------------------------


def test_an_unknown_label_fails_naming_the_label_and_line(tmp_path, categories):
    path = write_csv(
        tmp_path,
        "external_id,text,label\nh-1,refund,billing\nh-2,hello,complaints\n",
    )
    with pytest.raises(CommandError) as exc:
        import_items(path)
    message = str(exc.value)
    assert "line 3" in message
    assert "'complaints'" in message
    assert "--create-categories" in message
    assert "nothing was imported" in message
    assert nothing_written()
    assert not Category.objects.filter(slug="complaints").exists()


def test_create_categories_adds_an_unknown_label(tmp_path, categories):
    path = write_csv(tmp_path, "external_id,text,label\nh-1,hello,complaints\n")
    out, _ = import_items(path, "--create-categories")
    assert "created categories: complaints" in out
    category = Category.objects.get(slug="complaints")
    assert Item.objects.get().final_category == category
    assert TrainingExample.objects.get().category == category


def test_create_categories_refuses_a_label_that_is_not_a_slug(tmp_path, categories):
    path = write_csv(tmp_path, "external_id,text,label\nh-1,hello,Angry Customers\n")
    with pytest.raises(CommandError, match=r"line 2: label 'Angry Customers' is not a valid"):
        import_items(path, "--create-categories")
    assert nothing_written()
    assert Category.objects.count() == 3


# --- import_items: bad rows ---------------------------------------------------------


def test_a_csv_text_of_150000_characters_is_imported(tmp_path, categories):
    """Over the csv module's default field limit (131,072), within ingest's (200,000)."""
    text = ("refund my card " * 10_000)[:150_000]
    path = write_csv(tmp_path, f"external_id,text,label\nlong-1,{text},billing\n")
    import_items(path)
    assert Item.objects.get(external_id="long-1").text == text


def test_a_csv_text_over_the_limit_fails_naming_its_line_and_field(tmp_path, categories):
    for length, name in [(200_001, "over.csv"), (400_000, "far-over.csv")]:
        path = write_csv(tmp_path, f"external_id,text\nok-1,fine\nlong-1,{'x' * length}\n", name)
        with pytest.raises(CommandError, match="line 3") as exc:
            import_items(path)
        assert "text" in str(exc.value) or "field larger" in str(exc.value)
        assert nothing_written()


def test_a_row_without_text_fails_with_its_line_and_nothing_is_written(tmp_path, categories):
    path = write_csv(
        tmp_path,
        "external_id,text,label\nh-1,refund,billing\nh-2,,outage\nn-1,unlabelled\n",
    )
    with pytest.raises(CommandError) as exc:
        import_items(path)
    assert "line 3: text must not be empty" in str(exc.value)
    assert "1 bad row(s)" in str(exc.value)
    assert nothing_written()


def test_skip_invalid_imports_the_good_rows_and_lists_the_skipped_lines(
    tmp_path, categories, django_capture_on_commit_callbacks
):
    path = write_csv(
        tmp_path,
        "external_id,text,label\nh-1,refund,billing\nh-2,,outage\nn-1,unlabelled\nh-3,   ,\n",
    )
    with django_capture_on_commit_callbacks(execute=True):
        out, err = import_items(path, "--skip-invalid")
    assert set(Item.objects.values_list("external_id", flat=True)) == {"h-1", "n-1"}
    assert "Skipped 2 bad row(s)" in err
    assert "line 3: text must not be empty" in err
    assert "line 5: text must not be empty" in err
    assert "2 skipped" in out


def test_every_bad_row_is_listed(tmp_path, categories):
    # Row 3 is short a field entirely, row 4 has an empty id cell.
    path = write_csv(tmp_path, "external_id,text\nfine,text\nb\n,no id\nc,fine\n")
    with pytest.raises(CommandError) as exc:
        import_items(path)
    message = str(exc.value)
    assert "2 bad row(s)" in message
    assert "line 3: text is required" in message
    assert "line 4: external_id is required" in message
    assert "line 2" not in message
    assert "line 5" not in message


def test_a_csv_row_with_more_fields_than_the_header_is_an_error(tmp_path, categories):
    path = write_csv(tmp_path, "external_id,text\nh-1,hello,surplus\n")
    with pytest.raises(CommandError, match="line 2: has more fields than the header"):
        import_items(path)
    assert nothing_written()


def test_a_malformed_jsonl_line_fails_naming_the_line(tmp_path, categories):
    path = write_jsonl(
        tmp_path,
        [{"external_id": "h-1", "text": "refund", "label": "billing"}, '{"external_id": "h-2", '],
    )
    with pytest.raises(CommandError, match="line 2: is not valid JSON"):
        import_items(path)
    assert nothing_written()


def test_a_jsonl_line_that_is_not_an_object_fails_naming_the_line(tmp_path, categories):
    path = write_jsonl(tmp_path, [{"external_id": "h-1", "text": "refund"}, "[1, 2]"])
    with pytest.raises(CommandError, match=r"line 2: \(item\) must be a JSON object"):
        import_items(path)
    assert nothing_written()


def test_a_jsonl_line_with_an_unknown_field_fails_naming_the_field(tmp_path, categories):
    path = write_jsonl(tmp_path, [{"external_id": "h-1", "text": "refund", "prio": 1}])
    with pytest.raises(CommandError, match="line 1: prio unknown field"):
        import_items(path)


def test_a_jsonl_line_with_nan_in_metadata_is_an_error_not_a_crash(tmp_path, categories):
    path = write_jsonl(
        tmp_path, ['{"external_id": "h-1", "text": "refund", "metadata": {"score": NaN}}']
    )
    with pytest.raises(CommandError, match="line 1: metadata must not contain NaN"):
        import_items(path)
    assert nothing_written()


def test_an_absurdly_nested_jsonl_line_is_an_error_not_a_crash(tmp_path, categories):
    path = write_jsonl(tmp_path, ["[" * 100_000 + "]" * 100_000])
    with pytest.raises(CommandError, match="line 1: is not valid JSON"):
        import_items(path)


# --- import_items: whole-file problems ---------------------------------------------


def test_a_csv_without_a_text_column_fails_clearly(tmp_path, categories):
    path = write_csv(tmp_path, "external_id,body\nh-1,hello\n")
    with pytest.raises(
        CommandError, match=r"the CSV header lacks text \(found: external_id, body\)"
    ):
        import_items(path)
    assert nothing_written()


def test_an_empty_csv_fails_clearly(tmp_path, categories):
    path = write_csv(tmp_path, "")
    with pytest.raises(CommandError, match="no header"):
        import_items(path)


def test_an_unknown_file_extension_fails_clearly(tmp_path, categories):
    path = write_csv(tmp_path, "external_id,text\nh-1,hello\n", name="items.xlsx")
    with pytest.raises(CommandError, match=r"unknown file type \.xlsx; use \.csv or \.jsonl"):
        import_items(path)


def test_a_missing_file_fails_clearly(tmp_path, categories):
    with pytest.raises(CommandError, match="no such file"):
        import_items(tmp_path / "nope.csv")


def test_a_file_that_is_not_utf8_fails_clearly(tmp_path, categories):
    path = tmp_path / "latin1.csv"
    path.write_bytes("external_id,text\nh-1,café crème\n".encode("latin-1"))
    with pytest.raises(CommandError, match="not UTF-8 text"):
        import_items(path)
    assert nothing_written()


def test_an_existing_id_with_different_text_fails_naming_the_line(tmp_path, categories):
    make_item(external_id="h-1", text="the original text")
    path = write_csv(tmp_path, "external_id,text,label\nnew,hello,other\nh-1,changed,billing\n")
    with pytest.raises(CommandError) as exc:
        import_items(path)
    assert "line 3: external_id 'h-1' already exists with different text" in str(exc.value)
    assert list(Item.objects.values_list("external_id", flat=True)) == ["h-1"]
    assert Item.objects.get().text == "the original text"
    assert not TrainingExample.objects.exists()


def test_a_repeated_id_with_different_text_in_one_file_fails_naming_the_later_line(
    tmp_path, categories
):
    path = write_csv(tmp_path, "external_id,text,label\nh-1,first,billing\nh-1,second,billing\n")
    with pytest.raises(CommandError, match="line 3: external_id 'h-1'"):
        import_items(path)
    assert nothing_written()


# --- create_api_token -----------------------------------------------------------------


def create_token(name):
    out, err = StringIO(), StringIO()
    call_command("create_api_token", name, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_created_token_is_printed_once_and_authenticates(client, categories):
    out, err = create_token("zendesk-bridge")
    token = out.strip()
    assert token.startswith("trg_")
    assert "\n" not in token
    assert token not in err
    assert "cannot be shown again" in err

    api_token = ApiToken.objects.get(name="zendesk-bridge")
    assert api_token.token_hash == hash_token(token)
    assert api_token.token_hash != token

    response = client.get("/api/items/unknown", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 404  # authenticated; the item just does not exist
    response = client.get("/api/items/unknown", HTTP_AUTHORIZATION=f"Bearer {token}x")
    assert response.status_code == 401


def test_each_token_is_different(db):
    first, _ = create_token("one")
    second, _ = create_token("two")
    assert first.strip() != second.strip()


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_token_name_is_refused(db, name):
    with pytest.raises(CommandError, match="must not be empty"):
        create_token(name)
    assert not ApiToken.objects.exists()


def test_a_duplicate_token_name_is_refused(db):
    create_token("zendesk")
    with pytest.raises(CommandError, match="'zendesk' already exists"):
        create_token(" zendesk ")
    assert ApiToken.objects.count() == 1


@pytest.mark.parametrize(
    ("name", "problem"),
    [("zen\x00desk", "NUL characters"), ("zen\ud800desk", "lone surrogates")],
)
def test_a_token_name_no_database_can_store_is_refused(db, name, problem):
    # PostgreSQL would otherwise fail the duplicate-name query with a traceback.
    with pytest.raises(CommandError, match=f"NAME must not contain {problem}"):
        create_token(name)
    assert not ApiToken.objects.exists()


def test_a_token_name_over_100_characters_is_refused(db):
    # PostgreSQL would otherwise fail the insert with a traceback.
    with pytest.raises(CommandError, match="100 characters"):
        create_token("x" * 101)
    assert not ApiToken.objects.exists()
