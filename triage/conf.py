"""The registry of Triage's own settings: every TRIAGE_* environment variable, typed.

One entry per variable: its name, its default (written as one would set it), the parser
that turns the text into a value (refusing a bad one with a message naming the variable),
its unit and one line on what it does. `triage/settings.py` reads them all through
`read()`; the README's "Settings reference" is printed from here:

    python -m triage.conf --markdown        # print the reference
    python -m triage.conf --write-readme    # replace it in README.md

Pure: nothing here imports Django, so the registry can be read and tested without it.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast

import phonenumbers

T = TypeVar("T")

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- settings-reference:start -->", "<!-- settings-reference:end -->"


class SettingError(ValueError):
    """A value is refused. The message names the variable; settings.py raises it again as
    Django's ImproperlyConfigured, so a bad value stops start-up."""


@dataclass(frozen=True)
class Context:
    """What some defaults depend on: the checkout (paths) and DEBUG (the security ones)."""

    base_dir: Path
    debug: bool


class Values:
    """The values read, looked up by their entry so that each comes back with its type."""

    def __init__(self, values: Mapping[str, object]) -> None:
        self._values = dict(values)

    def __getitem__(self, setting: Setting[T]) -> T:
        return cast(T, self._values[setting.name])

    def as_dict(self) -> dict[str, object]:
        return dict(self._values)


@dataclass(frozen=True)
class Parser(Generic[T]):
    """Turns a variable's text into its value: parse(name, text), raising SettingError."""

    parse: Callable[[str, str], T]
    # Which texts mean "not set", so that the default applies: "absent" (only an absent
    # variable), "empty" (also ""), "blank" (also spaces only). Each parser keeps what the
    # settings accepted before the registry: TRIAGE_PHONE_REGIONS="" means no region, an
    # empty integer the default, an empty float is refused.
    unset: Literal["absent", "empty", "blank"]

    def is_unset(self, text: str) -> bool:
        """Whether a variable that is present counts as not set."""
        if self.unset == "absent":
            return False
        return not (text.strip() if self.unset == "blank" else text)


@dataclass(frozen=True)
class Setting(Generic[T]):
    name: str
    # The text the variable takes when unset, or a function of the context giving it.
    default: str | Callable[[Context], str]
    parser: Parser[T]
    unit: str
    doc: str
    # The default as the reference shows it, when the text alone would not say it.
    shown: str = ""
    # A rule on the parsed value, given the values read before it: the problem, or None.
    check: Callable[[str, T, Values], str | None] | None = None

    def read(self, environ: Mapping[str, str], context: Context, earlier: Values) -> T:
        text = environ.get(self.name)
        if text is None or self.parser.is_unset(text):
            text = self.default if isinstance(self.default, str) else self.default(context)
        value = self.parser.parse(self.name, text)
        problem = self.check(self.name, value, earlier) if self.check else None
        if problem:
            raise SettingError(problem)
        return value

    @property
    def shown_default(self) -> str:
        return self.shown or f"`{self.default}`"


# --- Parsers ---------------------------------------------------------------------------


def _boolean(name: str, text: str) -> bool:
    if text.lower() in {"1", "true", "yes", "on"}:
        return True
    if text.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingError(f"{name}={text!r} is not a boolean (use 1/0, true/false)")


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SettingError(f"{name}={text!r} is not an integer") from None


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SettingError(f"{name}={text!r} is not a number") from None


def _rate_limit(name: str, text: str) -> str | None:
    limit = text.strip().lower()
    if limit != "off" and not re.fullmatch(r"[1-9]\d*/\d*(s|sec|m|min|h|hour|d|day)", limit):
        raise SettingError(
            f"{name}={limit!r}: use <count>/<period>, e.g. "
            "600/min, 100/10s or 20000/day (periods s, min, h, d), or off"
        )
    return None if limit == "off" else limit


def _log_format(name: str, text: str) -> str:
    if (log_format := text.strip().lower()) not in {"text", "json"}:
        raise SettingError(f"{name}={log_format!r}: use 'text' or 'json'")
    return log_format


