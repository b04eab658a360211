"""The shape of the code: three rooms that import one way, no cycles, modules one can read.

``reduce/`` is pixels only and imports nothing of the archive or the pipeline; ``archive/``
is the database only and imports nothing of ``reduce/`` or the pipeline; the CLI runs no
SQL. Imports are read from the source (``ast``), so a lazy import inside a function counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"nota": ROOT / "nota", "nota.archive": ROOT / "archive", "nota.reduce": ROOT / "reduce",
            "nota.pipeline": ROOT / "pipeline"}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    """Every module of nota by dotted name (the simulator is a tool of its own, included)."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            if package == "nota" and path.relative_to(folder).parts[0] in ("archive", "reduce", "pipeline"):
                continue
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imported(nodes, name: str, path: Path) -> set[str]:
    """The nota modules these import statements name (a package's ``__init__`` importing
    its own submodules, as the CLI's command groups, is not counted)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    known = modules()
    return {m for m in out if m in known and m != name
            and not (path.name == "__init__.py" and m.startswith(name + "."))}


def graph(top_level_only: bool = False) -> dict[str, set[str]]:
    out = {}
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        nodes = tree.body if top_level_only else list(ast.walk(tree))
        out[name] = imported([n for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom))], name, path)
    return out


def test_the_three_rooms_import_one_way():
    for name, imported in graph().items():
        if name.startswith("nota.reduce"):
            wrong = {m for m in imported if m.startswith(("nota.archive", "nota.pipeline", "nota.cli"))}
            assert not wrong, f"{name} (pixels only) imports {sorted(wrong)}"
        if name.startswith("nota.archive"):
            wrong = {m for m in imported if m.startswith(("nota.reduce", "nota.pipeline", "nota.cli"))}
            assert not wrong, f"{name} (the database only) imports {sorted(wrong)}"


def test_no_import_cycle_at_module_level():
    """Top-level imports only: a cycle there breaks `import`; lazy ones are allowed to close one."""
    edges = graph(top_level_only=True)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in edges:
        if name not in state:
            visit(name, [name])


def test_the_cli_runs_no_sql():
    for name, path in modules().items():
        if name.startswith("nota.cli"):
            tree = ast.parse(path.read_text())
            calls = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                     and n.attr in ("execute", "executemany", "executescript", "run", "dicts")]
            assert not calls, f"{name} line {calls[0].lineno}: SQL belongs in the archive"


def test_modules_are_readable_in_one_sitting():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_every_step_declares_its_parts():
    from nota.pipeline.settings import FRAME_STAGES, STEPS, step_module

    for row in STEPS:
        module = step_module(row.name)
        assert module.NAME == row.name
        for part in ("VERSION", "Params", "Result", "plan", "make", "current", "record_result"):
            assert hasattr(module, part), f"step {row.name} lacks {part}"
    import importlib

    for module, function in FRAME_STAGES:
        assert callable(getattr(importlib.import_module(module), function))
