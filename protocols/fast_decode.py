"""A shortcut for decoding well-formed messages of flat shapes, sans-IO.

Design notes
------------
Structuring a message through the converter costs several microseconds,
most of it generic dispatch; the engine decodes two or more child
messages per job. For a message whose fields are all of plain kinds
(strings, numbers, booleans, ``Any``, an optional string, a value of
such fields (optional too, as ``Begin.rate``), or a tuple of such values
or of a tagged union of them, as ``Reports`` holds)
``fast_structurer`` builds a direct check: the object's keys (its
``type`` tag and its fields' camelCase names, required ones present, no
others) and each value's JSON kind, then the class itself.

It only ever takes what the converter would take, to the same value: for
anything else (a wrong kind, a missing or extra key, a validator that
refuses) it answers None, and the caller structures through the
converter, which raises the error it always raised. So the shortcut
changes speed, never behaviour.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin, get_type_hints

import attrs

from protocols import ipc
from protocols.codec import camel_case

__all__ = ["fast_structurer"]

#: Structures a decoded JSON value, or None when the converter must.
Fast = Callable[[Any], Any]

_TAGS: dict[type[Any], str] = {**ipc.PARENT_MESSAGE_TAGS, **ipc.CHILD_LINE_TAGS}


class _Refused(Exception):
    """The value is not one the shortcut takes."""


def _exact(kind: type[Any]) -> Callable[[Any], Any]:
    def exact(value: Any) -> Any:
        if type(value) is not kind:
            raise _Refused
        return value

    return exact


def _any(value: Any) -> Any:
    return value


#: The checks of exact kinds, which generated code makes inline.
_EXACT = {kind: _exact(kind) for kind in (str, int, bool)}
_EXACT_KINDS: dict[Callable[[Any], Any], type[Any]] = {
    check: kind for kind, check in _EXACT.items()
}


def _number(value: Any) -> float:
    if type(value) is not float and type(value) is not int:
        raise _Refused
    try:
        return float(value)
    except OverflowError:  # an integer beyond a float: the converter says so
        raise _Refused from None


def _optional(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def optional(value: Any) -> Any:
        return None if value is None else inner(value)

    return optional


def _many(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def many(value: Any) -> tuple[Any, ...]:
        if type(value) is not list:
            raise _Refused
        return tuple(inner(item) for item in value)

    return many


def _value_check(tp: Any) -> Callable[[Any], Any] | None:
    """A function checking and converting one field's value as the
    converter would (raising ``_Refused`` otherwise), or None for a type
    the shortcut does not handle."""
    if tp is Any:
        return _any
    if tp in _EXACT:
        return _EXACT[tp]
    if tp is float:
        return _number
    origin, args = get_origin(tp), get_args(tp)
    if (origin is Union or origin is types.UnionType) and len(args) == 2 and type(None) in args:
        (kind,) = (arg for arg in args if arg is not type(None))
        inner = _value_check(kind)
        return None if inner is None else _optional(inner)
    if attrs.has(tp):
        return _object_check(tp, tag=None)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and attrs.has(args[0]):
        inner = _object_check(args[0], tag=None)
        return None if inner is None else _many(inner)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and _is_union(args[0]):
        return _many_tagged(_checks_by_tag(get_args(args[0])))
    return None


def _is_union(tp: Any) -> bool:
    return isinstance(tp, types.UnionType) or get_origin(tp) is Union


def _many_tagged(by_tag: dict[str, Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """A list of tagged objects, each checked as its tag's class (a tag
    the shortcut does not take is refused)."""

    def many(value: Any) -> tuple[Any, ...]:
        if type(value) is not list:
            raise _Refused
        try:
            # An item that is not an object, or whose tag is not one of
            # ``by_tag``'s strings, fails the lookup.
            return tuple([by_tag[item["type"]](item) for item in value])
        except (KeyError, TypeError):
            raise _Refused from None

    return many


def _object_check(cls: type[Any], tag: str | None) -> Callable[[Any], Any] | None:
    """The check of ``cls``'s objects, tagged ``tag`` (a caller that
    looked the class up by its tag saw the key), or None for a class
    the shortcut does not handle."""
    hints = get_type_hints(cls)
    fields = []
    for field in attrs.fields(cls):
        check = _value_check(hints[field.name])
        if check is None:
            return None
        required = field.default is attrs.NOTHING
        fields.append((field.name, camel_case(field.name), check, required))
    return _compiled(cls, fields, tagged=tag is not None)


def _compiled(
    cls: type[Any], fields: list[tuple[str, str, Callable[[Any], Any], bool]], *, tagged: bool
) -> Callable[[Any], Any]:
    """The check of one class's objects as one generated function: a loop
    over the fields, with a call per check, cost as much as the rest of the
    decoding, and the engine decodes two or more messages per job. A field
    of an exact kind (a string, an integer) is checked inline, and so is a
    number that is a float already; any other calls its check. The object
    holds no other key when it holds as many as the required fields, the
    optional ones found and the tag make. Only names and constants of this
    module go into the source (field names are identifiers, wire names are
    ``repr``'d)."""
    names: dict[str, Any] = {"cls": cls, "_Refused": _Refused}
    lines = [
        "def structure(value):",
        "    if type(value) is not dict:",
        "        raise _Refused",
    ]
    given, optional, checks = [], [], []
    keys = int(tagged)
    for index, (name, wire, check, required) in enumerate(fields):
        kind = _EXACT_KINDS.get(check)
        if not required:
            value = f"value[{wire!r}]"
            if check is not _any:
                names[f"check{index}"] = check
                value = f"check{index}({value})"
            optional += [f"    if {wire!r} in value:", f"        given[{name!r}] = {value}"]
            optional.append("        keys += 1")
            continue
        keys += 1
        given.append(f"{name}=v{index}")
        lines.append(f"        v{index} = value[{wire!r}]")
        if kind is not None:
            names[f"kind{index}"] = kind
            checks.append(f"    if type(v{index}) is not kind{index}:\n        raise _Refused")
        elif check is _number:
            names[f"check{index}"] = check
            checks.append(f"    if type(v{index}) is not float:")
            checks.append(f"        v{index} = check{index}(v{index})")
        elif check is not _any:
            names[f"check{index}"] = check
            checks.append(f"    v{index} = check{index}(v{index})")
    if given:
        lines.insert(3, "    try:")
        lines.append("    except KeyError:\n        raise _Refused from None")
    lines += checks
    if optional:
        lines += [f"    keys = {keys}", "    given = {}", *optional]
        given.append("**given")
    lines += [
        f"    if len(value) != {'keys' if optional else keys}:",
        "        raise _Refused",
        "    try:",
        f"        return cls({', '.join(given)})",
        "    except (TypeError, ValueError) as exc:",
        "        raise _Refused from exc",
    ]
    exec(compile("\n".join(lines), f"<fast structure {cls.__name__}>", "exec"), names)
    return names["structure"]  # type: ignore[no-any-return]


def _checks_by_tag(members: tuple[Any, ...]) -> dict[str, Callable[[Any], Any]]:
    """The check of each tagged message class among ``members`` that the
    shortcut takes, by its wire tag."""
    by_tag = {}
    for member in members:
        tag = _TAGS.get(member)
        if tag is None or not attrs.has(member):
            continue
        check = _object_check(member, tag)
        if check is not None:
            by_tag[tag] = check
    return by_tag


def fast_structurer(message_type: Any) -> Fast:
    """The shortcut for ``message_type`` (a message class or a union of
    tagged ones): a function from a decoded JSON value to the message, or
    to None when the converter must structure it."""
    union = _is_union(message_type)
    members = get_args(message_type) if union else (message_type,)
    single: Callable[[Any], Any] | None = None
    by_tag: dict[str, Callable[[Any], Any]] = {}
    if len(members) == 1:
        single = _object_check(members[0], None) if attrs.has(members[0]) else None
    else:
        by_tag = _checks_by_tag(members)

    def structure(raw: Any) -> Any:
        check = single
        if check is None:
            tag = raw.get("type") if type(raw) is dict else None
            if type(tag) is not str:
                return None
            check = by_tag.get(tag)
            if check is None:
                return None
        try:
            return check(raw)
        except _Refused:
            return None

    return structure
