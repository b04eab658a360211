"""nota report: a night's report as one self-contained HTML page."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from nota.cli import _fails_cleanly, app, state


@app.command()
@_fails_cleanly
def report(
    night: str = typer.Argument(..., help="The night, as the archive names it (its local date, e.g. 2008-04-12)."),
    out: Path = typer.Option(..., "--out", "-o", help="HTML file to write (replaced whole, never half-written)."),
) -> None:
    """Write a night's report: logbook with thumbnails, calibration groups and their plots,
    masters, photometric solutions and the products' lineage, as one self-contained page.

    Example:

        nota report 2008-04-12 --out night-2008-04-12.html
    """
    from nota.archive.report import night_report_html

    page = night_report_html(state.db, night).encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # same directory: the rename is atomic
    try:
        temporary.write_bytes(page)
        os.replace(temporary, out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    typer.echo(f"Wrote the report of {night} to {out} ({len(page) / 2**20:.1f} MB)")
