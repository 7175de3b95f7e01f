"""Imports follow the direction of ARCHITECTURE.md, checked on the source.

Design notes
------------
Every rule is a row of ``RULES``: which files it covers, which modules they
must not import, and the files it exempts. The check parses each file with
``ast`` and never imports it, so it works on a tree where half the modules
do not exist yet (or do not import cleanly) and sees imports hidden under
``if TYPE_CHECKING:`` or inside functions. Relative imports are resolved, and
``from engine import testing`` counts as importing ``engine.testing``.

Only static imports count. A module loaded by a name held in a string
(``importlib.import_module(name)``, as the job loader does with the modules
an operator configured) is a runtime choice, not a dependency of the code.

``protocols`` gets one more check, an allow-list: besides its own modules it
may import only the standard library, ``attrs``, ``cattrs`` and ``orjson``.
The deny-list still applies inside the standard library (``socket``,
``subprocess``, ``asyncio``, ...), which the allow-list alone would let in.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: I/O and event loops; ``protocols`` turns bytes into values and nothing more.
SANS_IO_FORBIDDEN = (
    "trio",
    "trio_websocket",
    "anyio",
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "subprocess",
    "multiprocessing",
    "hypercorn",
    "starlette",
    "httpx",
    "engine",
)
PROTOCOLS_THIRD_PARTY = ("attrs", "attr", "cattrs", "orjson", "protocols")

RUNTIME = ("engine/**/*.py", "protocols/**/*.py", "*.py")


class Rule(NamedTuple):
    """Files matching ``files`` (minus ``exempt``) must not import ``forbidden``."""

    name: str
    files: tuple[str, ...]
    forbidden: tuple[str, ...]
    exempt: tuple[str, ...] = ()


class Violation(NamedTuple):
    path: str
    line: int
    module: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.module}"


#: The engine's folders, each a room of ARCHITECTURE.md.
ENGINE_FOLDERS = (
    "engine.core",
    "engine.supervisor",
    "engine.child",
    "engine.jobs",
    "engine.config",
    "engine.store",
    "engine.server",
    "engine.client",
    "engine.cli",
    "engine.testing",
)
#: What only the serving and client edges may import.
EDGES = ("engine.server", "engine.client", "engine.cli", "hypercorn", "starlette", "httpx")


def _every_folder_but(*allowed: str) -> tuple[str, ...]:
    return tuple(folder for folder in ENGINE_FOLDERS if folder not in allowed)


RULES = (
    Rule("protocols is sans-IO", ("protocols/**/*.py",), SANS_IO_FORBIDDEN),
    Rule("core never imports the edges", ("engine/core/**/*.py",), EDGES),
    Rule("supervisor never imports the edges", ("engine/supervisor/**/*.py",), EDGES),
    Rule("jobs never imports the edges", ("engine/jobs/**/*.py",), EDGES),
    Rule(
        "config never imports the edges nor an event loop",
        ("engine/config/**/*.py",),
        (*EDGES, "trio", "anyio"),
    ),
    Rule("store never imports the edges", ("engine/store/**/*.py",), EDGES),
    Rule(
        "the child imports only protocols and jobs",
        ("engine/child/**/*.py",),
        (*_every_folder_but("engine.child", "engine.jobs"), *EDGES),
    ),
    Rule(
        "the client imports only protocols",
        ("engine/client/**/*.py",),
        (*_every_folder_but("engine.client"), "engine.errors"),
    ),
    Rule(
        "engine.testing is test support: no runtime module imports it",
        RUNTIME,
        ("engine.testing",),
        exempt=tuple(str(p.relative_to(ROOT)) for p in ROOT.glob("engine/testing/**/*.py")),
    ),
    Rule("the runtime never imports the fault suite", RUNTIME, ("faults",)),
    Rule(
        "nothing imports the command line but `python -m engine`",
        (*RUNTIME, "bench/**/*.py"),
        ("engine.cli",),
        exempt=(
            "engine/__main__.py",
            *(str(p.relative_to(ROOT)) for p in ROOT.glob("engine/cli/**/*.py")),
        ),
    ),
    Rule(
        "engine/server/serve.py is the only hypercorn import",
        ("engine/**/*.py", "protocols/**/*.py"),
        ("hypercorn",),
        exempt=("engine/server/serve.py",),
    ),
)


# --- the checker ------------------------------------------------------------------


def module_name(root: Path, path: Path) -> str:
    """``engine/store/sqlite.py`` → ``engine.store.sqlite``; a package is its ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports statically, with the line that does it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(root, path).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(package, node.module, node.level)
            if base:
                yield base, node.lineno
            for alias in node.names:
                # ``from engine import testing`` may name a submodule.
                yield f"{base}.{alias.name}" if base else alias.name, node.lineno


