"""The one cattrs converter of batchyard, for every wire format it speaks.

Every choice about how a Python value looks on the wire is made here:

* JSON through orjson (``cattrs.preconf.orjson``): UTF-8, no NaN/Infinity.
* Field names are ``snake_case`` in Python and ``camelCase`` on the wire
  (``batch_id`` ↔ ``batchId``); this holds for IPC frames and HTTP bodies.
* Enums travel by value (``JobStatus.ACTIVE`` ↔ ``"active"``).
* Message unions are tagged under the key ``"type"`` with the tags listed in
  ``protocols.ipc`` (``"job-progress"``, not the class name).
* Inbound decoding is strict: unknown keys are refused, ``str``/``int``/
  ``float``/``bool`` fields accept only JSON values of that kind (``True`` is
  not an ``int``; an ``int`` is a ``float``), and errors carry field paths
  (``cattrs.transform_error``).
* Payloads and results (``Any``) pass through untouched: whatever JSON holds.
"""

from __future__ import annotations

from typing import Any

import attrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.orjson import OrjsonConverter
from cattrs.preconf.orjson import make_converter as _make_orjson_converter
from cattrs.strategies import configure_tagged_union

from protocols import ipc

__all__ = ["camel_case", "configure_converter", "make_converter"]


def camel_case(name: str) -> str:
    """``batch_id`` → ``batchId``; a name without underscores is unchanged."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _strict(kind: type[Any], accepts: tuple[type[Any], ...]) -> Any:
    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and bool not in accepts:
            raise TypeError(f"expected {kind.__name__}, got a boolean")
        if not isinstance(value, accepts):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return kind(value)

    return structure


def configure_converter(converter: OrjsonConverter) -> None:
    """Teach ``converter`` every wire choice listed in this module's docstring."""
    converter.register_structure_hook(str, _strict(str, (str,)))
    converter.register_structure_hook(int, _strict(int, (int,)))
    converter.register_structure_hook(float, _strict(float, (int, float)))
    converter.register_structure_hook(bool, _strict(bool, (bool,)))

    def renames(cl: type[Any]) -> dict[str, Any]:
        return {
            field.name: override(rename=camel_case(field.name))
            for field in attrs.fields(cl)
            if camel_case(field.name) != field.name
        }

    converter.register_unstructure_hook_factory(
        attrs.has, lambda cl: make_dict_unstructure_fn(cl, converter, **renames(cl))
    )
    converter.register_structure_hook_factory(
        attrs.has, lambda cl: make_dict_structure_fn(cl, converter, **renames(cl))
    )
    for union, tags in (
        (ipc.ParentMessage, ipc.PARENT_MESSAGE_TAGS),
        (ipc.ChildMessage, ipc.CHILD_MESSAGE_TAGS),
    ):
        configure_tagged_union(
            union, converter, tag_generator=tags.__getitem__, tag_name="type"
        )


def make_converter() -> OrjsonConverter:
    """A fresh converter configured per this module's docstring."""
    converter = _make_orjson_converter(forbid_extra_keys=True)
    configure_converter(converter)
    return converter


#: The shared instance; converters are immutable once configured.
CONVERTER = make_converter()
