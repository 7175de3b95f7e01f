"""The SQLite store's transaction bodies that mark their heavy statements.

A hot step (``engine.store._sqlite_steps``) is a generator, a ``Body``: it
runs its cheap statements and its Python itself, and *yields* each heavy
statement (the few ``UPDATE``s that do nearly all of SQLite's work) as a
call taking no arguments, and is sent back what that call returned. Who
drives the body decides where the yielded calls run: ``run_inline`` runs
them in place (the worker thread, or anywhere nothing else waits), while
``engine.store.sqlite`` runs them in its worker thread and the rest in
the Trio thread, so SQLite's C work overlaps the Trio thread's Python.

What a yielded call may do: a few ``execute`` calls (each passes the
interpreter lock at most a couple of times), and nothing that fetches
rows one by one (each row would pass the lock again, against a busy
Trio thread). A statement with ``RETURNING`` does all its writing at its
first step, in the yielded call; its rows are fetched by the body.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TypeVar

__all__ = ["Body", "Heavy", "run_inline"]

_T = TypeVar("_T")

#: A heavy statement, as a call the body's driver makes.
Heavy = Callable[[], object]
#: A transaction body that yields its heavy statements (module notes).
Body = Generator[Heavy, object, _T]


def run_inline(body: Body[_T]) -> _T:
    """Run ``body`` to its end, its heavy statements in place (one that
    raises raises in the body); what it returns."""
    try:
        heavy = next(body)
        while True:
            try:
                value = heavy()
            except BaseException as exc:
                heavy = body.throw(exc)
            else:
                heavy = body.send(value)
    except StopIteration as done:
        result: _T = done.value
        return result
