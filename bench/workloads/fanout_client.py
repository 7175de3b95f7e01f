"""``python -m bench.workloads.fanout_client``: many WebSocket subscribers of
one batch in one process, for W6.

It opens ``--subscribers`` subscriptions to ``--batch`` with ``?batch=1``
(each message an array of frames, as ``batchyard watch`` asks), prints
``READY`` once all are open, then reads every frame of each until the run's
``done`` (or ``error``), resuming after a slow-subscriber drop as a client
should (``bench.live.wire``: a client light enough that a thousand of them
measure the server, not themselves). A subscriber whose connection breaks
(refused, reset) is a finding for the report, not a reason to stop the
others.
It writes ``OUT.json`` (per subscriber: frames, drops, whether it saw the
end) and ``OUT.bin``: for every frame received, its seq and arrival time
(``time.monotonic()``), as two stdlib arrays, so the parent can compute the
delivery latency of each frame against the moment it was published.

Then it prints ``ENDED`` and exits only once its stdin is closed: the parent
reads this process's CPU time while it is still alive (a reaped child's
time can no longer be told apart from the engine's, which runs in the
parent).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from array import array
from pathlib import Path
from typing import Any

import attrs
import orjson
import trio

from bench.live.wire import Closed, RawSubscriber, open_raw_subscriber

__all__ = ["Tally", "main"]

_TRY_AGAIN_LATER = 1013

#: The events that end a run.
_END = frozenset({"done", "error"})

#: A frame's seq, read without decoding the message: the client's CPU is
#: part of what W6 measures, and decoding every frame into dicts was half
#: of it. Only a frame's own ``"seq":`` key matches (a quote inside a JSON
#: string is escaped); a message that may hold a run's end is decoded.
_SEQ = re.compile(rb'"seq":(\d+)')
_ENDING = re.compile(rb'"event":"(?:done|error)"')


@attrs.define
class Tally:
    """What one subscriber saw."""

    frames: int = 0
    messages: int = 0
    drops: int = 0
    ended: bool = False
    error: str | None = None


class _Seen:
    """The seqs one subscriber has received, and the highest one up to which
    it has them all (``contiguous``): where it resumes from after a drop."""

    def __init__(self) -> None:
        self.seqs: set[int] = set()
        self.highest = 0
        self._contiguous = 0

    def add_all(self, seqs: list[int]) -> list[int]:
        """Record ``seqs`` (in increasing order); those not seen before.

        A message newer than everything seen, the usual case, costs one set
        update.
        """
        if not seqs:
            return seqs
        if not self.seqs:
            self._contiguous = seqs[0] - 1
        fresh = seqs[0] > self.highest
        new = seqs if fresh else [seq for seq in seqs if seq not in self.seqs]
        self.seqs.update(new)
        self.highest = max(self.highest, seqs[-1])
        return new

    @property
    def contiguous(self) -> int:
        while self._contiguous + 1 in self.seqs:
            self._contiguous += 1
        return self._contiguous


async def _subscriber(
    ws_url: str,
    batch_id: str,
    tally: Tally,
    seqs: array[int],
    arrivals: array[float],
    opened: trio.Semaphore,
) -> None:
    # One subscriber that breaks (its reconnection refused or cut) is a
    # finding to report, not a reason to stop the others.
    ready = False
    seen = _Seen()
    try:
        while not tally.ended:
            async with open_raw_subscriber(ws_url, batch_id) as subscriber:
                if not ready:
                    opened.release()
                    ready = True
                if seen.seqs:
                    await subscriber.send_text(json.dumps({"resumeFrom": seen.contiguous}))
                try:
                    await _read(subscriber, batch_id, tally, seen, seqs, arrivals)
                except Closed as exc:
                    if exc.code != _TRY_AGAIN_LATER:
                        raise
                    tally.drops += 1
    except (OSError, trio.BrokenResourceError, Closed) as exc:
        tally.error = f"{type(exc).__name__}: {exc}"
        if not ready:
            opened.release()


async def _read(
    subscriber: RawSubscriber,
    batch_id: str,
    tally: Tally,
    seen: _Seen,
    seqs: array[int],
    arrivals: array[float],
) -> None:
    async for payload, arrived in subscriber.frames():
        tally.messages += 1
        new = seen.add_all([int(seq) for seq in _SEQ.findall(payload)])
        tally.frames += len(new)
        seqs.extend(new)
        arrivals.extend([arrived] * len(new))
        if _ENDING.search(payload) and _ends(orjson.loads(payload), batch_id):
            tally.ended = True
            return


def _ends(message: Any, batch_id: str) -> bool:
    frames = message if isinstance(message, list) else [message]
    return any(
        frame["event"] in _END and frame["data"].get("batchId") == batch_id for frame in frames
    )


async def _run(args: argparse.Namespace) -> None:
    tallies = [Tally() for _ in range(args.subscribers)]
    seqs: array[int] = array("q")
    arrivals: array[float] = array("d")
    opened = trio.Semaphore(args.subscribers, max_value=args.subscribers)
    for _ in range(args.subscribers):
        await opened.acquire()
    with trio.move_on_after(args.timeout):
        async with trio.open_nursery() as nursery:
            for tally in tallies:
                nursery.start_soon(
                    _subscriber, args.url, args.batch, tally, seqs, arrivals, opened
                )
            for _ in range(args.subscribers):
                await opened.acquire()
            print("READY", flush=True)
    out = Path(args.out)
    with out.with_suffix(".bin").open("wb") as file:
        array("q", [len(seqs)]).tofile(file)
        seqs.tofile(file)
        arrivals.tofile(file)
    out.with_suffix(".json").write_text(json.dumps([attrs.asdict(t) for t in tallies]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workloads.fanout_client")
    parser.add_argument("--url", required=True, help="ws://HOST:PORT")
    parser.add_argument("--batch", required=True)
    parser.add_argument("--subscribers", type=int, required=True)
    parser.add_argument("--out", required=True, help="path without suffix")
    parser.add_argument("--timeout", type=float, default=600.0)
    trio.run(_run, parser.parse_args(argv))
    print("ENDED", flush=True)
    sys.stdin.buffer.read()


if __name__ == "__main__":
    main(sys.argv[1:])
