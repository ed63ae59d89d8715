"""Management commands under random arguments: a clear error (CommandError, which
manage.py prints as one line), never a traceback."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from hypothesis import event, given
from hypothesis import strategies as st

from .strategies import FUZZ, TEXT

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]

# Every command of the project except `demo` (loads the real encoder and 7,000 messages)
# and `listen_webhooks` (a server that runs until stopped; its arguments are tested in
# tests/actions/test_listen_webhooks.py).
COMMANDS = [
    "create_api_token",
    "evaluate",
    "forget",
    "import_items",
    "mask_training",
    "policy",
    "prune",
    "register_model",
    "retrain",
]
APP_OF = {name: "triage" for name in COMMANDS}


def own_options(name: str) -> list[str]:
    """The options a command defines itself (not Django's --settings, --help...)."""
    command = load_command_class(APP_OF[name], name)
    parser = command.create_parser("manage.py", name)
    base = {"--settings", "--pythonpath", "--traceback", "--help", "-h", "--version"}
    return sorted(
        option
        for action in parser._actions
        for option in action.option_strings
        if option not in base
    )


PLAUSIBLE_VALUES = st.sampled_from(
    ["0", "1", "0.95", "2", "-1", "nan", "inf", "billing", "nope", "/nonexistent", ".", "", "a,b"]
)
# Free text never starts with "-": argparse would take "--h" for --help and exit.
FREE_TEXT = TEXT.filter(lambda value: not value.startswith("-"))


def arguments(name: str) -> st.SearchStrategy[list[str]]:
    return st.lists(
        st.one_of(st.sampled_from(own_options(name)), PLAUSIBLE_VALUES, FREE_TEXT), max_size=5
    )


@pytest.mark.parametrize("name", COMMANDS)
def test_random_arguments_give_a_command_error_or_work(categories, name, tmp_path):
    os.chdir(tmp_path)  # relative paths the fuzzer makes up land in a scratch directory
    try:

        @FUZZ
        @given(args=arguments(name))
        def run(args):
            try:
                call_command(name, *args, stdout=StringIO(), stderr=StringIO())
            except CommandError as exc:
                event("CommandError")
                assert str(exc).strip(), "an error must say what was wrong"
                # One line, apart from newlines in what the user typed and it quotes back.
                message = str(exc)
                for arg in sorted(args, key=len, reverse=True):
                    message = message.replace(repr(arg), "").replace(arg, "")
                assert "\n" not in message.strip(), f"one line, not {str(exc)!r}"
            else:
                event("ran")

        run()
    finally:
        os.chdir(ROOT)


@pytest.mark.parametrize(
    "argv",
    [
        ["policy", "--target-precision", "1.5"],
        ["policy", "--audit-rate", "lots"],
        ["create_api_token", "  "],
        ["create_api_token", "bridge", "--scope", "everything"],
        ["import_items", "/nonexistent/items.csv"],
        ["evaluate", "--version", "not-a-number"],
        ["register_model", "/nonexistent/model"],
        ["policy", "--no-such-option"],
    ],
)
def test_manage_py_prints_a_readable_error_and_no_traceback(argv, django_db_blocker):
    from django.db import connection

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    if connection.vendor == "postgresql":
        # The test database (its schema; these refusals come before any row is read).
        s = connection.settings_dict
        env["DATABASE_URL"] = (
            f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
        )
    result = subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("CommandError: ") or ": error: " in last, result.stderr
