"""Rendering for the CLI: tables for people, JSON and CSV for scripts, progress bars on terminals."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

__all__ = ["print_table", "print_json", "print_csv", "progress_bar", "interactive"]


def interactive() -> bool:
    """True on a person's terminal; False in pipes and CI, where nota stays quiet."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """A table: rich's boxes on a terminal, aligned plain text in a pipe (whole values, a
    row per line, for ``grep`` and ``awk``; and rich's import and layout cost more than the
    query on a year's archive)."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if not sys.stdout.isatty():
        sys.stdout.write(plain_table(columns, cells, title))
        return
    from rich.console import Console  # rich only when a table is drawn: a command starts at once
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in cells:
        table.add_row(*row)
    Console().print(table)


def plain_table(columns: Sequence[str], cells: Sequence[Sequence[str]], title: str | None = None) -> str:
    """Columns padded to their widest cell and two spaces apart, under a rule of dashes."""
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip() + "\n"

    head = f"{title}\n" if title else ""
    return head + line(columns) + line(["-" * w for w in widths]) + "".join(map(line, cells))


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def rows_as_dicts(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row)) for row in rows]


def print_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    sys.stdout.write(buffer.getvalue())


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[..., None]]:
    """Yields ``update(done, total, *_)``: a rich bar on a terminal, nothing elsewhere."""
    if not interactive():
        yield lambda *args: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int, *_: Any) -> None:
            progress.update(task, completed=done, total=total)

        yield update