def _absolute(package: list[str], module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    anchor = package[: len(package) - (level - 1)]
    return ".".join([*anchor, *([module] if module else [])])


def _within(module: str, prefixes: tuple[str, ...]) -> str | None:
    for prefix in prefixes:
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return None


def files_of(root: Path, rule: Rule) -> list[Path]:
    found = {path for pattern in rule.files for path in root.glob(pattern)}
    exempt = {root / name for name in rule.exempt}
    return sorted(path for path in found - exempt if path.is_file())


def violations(root: Path, rule: Rule) -> list[Violation]:
    found = []
    for path in files_of(root, rule):
        for module, line in imports_of(root, path):
            if _within(module, rule.forbidden):
                found.append(Violation(str(path.relative_to(root)), line, module))
    return found


def outside_allow_list(root: Path) -> list[Violation]:
    """Imports of ``protocols`` that are neither standard library nor allowed."""
    allowed = (*sorted(sys.stdlib_module_names), *PROTOCOLS_THIRD_PARTY)
    found = []
    for path in sorted(root.glob("protocols/**/*.py")):
        for module, line in imports_of(root, path):
            if not _within(module.split(".")[0], allowed):
                found.append(Violation(str(path.relative_to(root)), line, module))
    return found


# --- the real tree ------------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_imports_follow_the_architecture(rule: Rule) -> None:
    assert [str(v) for v in violations(ROOT, rule)] == [], rule.name


def test_protocols_imports_only_the_standard_library_attrs_cattrs_orjson() -> None:
    assert [str(v) for v in outside_allow_list(ROOT)] == []


def test_the_check_sees_the_protocols_package() -> None:
    # Guards against a rule silently matching no file at all.
    scanned = {path.name for path in files_of(ROOT, RULES[0])}
    assert {"__init__.py", "ipc.py", "framing.py", "codec.py"} <= scanned


# --- the checker, on made-up trees --------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root


_TYPE_CHECKING_ONLY = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import trio\n"


def _rule(name: str) -> Rule:
    return next(rule for rule in RULES if rule.name.startswith(name))


@pytest.mark.parametrize(
    ("rule", "files", "expected"),
    [
        ("protocols", {"protocols/a.py": "import trio\n"}, ["trio"]),
        ("protocols", {"protocols/a.py": "import trio.lowlevel as ll\n"}, ["trio"]),
        ("protocols", {"protocols/a.py": "from engine.errors import X\n"}, ["engine"]),
        ("protocols", {"protocols/a.py": _TYPE_CHECKING_ONLY}, ["trio"]),
        ("protocols", {"protocols/a.py": "def f():\n    import socket\n"}, ["socket"]),
        ("protocols", {"protocols/a.py": "import trio_fake\nimport triode\n"}, []),
        ("protocols", {"protocols/a.py": "import asyncio.streams\n"}, ["asyncio"]),
        ("the child", {"engine/child/program.py": "from .. import store\n"}, ["engine.store"]),
        (
            "the child",
            {"engine/child/program.py": "from ..store.base import Store\n"},
            ["engine.store"],
        ),
        (
            "the child",
            {"engine/child/program.py": "from engine.core import runner\n"},
            ["engine.core"],
        ),
        (
            "the child",
            {"engine/child/program.py": "import engine.server.app\n"},
            ["engine.server"],
        ),
        ("the child", {"engine/child/program.py": "from engine import jobs\nimport trio\n"}, []),
        (
            "the client",
            {"engine/client/http.py": "from engine.errors import X\n"},
            ["engine.errors"],
        ),
        ("the client", {"engine/client/http.py": "from ..core import bus\n"}, ["engine.core"]),
        ("the client", {"engine/client/http.py": "from protocols import api\n"}, []),
        ("core", {"engine/core/engine.py": "from engine.server import app\n"}, ["engine.server"]),
        ("core", {"engine/core/engine.py": "import httpx\n"}, ["httpx"]),
        ("store", {"engine/store/redis.py": "from engine.cli import main\n"}, ["engine.cli"]),
        (
            "engine.testing",
            {"engine/core/runner.py": "from engine.testing import crash\n"},
            ["engine.testing"],
        ),
        (
            "engine.testing",
            {"engine/store/x.py": "from ..testing import fake\n"},
            ["engine.testing"],
        ),
        (
            "engine.testing",
            {"engine/jobs/registry.py": "import importlib\nimportlib.import_module(name)\n"},
            [],
        ),
        ("engine.testing", {"tests/test_x.py": "from engine.testing import crash\n"}, []),
        ("engine.testing", {"bench/run.py": "from engine import testing\n"}, []),
        (
            "nothing imports",
            {"engine/server/app.py": "from engine.cli import main\n"},
            ["engine.cli"],
        ),
        ("nothing imports", {"bench/__main__.py": "from engine import cli\n"}, ["engine.cli"]),
        ("nothing imports", {"engine/__main__.py": "from engine.cli import main\n"}, []),
        (
            "engine/server/serve.py",
            {"engine/server/app.py": "import hypercorn.trio\n"},
            ["hypercorn"],
        ),
        ("engine/server/serve.py", {"engine/server/serve.py": "import hypercorn.trio\n"}, []),
        ("config", {"engine/config/settings.py": "import trio\n"}, ["trio"]),
    ],
)
def test_the_checker(
    tmp_path: Path, rule: str, files: dict[str, str], expected: list[str]
) -> None:
    root = _tree(tmp_path, files)
    found = {_within(v.module, _rule(rule).forbidden) for v in violations(root, _rule(rule))}
    assert sorted(module for module in found if module) == expected


def test_the_allow_list_on_a_made_up_tree(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "protocols/__init__.py": "from protocols import api\n",
            "protocols/api.py": (
                "from __future__ import annotations\nimport re\nimport attrs\n"
                "import cattrs.gen\nimport orjson\nfrom . import codec\n"
            ),
            "protocols/bad.py": "import pydantic\nimport numpy as np\n",
        },
    )
    assert sorted(v.module for v in outside_allow_list(root)) == ["numpy", "pydantic"]


def test_relative_imports_resolve_from_the_right_package(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "engine/store/__init__.py": "from .base import Store\nfrom .. import errors\n",
            "engine/store/sqlite.py": "from . import base\nfrom ..errors import StoreError\n",
        },
    )
    init = dict(imports_of(root, root / "engine/store/__init__.py"))
    assert {"engine.store.base", "engine.errors"} <= init.keys()
    sqlite = dict(imports_of(root, root / "engine/store/sqlite.py"))
    assert {"engine.store.base", "engine.errors", "engine.errors.StoreError"} <= sqlite.keys()
