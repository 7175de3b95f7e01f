"""The one cattrs converter of batchyard, for every wire format it speaks.

Every choice about how a Python value looks on the wire is made here:

* JSON through orjson (``cattrs.preconf.orjson``): UTF-8, no NaN/Infinity.
  Our float fields refuse them by validation; inside a payload or result
  orjson writes them as ``null``. Integers of any size are exact: text goes
  through ``protocols.jsontext``, which falls back to the standard library
  where orjson cannot hold an integer (see there).
* Field names are ``snake_case`` in Python and ``camelCase`` on the wire
  (``batch_id`` ↔ ``batchId``); this holds for IPC frames and HTTP bodies,
  and for the field paths of decoding errors (``$.jobs[0].delaySeconds``).
* A field whose metadata holds ``OMIT_WHEN_DEFAULT`` is left out of the
  object while it holds its default (an event's ``error`` exists only once a
  job failed); decoding a missing key gives the default back. Every other
  field is always written, ``null`` included.
* Enums travel by value (``JobState.ACTIVE`` ↔ ``"active"``); ``Literal``
  fields accept exactly one of their values, of the same JSON kind.
* Datetimes travel as ISO 8601 strings (orjson's RFC 3339 rendering).
* Message unions are tagged under the key ``"type"`` with the tags listed in
  ``protocols.ipc`` (``"job-progress"``, not the class name).
* Inbound decoding is strict: unknown keys are refused, ``str``/``int``/
  ``float``/``bool`` fields accept only JSON values of that kind (``True`` is
  not an ``int``; an ``int`` is a ``float``; a float with no fraction within
  ±2**53, such as ``3.0``, is an ``int``, since JSON and JSON Schema do not
  tell ``3.0`` from ``3`` and some encoders write one for the other), a class accepts only a JSON
  object, a ``list``/``tuple`` only a JSON array (never a string or an object,
  which Python would happily iterate), and errors carry field paths
  (``describe_error``).
* Payloads and results (``Any``) pass through untouched: whatever JSON holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, get_args, get_origin

import attrs
import cattrs
import orjson
from cattrs.cols import homogenous_tuple_structure_factory, list_structure_factory
from cattrs.errors import AttributeValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.orjson import OrjsonConverter
from cattrs.preconf.orjson import make_converter as _make_orjson_converter
from cattrs.strategies import configure_tagged_union
from cattrs.v import format_exception

from protocols import ipc, jsontext
from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.fields import OMIT_WHEN_DEFAULT

__all__ = [
    "CONVERTER",
    "OMIT_WHEN_DEFAULT",
    "at_least_one",
    "camel_case",
    "configure_converter",
    "decode_json",
    "describe_error",
    "encode_json",
    "invalid_field",
    "json_kind",
    "make_converter",
    "structure_as",
]

T = TypeVar("T")

_Hook = Callable[[Any, Any], Any]


#: Error lines go back to whoever sent the bad value, and some messages quote
#: it (an unparsable date, an unknown enum value); a cap keeps a megabyte of
#: junk from being echoed into a log line or a 400 body.
_MAX_DETAIL = 200


class _WrongKind(TypeError):
    """A JSON value of the wrong kind; its message is written for the peer."""


def camel_case(name: str) -> str:
    """``batch_id`` → ``batchId``; a name without underscores is unchanged."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def json_kind(value: Any) -> str:
    """What a decoded JSON value is, in words (``"an array"``, ``"null"``)."""
    if value is None:
        return "null"
    for kind, words in _KINDS:
        if isinstance(value, kind):
            return words
    return type(value).__name__


