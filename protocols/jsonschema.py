"""JSON Schema (2020-12, as OpenAPI 3.1 uses it) of the wire classes.

Design notes
------------
The schema of a class is read off the class the decoder uses, so the two
cannot disagree:

* each field is named as ``protocols.codec`` names it on the wire
  (``camelCase``); a field without a default is required, which is exactly
  what the decoder requires; unknown keys are refused
  (``additionalProperties: false``), as ``forbid_extra_keys`` does;
* the JSON kind comes from the annotation, with the codec's strictness:
  ``int`` is an integer, ``float`` any number, ``Literal`` and enums their
  values, ``tuple[X, ...]`` and ``list[X]`` an array, ``dict[str, X]`` an object,
  ``datetime`` a string, ``Any`` anything, ``X | None`` adds ``null``;
* each bound comes from the field's validator (``protocols.bounds``), which
  both checks the value and states the bound here.

A class field becomes a ``$ref`` to its own component, so every class
appears once under the name of the class.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import attrs

from protocols.bounds import JobTypeName
from protocols.codec import camel_case

__all__ = ["REF_PREFIX", "component_schemas", "field_schema"]

#: Where the components live in an OpenAPI document.
REF_PREFIX = "#/components/schemas/"

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    datetime: {"type": "string"},
    Any: {},
}


def _with_null(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema or "type" not in schema:
        return {"anyOf": [schema, {"type": "null"}]} if schema else schema
    return {**schema, "type": [schema["type"], "null"]}


def _annotation_schema(hint: Any, found: list[type[Any]]) -> dict[str, Any]:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        rest = [arg for arg in args if arg is not type(None)]
        assert len(rest) == 1, f"only X | None unions are described, not {hint}"
        return _with_null(_annotation_schema(rest[0], found))
    if origin is Literal:
        return {"enum": list(args)}
    if origin is list or origin is tuple:
        assert origin is list or args[-1:] == (Ellipsis,), f"{hint} is not described"
        return {"type": "array", "items": _annotation_schema(args[0], found)}
    if origin is dict:
        values = _annotation_schema(args[1], found)
        return {"type": "object", **({"additionalProperties": values} if values else {})}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [member.value for member in hint]}
    if attrs.has(hint):
        found.append(hint)
        return {"$ref": REF_PREFIX + hint.__name__}
    return dict(_SCALARS[hint])


def field_schema(
    field: attrs.Attribute[Any],
    hint: Any,
    found: list[type[Any]],
    job_types: Collection[str] | None = None,
) -> dict[str, Any]:
    """The schema of one field: its annotation's, narrowed by its validator.

    Args:
        field: the attrs field.
        hint: its resolved annotation.
        found: gets every attrs class the field refers to.
        job_types: when given, a ``JobTypeName`` field lists these names.
    """
    schema = _annotation_schema(hint, found)
    validator = field.validator
    if validator is None or not hasattr(validator, "json_schema"):
        return schema
    bound: dict[str, Any] = validator.json_schema()
    if isinstance(validator, JobTypeName) and job_types is not None:
        nullable = [None] if isinstance(schema.get("type"), list) else []
        bound = {"enum": [*sorted(job_types), *nullable]}
    return {**schema, **bound}


def _class_schema(
    cls: type[Any], found: list[type[Any]], job_types: Collection[str] | None
) -> dict[str, Any]:
    hints = get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        name = camel_case(field.name)
        properties[name] = field_schema(field, hints[field.name], found, job_types)
        if field.default is attrs.NOTHING:
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if cls.__doc__:
        schema["description"] = " ".join(cls.__doc__.split())
    return {**schema, "additionalProperties": False}


def component_schemas(
    classes: Iterable[type[Any]], *, job_types: Collection[str] | None = None
) -> dict[str, dict[str, Any]]:
    """The schema of each class and of every class its fields refer to,
    by class name.

    Args:
        classes: attrs classes of the wire.
        job_types: the job types a server knows; ``JobTypeName`` fields list
            them (without it, they are any non-empty string).
    """
    pending = list(classes)
    schemas: dict[str, dict[str, Any]] = {}
    while pending:
        cls = pending.pop()
        if cls.__name__ not in schemas:
            schemas[cls.__name__] = _class_schema(cls, pending, job_types)
    return dict(sorted(schemas.items()))
