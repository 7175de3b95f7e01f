"""``RunJobs`` lines written from job values are the converter's own bytes."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import ipc
from protocols.errors import LocalProtocolError
from protocols.framing import LineFramer
from protocols.run_jobs import job_object, run_jobs_line
from tests.protocols.strategies import JOBS_TO_RUN, SETTINGS

# ``cost`` at its default is left off the wire: draw it often.
JOBS = st.one_of(JOBS_TO_RUN, JOBS_TO_RUN.map(lambda job: attrs.evolve(job, cost=1.0)))


def _line(jobs: list[ipc.JobToRun]) -> bytes:
    return run_jobs_line(
        [
            job_object(j.job_id, j.type, j.payload, j.attempt, j.timeout_seconds, j.cost)
            for j in jobs
        ]
    )


@SETTINGS
@given(st.lists(JOBS, max_size=4))
def test_lines_equal_the_converters_and_decode_to_the_same_jobs(jobs: list[ipc.JobToRun]) -> None:
    message = ipc.RunJobs(jobs=tuple(jobs))
    line = _line(jobs)
    assert line == LineFramer(ipc.ParentMessage).encode(message)
    child: LineFramer[ipc.ParentMessage] = LineFramer(ipc.ParentMessage)
    child.receive_data(line)
    assert child.next_message() == message


def test_a_default_cost_is_left_off_and_any_other_written() -> None:
    job = ipc.JobToRun(job_id="j", type="t", payload=[1], attempt=2, timeout_seconds=None)
    assert _line([job]) == (
        b'{"jobs":[{"jobId":"j","type":"t","payload":[1],"attempt":2,"timeoutSeconds":null}],'
        b'"type":"run-jobs"}\n'
    )
    assert b'"cost":2.5' in _line([attrs.evolve(job, cost=2.5)])


def test_a_value_json_cannot_carry_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="cannot encode RunJobs"):
        run_jobs_line([job_object("j", "t", object(), 1, None, 1.0)])
