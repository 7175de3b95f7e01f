"""Value parsers: how one setting's text or value becomes its type, or an error.

Design notes
------------
A *kind* reads one setting from wherever it came: a string (read as its
environment variable would be) or a value of the right type (from TOML, a
flag, or the constructor). It returns the value in the field's type, or
raises ``ConfigError`` naming ``source`` (a variable, a file key, a field)
and the value: ``EMBEDDING_RATE_LIMIT='abc' is not a rate: ...``. The same
kind is the field's attrs validator (``validator``), so a value built in
code is held to the rules a value read from text is.

An unlimited rate is ``RateLimit(count=0, ...)``, tested with
``rate.unlimited``. ``None`` is not used for it, because in ``TypeOverrides``
None means "as the batch says", which is not "unlimited for this type". The
window of an unlimited rate is kept though it means nothing, so that
``RateLimit.parse(rate.format()) == rate`` for every rate.

A store URL's password never appears in an error (``redact_url``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from engine.errors import ConfigError

__all__ = [
    "Kind",
    "RateLimit",
    "bearer_token",
    "boolean",
    "choice",
    "format_seconds",
    "invalid",
    "module_names",
    "optional",
    "origins",
    "rate",
    "redact_token",
    "redact_url",
    "seconds",
    "store_url",
    "validator",
    "whole_number",
]

#: Reads one setting: ``kind(value, source)`` returns the value in the
#: field's type or raises ``ConfigError`` naming ``source`` and the value.
Kind = Callable[[object, str], Any]


def invalid(source: str, value: object, reason: str) -> ConfigError:
    """The error for a bad value: ``SOURCE=VALUE REASON``."""
    return ConfigError(f"{source}={value!r} {reason}")


def validator(kind: Kind) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """An attrs validator: the value passes ``kind``, and is already what it reads as."""

    def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        canonical = kind(value, attribute.name)
        if canonical != value:
            raise invalid(attribute.name, value, f"must be given as {canonical!r}")

    return validate


def whole_number(minimum: int) -> Kind:
    """An ``int`` of at least ``minimum``, or its decimal text."""

    def kind(value: object, source: str) -> int:
        try:
            number = int(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        if not isinstance(number, int) or isinstance(number, bool):
            raise invalid(source, value, "is not a whole number")
        if number < minimum:
            raise invalid(source, value, f"must be at least {minimum}")
        return number

    return kind


def seconds(*, positive: bool) -> Kind:
    """A finite number of seconds (a ``float``), not negative, and not zero
    when ``positive``."""

    def kind(value: object, source: str) -> float:
        try:
            number = float(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise invalid(source, value, "is not a number of seconds")
        if not math.isfinite(number):
            raise invalid(source, value, "must be finite")
        if number < 0 or (positive and number == 0):
            raise invalid(
                source, value, "must be positive" if positive else "must not be negative"
            )
        return float(number)

    return kind


_TRUE = ("1", "true")
_FALSE = ("0", "false")


def boolean(value: object, source: str) -> bool:
    """A ``bool``, or its text: ``1`` / ``true`` or ``0`` / ``false`` (any case)."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise invalid(source, value, "is not a boolean: expected 1 or 0 (true or false)")


def choice(*names: str) -> Kind:
    """One of ``names``, as written (any case)."""

    def kind(value: object, source: str) -> str:
        text = value.strip().lower() if isinstance(value, str) else None
        if text not in names:
            raise invalid(source, value, f"is not one of {', '.join(names)}")
        return text

    return kind


def optional(kind: Kind) -> Kind:
    """``kind``, or None as it is."""
    return lambda value, source: None if value is None else kind(value, source)


def format_seconds(value: float) -> str:
    """Seconds as the shortest text that reads back as them: ``60``, ``1.5``."""
    # Whole numbers print without ".0" ("60s", not "60.0s"); anything else as
    # repr, the shortest text that reads back as the same float.
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


_RATE = re.compile(
    r"(?P<count>-?\d+)"
    r"(?:/(?P<window>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)(?P<unit>ms|s|m|h)?)?"
)
_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NOT_A_RATE = "is not a rate: expected N or N/Ts (e.g. 20, 5/2s)"


