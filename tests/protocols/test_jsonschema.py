"""The JSON Schema of the wire classes states the bounds their validators enforce."""

from __future__ import annotations

from typing import Any, Literal

import attrs
import orjson
import pytest

from protocols import api
from protocols.codec import CONVERTER, camel_case
from protocols.errors import InvalidBody
from protocols.jsonschema import REF_PREFIX, component_schemas

SCHEMAS = component_schemas([api.CreateBatch, api.AddJobs, api.JobList, api.StatusView])


def test_every_class_reached_is_described_with_its_wire_names() -> None:
    for name in ("CreateBatch", "AddJobs", "JobSpec", "JobList", "JobView", "EngineView"):
        cls = getattr(api, name)
        schema = SCHEMAS[name]
        assert set(schema["properties"]) == {camel_case(f.name) for f in attrs.fields(cls)}
        assert schema["additionalProperties"] is False
    assert SCHEMAS["CreateBatch"]["properties"]["jobs"]["items"] == {
        "$ref": REF_PREFIX + "JobSpec"
    }


def test_required_fields_are_those_without_a_default() -> None:
    assert SCHEMAS["CreateBatch"]["required"] == ["jobs", "type"]
    assert "required" not in SCHEMAS["JobSpec"]
    assert set(SCHEMAS["JobView"]["required"]) == {
        "jobId", "batchId", "type", "state", "payload", "attempts", "key", "priority", "result",
        "error",
    }  # fmt: skip


def test_bounds_are_the_validators_bounds() -> None:
    job = SCHEMAS["JobSpec"]["properties"]
    assert job["key"] == {"type": ["string", "null"], "minLength": 1, "maxLength": 1024}
    assert (job["priority"]["minimum"], job["priority"]["maximum"]) == (
        api.MIN_PRIORITY,
        api.MAX_PRIORITY,
    )
    assert job["delaySeconds"] == {"type": "number", "minimum": 0}
    assert job["cost"] == {"type": "number", "exclusiveMinimum": 0}
    assert job["timeoutSeconds"] == {"type": ["number", "null"], "exclusiveMinimum": 0}
    batch_id = SCHEMAS["CreateBatch"]["properties"]["batchId"]
    assert batch_id["pattern"] == f"^{api.BATCH_ID_PATTERN.pattern}$"
    after = SCHEMAS["CreateBatch"]["properties"]["options"]["properties"]["after"]
    assert after["maxItems"] == api.MAX_AFTER
    assert SCHEMAS["JobView"]["properties"]["state"] == {
        "enum": ["pending", "active", "completed", "failed"]
    }


def test_job_types_become_the_allowed_names() -> None:
    named = component_schemas([api.CreateBatch], job_types=["noop", "echo"])
    assert named["CreateBatch"]["properties"]["type"] == {
        "type": "string",
        "enum": ["echo", "noop"],
    }
    assert named["JobSpec"]["properties"]["type"]["enum"] == ["echo", "noop", None]


def _job(**fields: Any) -> bytes:
    return orjson.dumps({"type": "t", "jobs": [fields]})


@pytest.mark.parametrize(
    ("fields", "accepted"),
    [
        ({"key": "k" * api.MAX_KEY_LENGTH}, True),
        ({"key": "k" * (api.MAX_KEY_LENGTH + 1)}, False),
        ({"priority": api.MAX_PRIORITY}, True),
        ({"priority": api.MAX_PRIORITY + 1}, False),
        ({"priority": 3.0}, True),
        ({"priority": 3.5}, False),
        ({"delaySeconds": 0}, True),
        ({"delaySeconds": -0.001}, False),
        ({"cost": 0.001}, True),
        ({"cost": 0}, False),
    ],
)
def test_the_decoder_draws_the_line_where_the_schema_does(
    fields: dict[str, Any], accepted: bool
) -> None:
    if accepted:
        job = api.decode_body(_job(**fields), api.CreateBatch).jobs[0]
        assert CONVERTER.unstructure(job) | fields == CONVERTER.unstructure(job)
    else:
        with pytest.raises(InvalidBody):
            api.decode_body(_job(**fields), api.CreateBatch)


@attrs.frozen(kw_only=True)
class _Child:
    pid: int


@attrs.frozen(kw_only=True)
class _Shapes:
    child: _Child | None
    names: list[str]
    level: Literal["low", "high"] = "low"
    extra: dict[str, int] = attrs.field(factory=dict)


def test_optional_classes_lists_literals_and_maps() -> None:
    schemas = component_schemas([_Shapes])
    shapes = schemas["_Shapes"]["properties"]
    assert shapes["child"] == {"anyOf": [{"$ref": REF_PREFIX + "_Child"}, {"type": "null"}]}
    assert shapes["names"] == {"type": "array", "items": {"type": "string"}}
    assert shapes["level"] == {"enum": ["low", "high"]}
    assert shapes["extra"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert schemas["_Shapes"]["required"] == ["child", "names"]
    assert schemas["_Child"]["required"] == ["pid"]
