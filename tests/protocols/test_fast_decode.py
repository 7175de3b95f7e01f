"""The decoding shortcut takes only what the converter takes, to the same
message; everything else it leaves to the converter."""

from __future__ import annotations

from typing import Any

import cattrs
from hypothesis import given
from hypothesis import strategies as st

from protocols import ipc, jsontext
from protocols.codec import CONVERTER
from protocols.fast_decode import fast_structurer
from tests.protocols.strategies import CHILD_MESSAGES, JSON, PARENT_MESSAGES, SETTINGS, TEXT

UNIONS: list[Any] = [ipc.ParentMessage, ipc.ChildMessage, ipc.ChildLine]
MESSAGES = st.one_of(
    PARENT_MESSAGES.map(lambda m: (ipc.ParentMessage, m)),
    CHILD_MESSAGES.map(lambda m: (ipc.ChildMessage, m)),
    st.lists(CHILD_MESSAGES, min_size=1, max_size=4).map(
        lambda ms: (ipc.ChildLine, ipc.Reports(facts=tuple(ms)))
    ),
)


def _wire(union: Any, message: Any) -> Any:
    return jsontext.load_any(jsontext.dumps(CONVERTER.unstructure(message, union)))


@SETTINGS
@given(MESSAGES)
def test_a_well_formed_message_is_the_converters(pair: tuple[Any, Any]) -> None:
    union, message = pair
    raw = _wire(union, message)
    fast = fast_structurer(union)(raw)
    assert fast == message
    # Every flat message is taken; Begin and RunJobs are too.
    assert fast is not None


@SETTINGS
@given(MESSAGES, st.data())
def test_a_changed_message_is_the_converters_or_left_to_it(
    pair: tuple[Any, Any], data: st.DataObject
) -> None:
    union, message = pair
    raw = _wire(union, message)
    keys = [key for key in raw if key != "type"]
    change = data.draw(st.sampled_from(["set", "drop", "add"]))
    if change == "set" and keys:
        raw[data.draw(st.sampled_from(keys))] = data.draw(JSON)
    elif change == "drop" and keys:
        del raw[data.draw(st.sampled_from(keys))]
    else:
        raw[data.draw(TEXT)] = data.draw(JSON)
    fast = fast_structurer(union)(raw)
    try:
        expected = CONVERTER.structure(raw, union)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError):
        assert fast is None
    else:
        assert fast is None or fast == expected


def test_not_a_message_is_left_to_the_converter() -> None:
    for union in UNIONS:
        fast = fast_structurer(union)
        for raw in ([], "x", 1, None, {}, {"type": 1}, {"type": ["x"]}, {"type": "nope"}):
            assert fast(raw) is None


def test_reports_holding_what_is_not_a_message_are_left_to_the_converter() -> None:
    fast = fast_structurer(ipc.ChildLine)
    for facts in (
        "x",
        {},
        [1],
        [None],
        [{}],
        [{"type": ["x"]}],
        [{"type": "nope"}],
        [{"type": 1}],
    ):
        assert fast({"type": "reports", "facts": facts}) is None
    started = {"type": "job-started", "jobId": "j", "startedAt": 1}
    assert fast({"type": "reports", "facts": [started, {"type": "reports", "facts": []}]}) is None
