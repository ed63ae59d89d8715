"""The settings registry (triage/conf/): what it reads, what it refuses, what it documents."""

import ipaddress
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from triage import conf
from triage.conf import fields

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = fields.Context(base_dir=ROOT, debug=False)
DEVELOPMENT = fields.Context(base_dir=ROOT, debug=True)
# Where the code may read a TRIAGE_* setting: its Python, its templates.
SCANNED = [ROOT / "triage", ROOT / "reviews", ROOT / "templates"]
NAME = re.compile(r"\bTRIAGE_[A-Z0-9_]+")


def read(env: dict[str, str], context: fields.Context = PRODUCTION) -> dict[str, object]:
    return conf.read(env, context).as_dict()


def refusal(env: dict[str, str]) -> str:
    with pytest.raises(fields.SettingError) as refused:
        conf.read(env, DEVELOPMENT)
    return str(refused.value)


# --- (a) the README's reference is the registry's -------------------------------


def test_the_readme_settings_reference_is_the_generated_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(conf.START + "\n", 1)[1].split("\n" + conf.END, 1)[0]
    assert section == conf.markdown(), "run: .venv/bin/python -m triage.conf --write-readme"
    assert conf.with_reference(readme) == readme


def test_the_reference_has_one_row_per_setting_and_documents_each():
    rows = [line for line in conf.markdown().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [s.name for s in conf.SETTINGS]
    for setting in conf.SETTINGS:
        assert setting.unit and setting.doc.endswith(".") and "|" not in setting.doc
        assert isinstance(setting.default, str) or setting.shown, setting.name


def test_the_registry_holds_every_entry_of_every_section_once():
    modules = sorted(p.stem for p in Path(conf.__file__).parent.glob("*.py"))
    sections = sorted(m.__name__.rpartition(".")[2] for m in conf.SECTIONS)
    assert sections == [m for m in modules if m not in {"__init__", "__main__", "fields", "logs"}]
    entries = list(dict.fromkeys(s for section in conf.SECTIONS for s in conf.entries_of(section)))
    assert list(conf.SETTINGS) == entries
    names = [s.name for s in conf.SETTINGS]
    assert len(names) == len(set(names)) and all(NAME.fullmatch(n) for n in names)


# --- (b) the code reads no TRIAGE_* setting the registry does not know ----------


def known(name: str) -> bool:
    registered = {s.name for s in conf.SETTINGS} | set(conf.FIXED)
    # "TRIAGE_WEBHOOK_RETRY_*" in prose names a family: fine if it starts a known name.
    return name in registered or (
        name.endswith("_") and any(n.startswith(name) for n in registered)
    )


def unknown_names(text: str) -> set[str]:
    """Every TRIAGE_* name in the text that the registry does not know: read as
    settings.X, os.environ["X"], getattr(settings, "X"), in a template, or in prose."""
    return {name for name in NAME.findall(text) if not known(name)}


def test_every_triage_setting_the_code_names_is_in_the_registry():
    unknown = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for folder in SCANNED
        for path in folder.rglob("*")
        if path.suffix in {".py", ".html", ".txt", ".js"}
        for name in unknown_names(path.read_text(encoding="utf-8"))
    )
    assert unknown == [], "add them to triage/conf/ (or fix the name)"


@pytest.mark.parametrize(
    "source",
    [
        "if settings.TRIAGE_FAKE_LIMIT > 3:",
        'os.environ["TRIAGE_FAKE_LIMIT"]',
        'os.environ.get("TRIAGE_FAKE_LIMIT", "1")',
        'getattr(settings, "TRIAGE_FAKE_LIMIT", 10)',
        "{% if settings.TRIAGE_FAKE_LIMIT %}",
        "# at most TRIAGE_FAKE_LIMIT of them",
    ],
)
def test_the_scan_sees_an_unknown_setting_however_it_is_read(source):
    assert unknown_names(source) == {"TRIAGE_FAKE_LIMIT"}
    assert unknown_names(source.replace("FAKE_LIMIT", "BULK_LIMIT")) == set()


# --- (c) defaults, spellings and refusals, as before the registry ---------------


