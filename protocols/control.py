"""Client → server control messages: how a WebSocket client steers its
subscription.

Design notes
------------
A WebSocket client steers its subscription with three control messages, each
an object with exactly one key: ``{"subscribe": [ids]}``,
``{"unsubscribe": [ids]}`` and ``{"resumeFrom": seq}``. Their classes name
their single field after that key, so the shared converter frames them with
no special case; ``parse_control`` only has to pick the class.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

import attrs
import orjson

from protocols.api import BATCH_ID_PATTERN
from protocols.codec import CONVERTER, decode_json, invalid_field, json_kind, structure_as
from protocols.errors import RemoteProtocolError
from protocols.events import _non_negative

__all__ = [
    "MAX_CLIENT_MESSAGE_BYTES",
    "MAX_SUBSCRIBED_BATCHES",
    "ControlMessage",
    "ResumeFrom",
    "Subscribe",
    "Unsubscribe",
    "control_frame",
    "parse_control",
]


#: The largest WebSocket message a client may send (the server closes with
#: 1009 beyond it): control messages are small, so anything near this is not
#: one; a client following many batches subscribes in several messages.
MAX_CLIENT_MESSAGE_BYTES = 64 * 1024

#: One connection follows at most this many batches by id (its query and all
#: its ``subscribe`` messages together): each event is checked against the
#: filter, and a client that wants more than this wants every batch (no
#: filter), which costs nothing per batch.
MAX_SUBSCRIBED_BATCHES = 1000


def _batch_ids(instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    if len(value) > MAX_SUBSCRIBED_BATCHES:
        raise invalid_field(attribute, f"lists more than {MAX_SUBSCRIBED_BATCHES} batch ids")
    for batch_id in value:
        if BATCH_ID_PATTERN.fullmatch(batch_id) is None:
            raise invalid_field(attribute, f"holds {batch_id!r:.140}, which is not a batch id")


@attrs.frozen(kw_only=True)
class Subscribe:
    """Receive the events of these batches too."""

    subscribe: tuple[str, ...] = attrs.field(validator=_batch_ids)


@attrs.frozen(kw_only=True)
class Unsubscribe:
    """Stop receiving the events of these batches."""

    unsubscribe: tuple[str, ...] = attrs.field(validator=_batch_ids)


@attrs.frozen(kw_only=True)
class ResumeFrom:
    """Replay every retained event with a greater ``seq``, then carry on live."""

    resume_from: int = attrs.field(validator=_non_negative)


ControlMessage = Subscribe | Unsubscribe | ResumeFrom

_CONTROL_BY_KEY: Mapping[str, type[ControlMessage]] = types.MappingProxyType(
    {"subscribe": Subscribe, "unsubscribe": Unsubscribe, "resumeFrom": ResumeFrom}
)


def parse_control(raw: str | bytes) -> ControlMessage:
    """One control message from a WebSocket client.

    Raises:
        RemoteProtocolError: not JSON, not an object with exactly one of
            ``subscribe``, ``unsubscribe`` and ``resumeFrom``, or a value of
            the wrong shape.
    """
    value = decode_json(raw, "control message")
    keys = sorted(value) if isinstance(value, dict) else []
    if len(keys) != 1 or keys[0] not in _CONTROL_BY_KEY:
        found = f"keys {keys!r:.140}" if isinstance(value, dict) else json_kind(value)
        raise RemoteProtocolError(
            "control message must be an object with exactly one of the keys "
            f"{', '.join(sorted(_CONTROL_BY_KEY))}; got {found}"
        )
    return structure_as(value, _CONTROL_BY_KEY[keys[0]], "control message")


def control_frame(message: ControlMessage) -> str:
    """``message`` as a WebSocket text frame (the client's side of ``parse_control``)."""
    return orjson.dumps(CONVERTER.unstructure(message)).decode()