def _log_level(name: str, text: str) -> str:
    if (level := text.strip().upper()) not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise SettingError(f"{name}={level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _networks(name: str, text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    found = []
    for network in (n.strip() for n in text.split(",")):
        try:
            if network:
                found.append(ipaddress.ip_network(network, strict=False))
        except ValueError:
            raise SettingError(
                f"{name}: {network!r} is not an address or a CIDR network (e.g. 10.0.5.0/24)"
            ) from None
    return found


def _regions(name: str, text: str) -> list[str]:
    regions = [r.strip().upper() for r in text.split(",") if r.strip()]
    if unknown := sorted(set(regions) - phonenumbers.SUPPORTED_REGIONS):
        raise SettingError(
            f"{name}: {', '.join(unknown)} is not a region libphonenumber knows "
            "(use ISO 3166 codes such as US, GB, HT)"
        )
    return regions


as_bool = Parser(_boolean, "empty")  # 1/0, true/false, yes/no, on/off, in any case
as_int = Parser(_integer, "empty")
as_float = Parser(_number, "absent")
as_text: Parser[str] = Parser(lambda name, text: text, "absent")
as_stripped: Parser[str] = Parser(lambda name, text: text.strip(), "absent")
as_path: Parser[Path] = Parser(lambda name, text: Path(text), "absent")  # "" is "."
as_rate_limit = Parser(_rate_limit, "blank")
as_log_format = Parser(_log_format, "blank")
as_log_level = Parser(_log_level, "blank")
as_networks = Parser(_networks, "absent")
as_regions = Parser(_regions, "absent")


def min_retention_days(live_window_days: int) -> int:
    """The shortest retention keeps the cockpit's 30-day trends and live precision whole."""
    return max(30, live_window_days)


def _at_least_three(name: str, crashes: int, earlier: Values) -> str | None:
    return None if crashes >= 3 else (
        f"{name}={crashes} is under 3: an item must be able to die in its batch, in a group "
        "and alone before it is given up on, or the innocent items beside it would be sent "
        "to review with it"
    )  # fmt: skip


def _retention(name: str, days: int, earlier: Values) -> str | None:
    shortest = min_retention_days(earlier[LIVE_WINDOW_DAYS])
    return None if not days or days >= shortest else (
        f"{name}={days}: the shortest retention is {shortest} days "
        "(0 or unset keeps texts until forgotten)"
    )  # fmt: skip


# --- The registry ----------------------------------------------------------------------
# In the order settings.py read them before the registry, so that of two bad values the
# same one is reported. Docs hold no "|": they become cells of a markdown table.

# Laid out as the table it is: name, default, parser, unit, then what it does.
# fmt: off
ENV_FILE = Setting("TRIAGE_ENV_FILE", lambda c: str(c.base_dir / ".env"), as_text, "path",
    "The .env file loaded at start-up (variables already set win); empty loads none.",
    shown="`.env` in the checkout")
HTTPS = Setting("TRIAGE_HTTPS", lambda c: "off" if c.debug else "on", as_bool, "on/off",
    "The site is served over HTTPS (directly or behind a TLS proxy): turns on secure cookies, "
    "the HTTPS redirect and HSTS (each can be set on its own).", shown="on unless `DEBUG`")
LOGIN_FAILURE_LIMIT = Setting("TRIAGE_LOGIN_FAILURE_LIMIT", "5", as_int, "failures",
    "Failed logins for one username from one address before that pair is locked out (429).")
LOGIN_COOLOFF_MINUTES = Setting("TRIAGE_LOGIN_COOLOFF_MINUTES", "15", as_int, "minutes",
    "How long such a lock lasts; a successful login resets the count.")
API_RATE_LIMIT = Setting("TRIAGE_API_RATE_LIMIT", "600/min", as_rate_limit, "requests/period",
    "Requests per API token, `<count>/<period>` (period `s`, `min`, `h` or `d`, optionally "
    "`100/10s`), or `off`; beyond it a 429 with Retry-After.")
CACHE_URL = Setting("TRIAGE_CACHE_URL", "", as_stripped, "URL", "A Redis URL for Django's "
    "cache, so that every web process shares the rate-limit counts.",
    shown="unset (per-process memory)")
METRICS_ALLOW = Setting("TRIAGE_METRICS_ALLOW", "", as_networks, "addresses", "Addresses or CIDR "
    "networks (comma-separated) that may scrape `/metrics` without a token.",
    shown="unset (a token only)")
LOG_FORMAT = Setting("TRIAGE_LOG_FORMAT", "text", as_log_format, "`text`/`json`",
    "`json` writes one JSON object per line, for log collectors.")
LOG_LEVEL = Setting("TRIAGE_LOG_LEVEL", "INFO", as_log_level, "level",
    "Level of the `triage` and `reviews` loggers (DEBUG, INFO, WARNING, ERROR, CRITICAL).")
VISIBILITY_TIMEOUT_SECONDS = Setting("TRIAGE_VISIBILITY_TIMEOUT_SECONDS", "300", as_int,
    "seconds", "After this a dead worker's task is handed out again; it must outlast the "
    "longest task acknowledged late (a classify chunk, a webhook attempt).")
BROKER_RESTORE_SECONDS = Setting("TRIAGE_BROKER_RESTORE_SECONDS", "10", as_int, "seconds",
    "How often the broker looks for such tasks.")
STUCK_SWEEP_SECONDS = Setting("TRIAGE_STUCK_SWEEP_SECONDS", "30", as_int, "seconds",
    "How often the stuck-item sweep runs.")
RETRAIN_HOUR = Setting("TRIAGE_RETRAIN_HOUR", "2", as_int, "hour (UTC)",
    "Hour of the nightly retrain (retention's prune runs an hour later).")
RETRAIN_MINUTE = Setting("TRIAGE_RETRAIN_MINUTE", "0", as_int, "minute",
    "Minute of the nightly retrain.")
ENCODER_PATH = Setting("TRIAGE_ENCODER_PATH", "", as_text, "path", "A local transformers "
    "directory (safetensors weights) to embed texts with.",
    shown="unset (the packaged all-MiniLM-L6-v2)")
ENCODER_RUNTIME = Setting("TRIAGE_ENCODER_RUNTIME", "torch", as_text, "`torch`/`onnx-int8`",
    "How new models' encoder runs: `torch` (fp32) or `onnx-int8` (ONNX, quantised: faster).")
ENCODER_CLASS = Setting("TRIAGE_ENCODER_CLASS", "", as_text, "dotted path", "An encoder class "
    "used instead of the runtime's (the tests use a small fake).", shown="unset (the runtime's)")
MAX_LENGTH = Setting("TRIAGE_MAX_LENGTH", "256", as_int, "tokens",
    "Tokens of each text the model reads; analysts see the whole text.")
BATCH_SIZE = Setting("TRIAGE_BATCH_SIZE", "64", as_int, "rows",
    "Rows per encoder batch.")
BATCH_TOKENS = Setting("TRIAGE_BATCH_TOKENS", "1024", as_int, "tokens",
    "Padded tokens per encoder batch (rows × longest row): long texts go in smaller batches.")
ARTIFACT_DIR = Setting("TRIAGE_ARTIFACT_DIR", lambda c: str(c.base_dir / "var" / "models"),
    as_path, "path", "Where model versions and exported encoders are kept; shared by web and "
    "workers.", shown="`var/models` in the checkout")
MAX_TEXT_CHARS = Setting("TRIAGE_MAX_TEXT_CHARS", "200000", as_int, "characters",
    "Longest text ingest accepts.")
MAX_METADATA_BYTES = Setting("TRIAGE_MAX_METADATA_BYTES", "16384", as_int, "bytes",
    "Largest `metadata` ingest accepts, as compact UTF-8 JSON.")
MAX_BODY_BYTES = Setting("TRIAGE_MAX_BODY_BYTES", "2621440", as_int, "bytes", "Largest request "
    "body (Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`); a bigger API body gets a JSON 413.")
LEASE_SECONDS = Setting("TRIAGE_LEASE_SECONDS", "600", as_int, "seconds",
    "How long an analyst's claim on a review task lasts; the open card renews it.")
SKIP_COOLDOWN_SECONDS = Setting("TRIAGE_SKIP_COOLDOWN_SECONDS", "1800", as_int, "seconds",
    "How long a skipped task stays away from the analyst who skipped it.")
UNDO_SECONDS = Setting("TRIAGE_UNDO_SECONDS", "600", as_int, "seconds",
    "How long analysts may change their own decisions.")
QUEUE_POLL_SECONDS = Setting("TRIAGE_QUEUE_POLL_SECONDS", "10", as_int, "seconds",
    "How often the empty queue checks for new work.")
AUDIT_SHARE = Setting("TRIAGE_AUDIT_SHARE", "0.25", as_float, "share",
    "Share of claims that take an audit task first while audits wait.")
LIVE_WINDOW_DAYS = Setting("TRIAGE_LIVE_WINDOW_DAYS", "28", as_int, "days",
    "Rolling window of live precision, beside \"since the last model or threshold change\".")
STUCK_AFTER_SECONDS = Setting("TRIAGE_STUCK_AFTER_SECONDS", "120", as_int, "seconds",
    "An item still unclassified this long after ingest is re-queued by the sweep.")
STUCK_MAX_ATTEMPTS = Setting("TRIAGE_STUCK_MAX_ATTEMPTS", "5", as_int, "attempts",
    "Re-queues (each waiting twice as long as the last) before an item goes to review unscored.")
CLASSIFY_MAX_CRASHES = Setting("TRIAGE_CLASSIFY_MAX_CRASHES", "3", as_int, "crashes",
    "Starts of an item's classification that never finished (its worker died) before it goes "
    "to review unscored: in its batch, in a small group, then alone.", check=_at_least_three)
CLASSIFY_CHUNK = Setting("TRIAGE_CLASSIFY_CHUNK", "1000", as_int, "items",
    "Items per classify task: bigger chunks embed faster, smaller ones finish sooner.")
MIN_EXAMPLES_PER_CATEGORY = Setting("TRIAGE_MIN_EXAMPLES_PER_CATEGORY", "5", as_int, "examples",
    "Active training examples a category needs to be trained on; a retrain needs two such "
    "categories.")
SIMILAR_REFRESH_SECONDS = Setting("TRIAGE_SIMILAR_REFRESH_SECONDS", "30", as_int, "seconds",
    "How often each process's similar-items caches pick up new rows.")
SIMILAR_REBUILD_SECONDS = Setting("TRIAGE_SIMILAR_REBUILD_SECONDS", "3600", as_int, "seconds",
    "How often they are rebuilt whole, dropping items forgotten or reopened.")
SIMILAR_EXACT_MAX = Setting("TRIAGE_SIMILAR_EXACT_MAX", "20000", as_int, "rows",
    "Up to this many rows the similar-items search is exact; beyond, a FAISS inverted file.")
SIMILAR_NPROBE = Setting("TRIAGE_SIMILAR_NPROBE", "32", as_int, "lists",
    "Lists of that inverted file (about √n of them) each search scans, the nearest first.")
BULK_LIMIT = Setting("TRIAGE_BULK_LIMIT", "50", as_int, "tasks",
    "Most open tasks one bulk decision may cover.")
SECOND_REVIEW_SHARE = Setting("TRIAGE_SECOND_REVIEW_SHARE", "0.05", as_float, "share",
    "Share of ordinary decisions that get a blind second review (confident overturns all do).")
SECOND_REVIEW_BULK_SHARE = Setting("TRIAGE_SECOND_REVIEW_BULK_SHARE", "0.2", as_float, "share",
    "Share of bulk decisions that get a blind second review.")
QUARANTINE_AGREEMENT_FLOOR = Setting("TRIAGE_QUARANTINE_AGREEMENT_FLOOR", "0.8", as_float,
    "share", "Quarantine an analyst whose agreement with second reviews is, at its upper "
    "bound, below this.")
QUARANTINE_OVERTURN_RATIO = Setting("TRIAGE_QUARANTINE_OVERTURN_RATIO", "3", as_float, "ratio",
    "Quarantine an analyst whose confident-overturn rate is, at its lower bound, above this "
    "times the peers' upper bound.")
QUARANTINE_ALPHA = Setting("TRIAGE_QUARANTINE_ALPHA", "0.01", as_float, "level",
    "Level of those two bounds (Clopper–Pearson).")
QUALITY_WINDOW_DAYS = Setting("TRIAGE_QUALITY_WINDOW_DAYS", "30", as_int, "days",
    "Days of decisions that reviewers' quality figures and quarantine look at.")
MASK_FOR_ANALYSTS = Setting("TRIAGE_MASK_FOR_ANALYSTS", "on", as_bool, "on/off", "Mask e-mail "
    "addresses, phone numbers, card numbers, IBANs and the admins' patterns on the card.")
MASK_TRAINING = Setting("TRIAGE_MASK_TRAINING", "off", as_bool, "on/off",
    "Store training examples' text masked (when the example is written).")
PHONE_REGIONS = Setting("TRIAGE_PHONE_REGIONS", "US", as_regions, "regions", "Regions (ISO 3166, "
    "comma-separated) whose national phone numbers are found; `+` numbers are found anyway.")
RETENTION_DAYS = Setting("TRIAGE_RETENTION_DAYS", "0", as_int, "days", "Prune daily the texts, "
    "metadata, embeddings and predictions of decided items older than this; at least "
    "`TRIAGE_MIN_RETENTION_DAYS`.", shown="`0` (keep)", check=_retention)
WEBHOOK_ALLOW_PRIVATE = Setting("TRIAGE_WEBHOOK_ALLOW_PRIVATE", lambda c: "on" if c.debug else
    "off", as_bool, "on/off", "Let webhooks reach private, loopback or link-local addresses "
    "(and plain http to them).", shown="on with `DEBUG`, else off")
WEBHOOK_TIMEOUT_SECONDS = Setting("TRIAGE_WEBHOOK_TIMEOUT_SECONDS", "10", as_int, "seconds",
    "Time one delivery attempt may take (connect, send, first byte and the answer).")
WEBHOOK_RETRY_BASE_SECONDS = Setting("TRIAGE_WEBHOOK_RETRY_BASE_SECONDS", "30", as_int, "seconds",
    "Delay before the first retry; it doubles with each attempt (jittered).")
WEBHOOK_RETRY_CAP_SECONDS = Setting("TRIAGE_WEBHOOK_RETRY_CAP_SECONDS", "7200", as_int, "seconds",
    "Longest delay between retries.")
WEBHOOK_RETRY_WINDOW_SECONDS = Setting("TRIAGE_WEBHOOK_RETRY_WINDOW_SECONDS", "86400", as_int,
    "seconds", "How long a failing delivery is retried.")
WEBHOOK_SWEEP_GRACE_SECONDS = Setting("TRIAGE_WEBHOOK_SWEEP_GRACE_SECONDS", "120", as_int,
    "seconds", "How long past due a delivery must be before the sweep queues it again.")
# fmt: on

# Every entry above, in the order written.
SETTINGS: tuple[Setting[Any], ...] = tuple(
    v for v in dict(globals()).values() if isinstance(v, Setting)
)

# TRIAGE_* names of the settings module that no variable sets: name → (value, meaning).
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
    return ENV_FILE.read(environ, Context(base_dir=base_dir, debug=False), Values({}))


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


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        print(markdown())
    elif sys.argv[1:] == ["--write-readme"]:
        README.write_text(with_reference(README.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        sys.exit("usage: python -m triage.conf --markdown | --write-readme")
