"""The registry of Triage's own settings: every TRIAGE_* environment variable, typed.

One entry per variable: its name, its default (written as one would set it), the parser
that turns the text into a value (refusing a bad one with a message naming the variable),
its unit and one line on what it does. `triage/settings.py` reads them all through
`read()`; the README's "Settings reference" is printed from here:

    python -m triage.conf --markdown        # print the reference
    python -m triage.conf --write-readme    # replace it in README.md

The entries live with their concern, one module each (web, workers, model, limits, loop,
reviewers, privacy, webhooks); SETTINGS lists them in that order, the order settings.py
has always read them in, so of two bad values the same one is reported (and a rule that
depends on another setting, such as retention's floor, finds it read already).

Pure: nothing here imports Django, so the registry can be read and tested without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from triage.conf import limits, loop, model, privacy, reviewers, web, webhooks, workers
from triage.conf.fields import Context, Setting, SettingError, Values

README = Path(__file__).resolve().parent.parent.parent / "README.md"
START, END = "<!-- settings-reference:start -->", "<!-- settings-reference:end -->"

SECTIONS: tuple[ModuleType, ...] = (web, workers, model, limits, loop, reviewers, privacy, webhooks)


def entries_of(section: ModuleType) -> list[Setting[Any]]:
    """A section's entries, in the order written (with any it imports for a rule)."""
    return [v for v in vars(section).values() if isinstance(v, Setting)]


# An entry another section imports for a rule (retention's floor reads the live window)
# is listed once, where it was first written.
SETTINGS: tuple[Setting[Any], ...] = tuple(
    dict.fromkeys(s for section in SECTIONS for s in entries_of(section))
)


FIXED = {
    "TRIAGE_MAX_BATCH": ("1000", "most items in one ingest request"),
    "TRIAGE_MIN_RETENTION_DAYS": (
        "the larger of 30 and `TRIAGE_LIVE_WINDOW_DAYS`",
        "the shortest `TRIAGE_RETENTION_DAYS`",
    ),
}


def env_file(environ: Mapping[str, str], base_dir: Path) -> str:
    """TRIAGE_ENV_FILE, read alone and first: the file it names may set the rest (DEBUG
    too), and its default does not depend on DEBUG."""
    return web.ENV_FILE.read(environ, Context(base_dir=base_dir, debug=False), Values({}))


def read(environ: Mapping[str, str], context: Context) -> Values:
    """Every setting's value, in the registry's order; the first bad one raises SettingError."""
    values: dict[str, object] = {}
    for setting in SETTINGS:
        values[setting.name] = setting.read(environ, context, Values(values))
    return Values(values)


def markdown() -> str:
    """The README's settings reference: the registry as a table, then the fixed names."""
    rows = [f"| `{s.name}` | {s.shown_default} | {s.unit} | {s.doc} |" for s in SETTINGS]
    fixed = "; ".join(f"`{name}`, {value}: {doc}" for name, (value, doc) in FIXED.items())
    return "\n".join(
        ["| Setting | Default | Unit | What it does |", "| --- | --- | --- | --- |", *rows, ""]
        + [f"Set by `triage/settings.py`, not by a variable: {fixed}."]
    )


def with_reference(readme: str) -> str:
    """The README with the text between its settings-reference markers made markdown()."""
    before, start, rest = readme.partition(START)
    _, end, after = rest.partition(END)
    if not (start and end):
        raise SettingError(f"README.md has no {START} … {END} section")
    return f"{before}{START}\n{markdown()}\n{END}{after}"
