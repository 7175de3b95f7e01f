"""Field validators that know their own JSON Schema.

Design notes
------------
A bound is written once: each validator here is an attrs validator (it
raises ``invalid_field`` for a bad value) and also says, with
``json_schema()``, the same bound in JSON Schema terms. The API's bodies
(``protocols.api``) use these validators, and the OpenAPI document is built
from them (``protocols.jsonschema``), so a length, a pattern or a range
cannot say one thing to the decoder and another to the document.

A check JSON Schema cannot state (a batch naming itself in ``after``) is
not a bound of the body: it belongs to whoever knows the batch.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import attrs

from protocols.codec import invalid_field

__all__ = ["Aware", "FlowOptions", "JobTypeName", "Number", "Text", "Whole"]


@attrs.frozen(kw_only=True)
class Text:
    """A string (or ``None``) of ``min_length`` to ``max_length`` characters,
    all of them matching ``pattern`` when one is given (``alphabet`` names
    its characters in messages)."""

    min_length: int = 1
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    alphabet: str = ""

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if self.pattern is not None:
            if self.pattern.fullmatch(value) is None:
                raise invalid_field(
                    attribute, f"must be {self._span()} {self.alphabet}, got {value!r:.140}"
                )
        elif self.max_length is None:
            if len(value) < self.min_length:
                raise invalid_field(attribute, "must not be empty")
        elif not self.min_length <= len(value) <= self.max_length:
            raise invalid_field(attribute, f"must be {self._span()} characters, got {len(value)}")

    def _span(self) -> str:
        return f"{self.min_length} to {self.max_length}"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"minLength": self.min_length}
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.pattern is not None:
            schema["pattern"] = f"^{self.pattern.pattern}$"
        return schema


@attrs.frozen(kw_only=True)
class JobTypeName(Text):
    """A job type's name: non-empty; the document lists the names a server
    has registered (``protocols.jsonschema`` refines it with them)."""


@attrs.frozen(kw_only=True)
class Whole:
    """An integer within ``minimum``..``maximum``, both included."""

    minimum: int
    maximum: int

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
        if not self.minimum <= value <= self.maximum:
            raise invalid_field(
                attribute, f"must be within {self.minimum}..{self.maximum}, got {value}"
            )

    def json_schema(self) -> dict[str, Any]:
        return {"minimum": self.minimum, "maximum": self.maximum}


@attrs.frozen(kw_only=True)
class Number:
    """A finite number ``>= minimum``, or ``> minimum`` when ``exclusive``
    (or ``None``, for a field that may be absent)."""

    minimum: float
    exclusive: bool = False

    def __call__(
        self, instance: object, attribute: attrs.Attribute[Any], value: float | None
    ) -> None:
        if value is None:
            return
        above = value > self.minimum if self.exclusive else value >= self.minimum
        if not (math.isfinite(value) and above):
            relation = ">" if self.exclusive else ">="
            raise invalid_field(
                attribute, f"must be a finite number {relation} {self.minimum:g}, got {value!r}"
            )

    def json_schema(self) -> dict[str, Any]:
        key = "exclusiveMinimum" if self.exclusive else "minimum"
        return {key: self.minimum}


@attrs.frozen
class Aware:
    """A datetime that carries its UTC offset (or ``None``, for a field that
    may be absent)."""

    def __call__(
        self, instance: object, attribute: attrs.Attribute[Any], value: datetime | None
    ) -> None:
        if value is not None and value.utcoffset() is None:
            raise invalid_field(attribute, f"must carry a UTC offset, got {value.isoformat()}")

    def json_schema(self) -> dict[str, Any]:
        return {"format": "date-time"}


@attrs.frozen(kw_only=True)
class FlowOptions:
    """A batch's open ``options`` object, of which two keys are checked:
    ``after`` (at most ``max_after`` ids, each a ``batch_id``) and
    ``autoStart`` (a boolean)."""

    batch_id: Text
    max_after: int

    def __call__(
        self, instance: object, attribute: attrs.Attribute[Any], value: dict[str, Any]
    ) -> None:
        if "autoStart" in value and not isinstance(value["autoStart"], bool):
            raise invalid_field(
                attribute, f"autoStart must be a boolean, got {value['autoStart']!r:.80}"
            )
        if "after" not in value:
            return
        after = value["after"]
        if not isinstance(after, list) or len(after) > self.max_after:
            raise invalid_field(
                attribute, f"after must be a list of at most {self.max_after} batch ids"
            )
        assert self.batch_id.pattern is not None
        for item in after:
            if not isinstance(item, str) or self.batch_id.pattern.fullmatch(item) is None:
                raise invalid_field(
                    attribute,
                    f"after must list batch ids of {self.batch_id._span()} "
                    f"{self.batch_id.alphabet}, got {item!r:.140}",
                )

    def json_schema(self) -> dict[str, Any]:
        after = {
            "type": "array",
            "items": {"type": "string", **self.batch_id.json_schema()},
            "maxItems": self.max_after,
        }
        return {"properties": {"after": after, "autoStart": {"type": "boolean"}}}
