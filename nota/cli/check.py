"""nota check: the archive verified against the disk."""

from __future__ import annotations

import typer

from nota.cli import EXIT_ERROR, _fails_cleanly, app, writable
from nota.output import print_json, progress_bar


@app.command()
@_fails_cleanly
def check(
    full: bool = typer.Option(False, "--full", help="Hash every raw file, not only those whose size or time changed."),
    as_json: bool = typer.Option(False, "--json", help="Print the problems and the summary as JSON."),
) -> None:
    """Verify the archive against the disk: raw files unchanged, products as recorded, nothing stray.

    One line per problem, naming the file; then a summary. Exit status 0 only when all is
    well. Nothing is changed but the record of the check, which `nota serve` shows.

    Example:

        nota check && nota check --full --json
    """
    from nota.pipeline.check import check_archive

    with writable() as archive, progress_bar("checking") as update:
        report = check_archive(archive, full=full, on_file=update)
    if as_json:
        print_json({"ok": report.ok, "summary": report.summary(), "raw_files": report.raw_files,
                    "raw_hashed": report.raw_hashed, "products": report.products, "roots": list(report.roots),
                    "problems": [{"path": p.path, "problem": p.problem} for p in report.problems]})
    else:
        for p in report.problems:
            typer.echo(f"{p.path}: {p.problem}")
        typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(EXIT_ERROR)
