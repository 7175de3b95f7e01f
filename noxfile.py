"""Sessions: ``tests``, ``lint`` and ``typecheck`` run by default; ``bench`` and
``faults`` on demand."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install(".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.7")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install(".[dev]")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    session.install(".[bench]")
    session.run("python", "-m", "bench", *session.posargs)


@nox.session
def faults(session: nox.Session) -> None:
    """The fault suite, ``python -m faults``: a few minutes, every scenario
    bounded; ``nox -s faults -- --quick`` for the short version."""
    session.install(".")
    session.run("python", "-m", "faults", *session.posargs)
