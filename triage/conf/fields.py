"""The parts settings are made of: an entry (Setting), parsers that refuse bad text with a
message naming the variable, and the values read (Values)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, TypeVar, cast

import phonenumbers

T = TypeVar("T")


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