def test_defaults_without_any_variable():
    values = read({})
    assert values["TRIAGE_MAX_LENGTH"] == 256
    assert values["TRIAGE_API_RATE_LIMIT"] == "600/min"
    assert values["TRIAGE_AUDIT_SHARE"] == 0.25
    assert values["TRIAGE_LOG_FORMAT"] == "text" and values["TRIAGE_LOG_LEVEL"] == "INFO"
    assert values["TRIAGE_PHONE_REGIONS"] == ["US"] and values["TRIAGE_METRICS_ALLOW"] == []
    assert values["TRIAGE_ARTIFACT_DIR"] == ROOT / "var" / "models"
    assert values["TRIAGE_ENV_FILE"] == str(ROOT / ".env")
    assert values["TRIAGE_RETENTION_DAYS"] == 0 and values["TRIAGE_CLASSIFY_MAX_CRASHES"] == 3


def test_https_and_private_webhooks_default_to_the_opposite_of_each_other_with_debug():
    production, development = read({}, PRODUCTION), read({}, DEVELOPMENT)
    assert production["TRIAGE_HTTPS"] and not production["TRIAGE_WEBHOOK_ALLOW_PRIVATE"]
    assert not development["TRIAGE_HTTPS"] and development["TRIAGE_WEBHOOK_ALLOW_PRIVATE"]


@pytest.mark.parametrize(
    ("variable", "text", "value"),
    [
        ("TRIAGE_HTTPS", "YES", True),
        ("TRIAGE_HTTPS", "off", False),
        ("TRIAGE_HTTPS", "", True),  # empty: the default
        ("TRIAGE_MAX_LENGTH", "", 256),
        ("TRIAGE_MAX_LENGTH", "+64", 64),
        ("TRIAGE_API_RATE_LIMIT", " OFF ", None),
        ("TRIAGE_API_RATE_LIMIT", "  ", "600/min"),
        ("TRIAGE_API_RATE_LIMIT", "100/10S", "100/10s"),
        ("TRIAGE_LOG_LEVEL", " debug ", "DEBUG"),
        ("TRIAGE_PHONE_REGIONS", "", []),  # empty: no region, not the default
        ("TRIAGE_PHONE_REGIONS", " gb , ht", ["GB", "HT"]),
        ("TRIAGE_ENCODER_RUNTIME", "", ""),  # as before: left to the encoder to refuse
        ("TRIAGE_ENCODER_THREADS", "", None),  # the default: auto
        ("TRIAGE_ENCODER_THREADS", " Auto ", None),
        ("TRIAGE_ENCODER_THREADS", "3", 3),
        ("TRIAGE_ARTIFACT_DIR", "/srv/models", Path("/srv/models")),
        ("TRIAGE_CACHE_URL", " redis://r:6379/1 ", "redis://r:6379/1"),
        ("TRIAGE_AUDIT_SHARE", "1e-2", 0.01),
        (
            "TRIAGE_METRICS_ALLOW",
            "10.0.5.0/24, ,::1",
            [ipaddress.ip_network("10.0.5.0/24"), ipaddress.ip_network("::1")],
        ),
    ],
)
def test_accepted_spellings(variable, text, value):
    assert read({variable: text})[variable] == value


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRIAGE_MAX_LENGTH": "abc"}, "TRIAGE_MAX_LENGTH='abc' is not an integer"),
        ({"TRIAGE_MAX_LENGTH": " "}, "TRIAGE_MAX_LENGTH=' ' is not an integer"),
        (
            {"TRIAGE_HTTPS": "maybe"},
            "TRIAGE_HTTPS='maybe' is not a boolean (use 1/0, true/false)",
        ),
        ({"TRIAGE_AUDIT_SHARE": "abc"}, "TRIAGE_AUDIT_SHARE='abc' is not a number"),
        (
            {"TRIAGE_ENCODER_THREADS": "0"},
            "TRIAGE_ENCODER_THREADS='0': use auto or a whole number of threads, 1 or more",
        ),
        (
            {"TRIAGE_ENCODER_THREADS": "all"},
            "TRIAGE_ENCODER_THREADS='all': use auto or a whole number of threads, 1 or more",
        ),
        ({"TRIAGE_AUDIT_SHARE": ""}, "TRIAGE_AUDIT_SHARE='' is not a number"),
        (
            {"TRIAGE_API_RATE_LIMIT": "Lots"},
            "TRIAGE_API_RATE_LIMIT='lots': use <count>/<period>, e.g. 600/min, 100/10s or "
            "20000/day (periods s, min, h, d), or off",
        ),
        ({"TRIAGE_LOG_FORMAT": "XML"}, "TRIAGE_LOG_FORMAT='xml': use 'text' or 'json'"),
        (
            {"TRIAGE_LOG_LEVEL": "loud"},
            "TRIAGE_LOG_LEVEL='LOUD': use DEBUG, INFO, WARNING, ERROR or CRITICAL",
        ),
        (
            {"TRIAGE_METRICS_ALLOW": "10.0.5.0/24,nope"},
            "TRIAGE_METRICS_ALLOW: 'nope' is not an address or a CIDR network (e.g. 10.0.5.0/24)",
        ),
        ({"TRIAGE_PHONE_REGIONS": "US,XX"}, "TRIAGE_PHONE_REGIONS: XX is not a region"),
        ({"TRIAGE_CLASSIFY_MAX_CRASHES": "2"}, "TRIAGE_CLASSIFY_MAX_CRASHES=2 is under 3: "),
        ({"TRIAGE_RETENTION_DAYS": "7"}, "TRIAGE_RETENTION_DAYS=7: the shortest retention is 30"),
        (
            {"TRIAGE_LIVE_WINDOW_DAYS": "60", "TRIAGE_RETENTION_DAYS": "45"},
            "TRIAGE_RETENTION_DAYS=45: the shortest retention is 60 days (0 or unset keeps",
        ),
        # Of two bad values, the first in the registry's order (settings.py's, before it).
        (
            {"TRIAGE_CLASSIFY_MAX_CRASHES": "2", "TRIAGE_RETRAIN_HOUR": "x"},
            "TRIAGE_RETRAIN_HOUR='x' is not an integer",
        ),
    ],
)
def test_a_bad_value_is_refused_with_a_message_naming_the_variable(env, message):
    assert refusal(env).startswith(message)