@attrs.frozen(kw_only=True)
class RateLimit:
    """``count`` job starts per ``per_seconds`` seconds; a count of 0 is unlimited.

    Strict: no window of ``per_seconds`` ever holds more than ``count`` starts.
    """

    count: int = attrs.field(validator=validator(whole_number(0)))
    per_seconds: float = attrs.field(converter=float, validator=validator(seconds(positive=True)))

    @property
    def unlimited(self) -> bool:
        """True when starts are not limited at all (the text was ``0``)."""
        return self.count == 0

    @classmethod
    def parse(cls, text: str, *, source: str = "rate_limit") -> RateLimit:
        """Read a rate: ``N`` per minute (``0`` is unlimited), or ``N/T`` with a unit.

        ``T`` is a decimal number of seconds, or of the unit ``ms``, ``s``,
        ``m`` or ``h``: ``5/2s``, ``5/2``, ``5/500ms``, ``100/1m``, ``10/1.5s``.

        Args:
            text: the rate as written.
            source: where ``text`` came from, named in the error message.

        Returns:
            The rate.

        Raises:
            ConfigError: ``text`` is not a rate, its count is negative, or its
                window is not a positive, finite time.
        """
        match = _RATE.fullmatch(text.strip())
        try:
            count = int(match["count"]) if match else None
        except ValueError:  # more digits than int() reads
            count = None
        if match is None or count is None:
            raise invalid(source, text, _NOT_A_RATE)
        if count < 0:
            raise invalid(source, text, "is not a rate: the count must not be negative")
        if match["window"] is None:
            return cls(count=count, per_seconds=60.0)
        per_seconds = float(match["window"]) * _UNIT_SECONDS[match["unit"] or "s"]
        if not (per_seconds > 0 and math.isfinite(per_seconds)):
            raise invalid(source, text, "is not a rate: the window must be positive and finite")
        return cls(count=count, per_seconds=per_seconds)

    def format(self) -> str:
        """The shortest text that ``parse`` reads back as this rate: ``20``, ``5/2s``."""
        if self.per_seconds == 60:
            return str(self.count)
        return f"{self.count}/{format_seconds(self.per_seconds)}s"


def rate(value: object, source: str) -> RateLimit:
    """A ``RateLimit``, its text, or a whole number of starts per minute."""
    if isinstance(value, RateLimit):
        return value
    if isinstance(value, str | int) and not isinstance(value, bool):
        return RateLimit.parse(str(value), source=source)
    raise invalid(source, value, _NOT_A_RATE)


_STORE_SCHEMES = ("sqlite:///", "redis://", "rediss://")


def store_url(value: object, source: str) -> str:
    """A store URL: ``sqlite:///PATH``, ``redis://`` or ``rediss://``."""
    if not isinstance(value, str):
        raise invalid(source, value, "is not a string")
    try:
        urlsplit(value)
    except ValueError:  # a malformed host, such as an unclosed IPv6 bracket
        parsed = False
    else:
        parsed = value.startswith(_STORE_SCHEMES)
    if not parsed:
        reason = "is not a store URL: expected sqlite:///PATH or redis://HOST:PORT/DB"
        raise invalid(source, redact_url(value), reason)
    return value


def bearer_token(value: object, source: str) -> str | None:
    """A token; the empty string, like None, is no token."""
    if value is not None and not isinstance(value, str):
        raise invalid(source, value, "is not a string")
    return value or None


def module_names(value: object, source: str) -> tuple[str, ...]:
    """Dotted module names: comma-separated text, or a list; blanks are dropped."""
    items = value.split(",") if isinstance(value, str) else value
    if not (isinstance(items, list | tuple) and all(isinstance(i, str) for i in items)):
        raise invalid(source, value, "is not a comma-separated list of modules")
    names = tuple(name for name in (item.strip() for item in items) if name)
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise invalid(source, value, f"is not a list of modules: {name!r} is no module name")
    return names


#: An origin as browsers send it: a scheme, a host and maybe a port, no path.
_ORIGIN = re.compile(r"https?://[^\s/?#,]+")


def origins(value: object, source: str) -> tuple[str, ...]:
    """CORS origins: comma-separated text, or a list; blanks are dropped;
    each ``*`` or ``http(s)://HOST[:PORT]``."""
    items = value.split(",") if isinstance(value, str) else value
    if not (isinstance(items, list | tuple) and all(isinstance(i, str) for i in items)):
        raise invalid(source, value, "is not a comma-separated list of origins")
    names = tuple(name for name in (item.strip() for item in items) if name)
    for name in names:
        if name != "*" and _ORIGIN.fullmatch(name) is None:
            raise invalid(source, value, f"is not a list of origins: {name!r} is no origin")
    return names


def redact_url(url: str) -> str:
    """``url`` with its password, if it has one, replaced by ``***``."""
    if "@" not in url:  # no user information, so no password
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # cannot tell the password from the rest: hide it all
        return f"{url.partition(':')[0]}:***"
    if parts.password is None:
        return url
    user_and_password, _, host = parts.netloc.rpartition("@")
    user = user_and_password.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def redact_token(token: str | None) -> str:
    """The ``repr`` of a token field: whether one is set, never the token."""
    return "None" if token is None else "'***'"