# Order matters: ``bool`` is an ``int`` in Python, and must be named first.
_KINDS: tuple[tuple[type[Any], str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _strict(kind: type[Any], accepts: tuple[type[Any], ...], expected: str) -> _Hook:
    def structure(value: Any, _: Any) -> Any:
        if (isinstance(value, bool) and bool not in accepts) or not isinstance(value, accepts):
            raise _WrongKind(f"expected {expected}, got {json_kind(value)}")
        return kind(value)

    return structure


_number = _strict(float, (int, float), "a number")


def _finite_float(value: Any, cl: Any) -> Any:
    try:
        return _number(value, cl)
    except OverflowError:  # an integer too large for a float
        bits = value.bit_length()
        raise ValueError(f"expected a number, got an integer of {bits} bits") from None


#: Floats hold every integer exactly up to here; past it ``3e300`` is not
#: the integer anyone wrote.
_EXACT_FLOAT_INTEGER = 2**53


def _integer(value: Any, _: Any) -> int:
    if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT_FLOAT_INTEGER:
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _WrongKind(f"expected an integer, got {json_kind(value)}")
    return value


def _is_array(cl: Any) -> bool:
    origin = get_origin(cl)
    if origin is list:
        return True
    return origin is tuple and get_args(cl)[-1:] == (Ellipsis,)


def _array_hook(cl: Any, converter: cattrs.BaseConverter) -> _Hook:
    factory = (
        homogenous_tuple_structure_factory if get_origin(cl) is tuple else list_structure_factory
    )
    elements = factory(cl, converter)

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, list):
            raise _WrongKind(f"expected an array, got {json_kind(value)}")
        return elements(value, cl)

    return structure


def _is_literal(cl: object) -> bool:
    return get_origin(cl) is Literal


def _literal_hook(cl: Any) -> _Hook:
    allowed = get_args(cl)
    listing = ", ".join(repr(value) for value in allowed)

    def structure(value: Any, _: Any) -> Any:
        for candidate in allowed:
            if type(value) is type(candidate) and value == candidate:
                return candidate
        raise ValueError(f"expected one of {listing}, got {value!r:.80}")

    return structure


def _overrides(cl: type[Any]) -> dict[str, Any]:
    return {
        field.name: override(
            rename=camel_case(field.name),
            omit_if_default=bool(field.metadata.get(OMIT_WHEN_DEFAULT)),
        )
        for field in attrs.fields(cl)
    }


def _object_hook(cl: Any, converter: cattrs.BaseConverter) -> _Hook:
    fields = make_dict_structure_fn(cl, converter, **_overrides(cl))

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise _WrongKind(f"expected an object, got {json_kind(value)}")
        return fields(value, cl)

    return structure


def configure_converter(converter: OrjsonConverter) -> None:
    """Teach ``converter`` every wire choice listed in this module's docstring."""
    converter.register_structure_hook(str, _strict(str, (str,), "a string"))
    converter.register_structure_hook(int, _integer)
    converter.register_structure_hook(float, _finite_float)
    converter.register_structure_hook(bool, _strict(bool, (bool,), "a boolean"))
    converter.register_structure_hook_factory(_is_array, lambda cl: _array_hook(cl, converter))
    converter.register_structure_hook_factory(_is_literal, _literal_hook)
    converter.register_unstructure_hook_factory(
        attrs.has, lambda cl: make_dict_unstructure_fn(cl, converter, **_overrides(cl))
    )
    converter.register_structure_hook_factory(attrs.has, lambda cl: _object_hook(cl, converter))
    for union, tags in (
        (ipc.ParentMessage, ipc.PARENT_MESSAGE_TAGS),
        (ipc.ChildMessage, ipc.CHILD_MESSAGE_TAGS),
        (ipc.ChildLine, ipc.CHILD_LINE_TAGS),
    ):
        configure_tagged_union(union, converter, tag_generator=tags.__getitem__, tag_name="type")


def make_converter() -> OrjsonConverter:
    """A fresh converter configured per this module's docstring."""
    converter = _make_orjson_converter(forbid_extra_keys=True)
    configure_converter(converter)
    return converter


def invalid_field(attribute: attrs.Attribute[Any], problem: str) -> ValueError:
    """The error an attrs validator raises when ``attribute`` holds a bad value.

    The message starts with the wire name (``"delaySeconds must be ..."``),
    and the error is tagged with the field, so that ``describe_error`` puts
    it at the field's own path (``@ $.jobs[0].delaySeconds``) rather than at
    the object's.
    """
    error = ValueError(f"{camel_case(attribute.name)} {problem}")
    error.add_note(
        AttributeValidationNote(f"validating {attribute.name}", attribute.name, attribute.type)
    )
    return error


def at_least_one(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    """An attrs validator: ``value`` is 1 or more (a ``seq``, a count)."""
    if value < 1:
        raise invalid_field(attribute, f"must be at least 1, got {value}")


def describe_error(exc: BaseException, path: str = "$") -> list[str]:
    """One line per problem in a structuring error, each ending in its wire path.

    ``cattrs.transform_error`` does the same with Python field names; this
    spells each field as it appears on the wire (``$.jobs[2].delaySeconds``)
    and keeps the messages of our own checks and validators verbatim, since
    they are written for whoever sent the bad value.

    Args:
        exc: what ``CONVERTER.structure`` raised.
        path: the path of the value that was structured.

    Returns:
        Lines such as ``"expected an integer, got a string @ $.priority"``.
    """
    if isinstance(exc, cattrs.IterableValidationError):
        indexed, without = exc.group_exceptions()
        located = [(sub, f"{path}[{note.index!r}]", note.type) for sub, note in indexed]
    elif isinstance(exc, cattrs.ClassValidationError):
        named, without = exc.group_exceptions()
        located = [(sub, f"{path}.{camel_case(note.name)}", note.type) for sub, note in named]
    else:
        return [f"{_describe(exc, None)} @ {path}"]
    lines: list[str] = []
    for sub, sub_path, sub_type in located:
        if isinstance(sub, cattrs.IterableValidationError | cattrs.ClassValidationError):
            lines.extend(describe_error(sub, sub_path))
        else:
            lines.append(f"{_describe(sub, sub_type)} @ {sub_path}")
    lines.extend(f"{_describe(sub, None)} @ {path}" for sub in without)
    return lines


def _describe(exc: BaseException, cl: Any) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown fields: {', '.join(sorted(exc.extra_fields))}"
    if isinstance(exc, _WrongKind | ValueError):
        return f"{exc}"[:_MAX_DETAIL]
    return format_exception(exc, cl)[:_MAX_DETAIL]


#: The shared instance; converters are immutable once configured.
CONVERTER = make_converter()


def encode_json(value: Any, what: str) -> bytes:
    """``value`` (already unstructured) as JSON; ``what`` names it in the error.

    Raises:
        LocalProtocolError: ``value`` holds something JSON cannot carry.
    """
    try:
        return jsontext.dumps(value)
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"cannot encode {what}: {exc}") from exc


def decode_json(raw: str | bytes, what: str) -> Any:
    """The JSON value of ``raw``; ``what`` names it in the error.

    Raises:
        RemoteProtocolError: ``raw`` is not JSON (the decoder's error is its
            ``__cause__``).
    """
    try:
        return jsontext.load_any(raw)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"{what} is not JSON: {exc}") from exc


def structure_as(value: Any, cls: type[T], what: str, path: str = "$") -> T:
    """``value`` (decoded JSON found at ``path``) as a ``cls``, through ``CONVERTER``.

    Raises:
        RemoteProtocolError: ``value`` does not fit ``cls``; the message
            lists every problem with its wire path.
    """
    try:
        return CONVERTER.structure(value, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        problems = "; ".join(describe_error(exc, path))
        raise RemoteProtocolError(f"invalid {what}: {problems}") from exc
