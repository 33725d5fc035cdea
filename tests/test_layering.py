"""Enforce the import rules of DESIGN §2 by parsing every syncd module with ``ast``.

- ``syncd.core`` imports only the standard library and ``syncd.core`` itself;
- ``syncd.adapters`` and ``syncd.store`` never import the wiring layer (runner,
  scheduler, app, admin, cli);
- ``syncd.sandbox`` never imports ``syncd.adapters``, ``syncd.runner`` or ``syncd.store``:
  the emulators must stay independent of the client code they test.

Imports under ``if TYPE_CHECKING:`` count too, and so do ``importlib.import_module`` /
``__import__`` calls with a literal module name.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "syncd"

WIRING = (
    "syncd.runner",
    "syncd.scheduler",
    "syncd.app",
    "syncd.admin",
    "syncd.cli",
    "syncd.daemon",
    "syncd.demo",
)


@dataclass(frozen=True)
class Rule:
    """Modules under one of ``scopes`` may not import what this rule refuses."""

    scopes: tuple[str, ...]
    why: str
    forbidden: tuple[str, ...] = ()
    stdlib_plus: tuple[str, ...] | None = None  # when set: only stdlib and these

    def applies_to(self, module: str) -> bool:
        return any(_within(module, scope) for scope in self.scopes)

    def refuses(self, imported: str) -> bool:
        if self.stdlib_plus is not None:
            top = imported.partition(".")[0]
            allowed = top in sys.stdlib_module_names or any(
                _within(imported, ok) for ok in self.stdlib_plus
            )
            if not allowed:
                return True
        return any(_within(imported, bad) for bad in self.forbidden)


RULES = (
    Rule(("syncd.core",), "core is pure: standard library only", stdlib_plus=("syncd.core",)),
    Rule(("syncd.adapters", "syncd.store"), "only the wiring layer wires", forbidden=WIRING),
    Rule(
        ("syncd.sandbox",),
        "emulators stay independent of the client code they test",
        forbidden=("syncd.adapters", "syncd.runner", "syncd.store"),
    ),
)


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of ``from <level dots><target> import ...`` inside ``module``."""
    if level == 0:
        return target or ""
    package = module if is_package else module.rpartition(".")[0]
    parts = package.split(".")
    if level - 1 >= len(parts):
        return target or ""  # beyond the top package: let the import itself fail
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{target}" if target else base


_DYNAMIC_IMPORTERS = {"import_module", "__import__"}


def imported_names(
    module: str, source: str, *, is_package: bool = False
) -> Iterator[tuple[int, str]]:
    """Every ``(line, absolute module or module.attribute)`` the source imports."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                # ``from pkg import name``: name is a submodule or an attribute of pkg;
                # "pkg.name" is checked either way (for an attribute it lies within pkg).
                yield node.lineno, base if alias.name == "*" else f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if (
                name in _DYNAMIC_IMPORTERS
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                yield node.lineno, first.value


def violations(module: str, source: str, *, is_package: bool = False) -> list[str]:
    """Human-readable layering violations of one module's source."""
    found: list[str] = []
    rules = [rule for rule in RULES if rule.applies_to(module)]
    for line, name in imported_names(module, source, is_package=is_package):
        for rule in rules:
            if rule.refuses(name):
                found.append(f"{module}:{line} imports {name} ({rule.why})")
    return found


def project_modules() -> Iterator[tuple[str, Path, bool]]:
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(ROOT).with_suffix("")
        parts = list(relative.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        yield ".".join(parts), path, is_package


# ----------------------------------------------------------------------------- the project


def test_the_scan_sees_the_project_modules() -> None:
    names = {name for name, _, _ in project_modules()}
    assert {"syncd.core", "syncd.core.model", "syncd.logs", "syncd.errors"} <= names


def test_project_modules_follow_the_layering_rules() -> None:
    problems = [
        problem
        for name, path, is_package in project_modules()
        for problem in violations(name, path.read_text(encoding="utf-8"), is_package=is_package)
    ]
    assert problems == [], "\n".join(problems)


# ----------------------------------------------------------------------------- the checker


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("syncd.core.merge", "import aiohttp"),
        ("syncd.core.merge", "from sqlalchemy import select"),
        ("syncd.core.merge", "import pydantic.fields"),
        ("syncd.core.merge", "from syncd.errors import SafetyStop"),
        ("syncd.core.merge", "from syncd import errors"),
        ("syncd.core.merge", "from .. import errors"),
        ("syncd.core.merge", "import structlog"),
        ("syncd.core.merge", "if TYPE_CHECKING:\n    from syncd.store.tables import links"),
        ("syncd.core.merge", "def f():\n    import apscheduler"),
        ("syncd.adapters.moneybird.client", "from syncd.runner import run_pass"),
        ("syncd.adapters.moneybird.client", "from syncd import runner"),
        ("syncd.adapters.http", "import syncd.cli"),
        ("syncd.adapters.moneybird.client", "from ...app import build"),
        ("syncd.store.repos", "from syncd.scheduler import lanes"),
        ("syncd.store.repos", "import syncd.admin.routes as r"),
        (
            "syncd.sandbox.moneybird.app",
            "from syncd.adapters.moneybird.mapping import to_canonical",
        ),
        ("syncd.sandbox.server", "from syncd.store.db import make_engine"),
        ("syncd.sandbox.server", "import syncd.runner"),
        ("syncd.sandbox.server", "import importlib\nimportlib.import_module('syncd.store.db')"),
    ],
)
def test_checker_reports_a_forbidden_import(module: str, source: str) -> None:
    found = violations(module, source)
    assert len(found) == 1, found
    assert found[0].startswith(f"{module}:")


@pytest.mark.parametrize(
    ("module", "source", "is_package"),
    [
        ("syncd.core.merge", "from __future__ import annotations\nimport json, decimal", False),
        ("syncd.core.merge", "from collections.abc import Mapping", False),
        ("syncd.core.merge", "from syncd.core.model import Contact", False),
        ("syncd.core.merge", "from . import model", False),
        ("syncd.core", "from .model import Contact", True),
        ("syncd.adapters.http", "import aiohttp\nfrom syncd.errors import Fatal", False),
        ("syncd.adapters.http", "from syncd.core.model import Invoice", False),
        ("syncd.store.repos", "from syncd.core import model\nimport sqlalchemy", False),
        ("syncd.sandbox.server", "import aiohttp\nfrom syncd.core.model import Contact", False),
        ("syncd.sandbox.server", "from syncd.sandbox.base import Emulator", False),
        (
            "syncd.runner",
            "from syncd.adapters import registry\nfrom syncd.store import repos",
            False,
        ),
        ("syncd.cli", "from syncd.app import main", False),
    ],
)
def test_checker_accepts_allowed_imports(module: str, source: str, is_package: bool) -> None:
    assert violations(module, source, is_package=is_package) == []


def test_relative_imports_resolve_against_the_package() -> None:
    names = [n for _, n in imported_names("syncd.core.model", "from ..errors import Fatal")]
    assert names == ["syncd.errors.Fatal"]
    names = [n for _, n in imported_names("syncd.core", "from . import model", is_package=True)]
    assert names == ["syncd.core.model"]


def test_checker_reports_the_line_of_the_violation() -> None:
    source = "import json\n\nimport aiohttp\n"
    assert violations("syncd.core.x", source) == [
        "syncd.core.x:3 imports aiohttp (core is pure: standard library only)"
    ]
