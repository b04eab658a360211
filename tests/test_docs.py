"""The documentation's examples run: every ```python block of docs/*.md, in order.

Each page's blocks run in one namespace, as the cells of one notebook, in a temporary
working directory that all pages share: ``notebook.md`` first (it simulates, ingests and
reduces the night), then the others, which find its archive there (as a reader who did
the tutorial would) and make it themselves when it is not. A block that raises fails the
test with the page, the block's line and its code.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FIRST = "notebook.md"
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def pages() -> list[Path]:
    found = sorted(DOCS.glob("*.md"), key=lambda p: (p.name != FIRST, p.name))
    return [p for p in found if _BLOCK.search(p.read_text())]


def blocks(page: Path) -> list[tuple[int, str]]:
    """(line, code) of each ```python block."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in _BLOCK.finditer(text)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("docs")


def test_the_docs_have_examples():
    names = [p.name for p in pages()]
    assert names[:1] == [FIRST] and "api.md" in names
    assert all(len(blocks(p)) >= 5 for p in pages())


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_every_example_runs(page, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.delenv("NOTA_DB", raising=False)  # the pages name their archive themselves
    namespace: dict = {"__name__": f"docs.{page.stem}"}
    for line, code in blocks(page):
        try:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        except Exception:  # noqa: BLE001  (the page, the block and its code, then the traceback)
            pytest.fail(f"{page.name}, block at line {line}:\n{code}\n{traceback.format_exc()}")
