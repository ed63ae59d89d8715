"""With DEBUG off, every unhandled exception and failed hand-off is logged with its traceback."""

import copy
import io
import json
import logging.config
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.test.client import Client

from triage.api import ingest
from triage.api.intake import ItemIn
from triage.classify import redelivery, tasks
from triage.models import Item

from .factories import make_user

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def log_output():
    """The project's LOGGING, its stderr handler writing into a buffer the test reads."""
    assert settings.DEBUG is False
    config = copy.deepcopy(settings.LOGGING)
    buffer = io.StringIO()
    config["handlers"]["stderr"]["stream"] = buffer
    logging.config.dictConfig(config)
    yield buffer
    logging.config.dictConfig(settings.LOGGING)


def test_the_handler_writes_to_stderr_for_the_root_logger():
    assert settings.LOGGING["handlers"]["stderr"]["class"] == "logging.StreamHandler"
    assert "stream" not in settings.LOGGING["handlers"]["stderr"]  # StreamHandler: stderr
    assert settings.LOGGING["root"]["handlers"] == ["stderr"]


@pytest.mark.django_db
def test_an_unhandled_exception_in_a_view_is_logged_with_its_traceback(log_output, categories):
    client = Client(raise_request_exception=False)
    client.force_login(make_user("alice"))
    with mock.patch("reviews.views.queue.current_task", side_effect=RuntimeError("boom")):
        assert client.get("/reviews/").status_code == 500
    logged = log_output.getvalue()
    assert "ERROR django.request: Internal Server Error: /reviews/" in logged
    assert "Traceback (most recent call last)" in logged
    assert "RuntimeError: boom" in logged


@pytest.mark.django_db(transaction=True)
def test_a_failed_hand_off_after_commit_is_logged_and_the_items_kept(log_output, categories):
    with mock.patch.object(
        tasks.classify_items, "delay", side_effect=ConnectionError("broker unreachable")
    ):
        ingest.ingest_items(items=[ItemIn(external_id="a", text="refund my card")])
    assert Item.objects.pending().filter(external_id="a").exists()  # the sweep's to retry
    logged = log_output.getvalue()
    assert "Error calling" in logged and "in on_commit()" in logged
    assert "Traceback (most recent call last)" in logged
    assert "ConnectionError: broker unreachable" in logged


def test_a_failed_celery_task_is_logged_with_its_traceback(log_output):
    with mock.patch.object(redelivery, "classify_delivery", side_effect=ValueError("bad batch")):
        result = tasks.classify_items.apply(args=[[1]], throw=False)
    assert result.failed()
    logged = log_output.getvalue()
    assert "ERROR celery.app.trace" in logged
    assert "Traceback (most recent call last)" in logged
    assert "ValueError: bad batch" in logged


def production_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TRIAGE_", "SECURE"))
    }
    return (
        env
        | {
            "DJANGO_SETTINGS_MODULE": "triage.settings",
            "TRIAGE_ENV_FILE": "",
            "DEBUG": "0",
            "SECRET_KEY": "k" * 10 + "a-production-like-secret-key-of-fifty-chars-or-more",
            "ALLOWED_HOSTS": "triage.example.org",
        }
        | extra
    )


def test_json_log_format_writes_one_object_per_line_with_the_traceback():
    script = (
        "import django, logging; django.setup()\n"
        "logging.getLogger('triage.x').info('hello %s', 'there')\n"
        "try:\n    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    logging.getLogger('django.request').exception('Internal Server Error: /x')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=production_env(TRIAGE_LOG_FORMAT="json"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(r["level"], r["logger"], r["message"]) for r in records] == [
        ("INFO", "triage.x", "hello there"),
        ("ERROR", "django.request", "Internal Server Error: /x"),
    ]
    assert "ZeroDivisionError" in records[1]["exc_info"]
    assert "time" in records[0] and "process" in records[0]


def test_an_unknown_log_format_is_refused_naming_the_variable():
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=production_env(TRIAGE_LOG_FORMAT="xml"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "TRIAGE_LOG_FORMAT='xml': use 'text' or 'json'" in done.stderr
