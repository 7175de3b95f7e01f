"""``python -m faults.subscribers URL COUNT``: one process of WebSocket
subscribers for the load scenario.

It opens ``COUNT`` connections to ``URL``'s ``/ws?batch=1`` (every batch's
events), prints ``connected N`` once they are open (or failed), then reads a
line from stdin: the wall-clock time (epoch seconds) at which to stop. Each
connection records the ``seq`` of every frame until then and closes. The
last line on stdout is a JSON object: ``errors`` (connections that failed
or were closed early, with why), ``connected``, ``frames`` (received in
all), and ``window`` and ``seqs``: the seqs every connection was open for
(from the latest first seq to the earliest last one) and the union of what
they received in it; ``lost`` counts, over connections, the seqs of that
union a connection did not receive.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
import trio
import trio_websocket

from faults.events import ws_url

_CONNECT_SECONDS = 60.0


class _Subscriber:
    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.error = ""


async def _subscribe(
    url: str,
    subscriber: _Subscriber,
    until: trio.Event,
    stop: list[float],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    started = False
    try:
        async with trio_websocket.open_websocket_url(
            ws_url(url), connect_timeout=_CONNECT_SECONDS
        ) as ws:
            task_status.started()
            started = True
            await until.wait()
            with trio.move_on_at(trio.current_time() + max(0.0, stop[0] - time.time())):
                while True:
                    for frame in orjson.loads(await ws.get_message()):
                        subscriber.seqs.append(frame["seq"])
    except Exception as exc:  # every failure is a figure of the scenario
        subscriber.error = f"{type(exc).__name__}: {exc}"[:200]
        if not started:
            task_status.started()


def _summary(subscribers: list[_Subscriber]) -> dict[str, Any]:
    open_ = [s for s in subscribers if not s.error and s.seqs]
    low = max((s.seqs[0] for s in open_), default=0)
    high = min((s.seqs[-1] for s in open_), default=-1)
    inside = [{q for q in s.seqs if low <= q <= high} for s in open_]
    union = set().union(*inside) if inside else set()
    return {
        "connected": sum(not s.error for s in subscribers),
        "errors": [s.error for s in subscribers if s.error],
        "frames": sum(len(s.seqs) for s in subscribers),
        "window": [low, high],
        "seqs": sorted(union),
        "lost": sum(len(union - seen) for seen in inside),
        "out_of_order": sum(s.seqs != sorted(s.seqs) for s in open_),
    }


async def _main(url: str, count: int) -> None:
    subscribers = [_Subscriber() for _ in range(count)]
    until = trio.Event()
    stop = [0.0]
    async with trio.open_nursery() as nursery:
        for subscriber in subscribers:
            await nursery.start(_subscribe, url, subscriber, until, stop)
        print(f"connected {sum(not s.error for s in subscribers)}", flush=True)
        line = await trio.to_thread.run_sync(sys.stdin.readline)
        stop[0] = float(line)
        until.set()
    print(orjson.dumps(_summary(subscribers)).decode(), flush=True)


if __name__ == "__main__":
    trio.run(_main, sys.argv[1], int(sys.argv[2]))