def test_a_bad_float_stops_start_up_as_improperly_configured():
    # Before the registry this was a bare ValueError that named no variable.
    done = subprocess.run(
        [sys.executable, "-c", "import triage.settings"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TRIAGE_"))}
        | {"TRIAGE_ENV_FILE": "", "DEBUG": "1", "TRIAGE_QUARANTINE_ALPHA": "1%"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "ImproperlyConfigured: TRIAGE_QUARANTINE_ALPHA='1%' is not a number" in done.stderr


# Where settings.py puts the values whose setting is not named after the variable.
RENAMED = {
    "TRIAGE_HTTPS": "HTTPS",
    "TRIAGE_ENV_FILE": "ENV_FILE",
    "TRIAGE_MAX_BODY_BYTES": "DATA_UPLOAD_MAX_MEMORY_SIZE",
    "TRIAGE_LOGIN_FAILURE_LIMIT": "AXES_FAILURE_LIMIT",
    "TRIAGE_LOGIN_COOLOFF_MINUTES": "AXES_COOLOFF_TIME",  # as a timedelta
}
# tests/settings.py overrides these after reading them.
OVERRIDDEN = {
    "TRIAGE_SECOND_REVIEW_SHARE",
    "TRIAGE_SECOND_REVIEW_BULK_SHARE",
    "TRIAGE_RETRAIN_AFTER_LABELS",
}


def test_the_settings_module_holds_what_the_registry_read():
    debug = fields.as_bool.parse("DEBUG", os.environ.get("DEBUG") or "0")
    values = read(dict(os.environ), fields.Context(base_dir=ROOT, debug=debug))
    values["TRIAGE_LOGIN_COOLOFF_MINUTES"] = timedelta(
        minutes=values.pop("TRIAGE_LOGIN_COOLOFF_MINUTES")
    )
    held = {name: getattr(settings, RENAMED.get(name, name)) for name in values}
    assert {n: v for n, v in held.items() if n not in OVERRIDDEN} == {
        n: v for n, v in values.items() if n not in OVERRIDDEN
    }
    fixed = {name: getattr(settings, name) for name in conf.FIXED}
    shortest = fields.min_retention_days(settings.TRIAGE_LIVE_WINDOW_DAYS)
    assert fixed == {"TRIAGE_MAX_BATCH": 1000, "TRIAGE_MIN_RETENTION_DAYS": shortest}
