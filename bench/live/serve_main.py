"""``python -m bench.live.serve_main``: what ``batchyard serve`` runs, on a free port.

The engine's settings come from the environment exactly as ``batchyard
serve`` reads them (``Settings.load``); the only difference is the port: 0,
so that concurrent runs never collide, and the URL is printed as the first
line of stdout for the harness to read.
"""

from __future__ import annotations

import sys
from functools import partial

import trio

from engine.config.settings import Settings
from engine.server.serve import serve


async def _main() -> None:
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve, Settings.load(), host="127.0.0.1", port=0))
        print(f"URL {url}", flush=True)


if __name__ == "__main__":
    trio.run(_main)
    sys.exit(0)
