"""The ``nota`` command: a thin layer over the library.

Each command parses its arguments, makes one library call and renders the result. Library
code raises ``NotaError``; here it becomes ``Error: ...`` on stderr and exit status 1.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from nota import __version__
from nota.errors import NotaError
from nota.output import print_csv, print_json, print_table, progress_bar, rows_as_dicts

app = typer.Typer(
    help="nota: an archive and reducer for CCD imaging nights.\n\n"
    "Example:\n\n    nota simulate demo/ && nota ingest demo/N1 && nota frames --kind bias",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

EXIT_ERROR = 1
EXIT_REJECTED = 3


class State:
    db: Path = Path("nota.db")


state = State()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nota {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    db: Path = typer.Option(
        Path("nota.db"), "--db", envvar="NOTA_DB", help="Archive database file.", show_default=True
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what nota does."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """nota: an archive and reducer for CCD imaging nights."""
    state.db = db
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _fails_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn nota's own errors into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except NotaError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper


def _open_db():
    from nota.archive.database import open_database

    return open_database(state.db)


# simulate -----------------------------------------------------------------------------------


@app.command()
@_fails_cleanly
def simulate(
    outdir: Path = typer.Argument(..., help="Directory to write the nights into (N1/, N2/, ...)."),
    nights: int = typer.Option(1, help="How many nights to write."),
    seed: int = typer.Option(1, help="Random seed: the same seed writes the same bytes."),
    small: bool = typer.Option(False, "--small", help="A 4x4-binned readout: same night, small files."),
    mef: bool = typer.Option(False, "--mef", help="Multi-extension files, as ALFOSC wrote them."),
    jobs: Optional[int] = typer.Option(None, help="Worker processes (default: the cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print the nights written as JSON."),
) -> None:
    """Write a simulated NOT/ALFOSC night (2008-04-12) with a truth file beside it.

    Example:

        nota simulate demo/ --nights 2 --small
    """
    from nota.simulate import simulate_run

    with progress_bar("simulating") as update:
        written = simulate_run(
            outdir, nights=nights, seed=seed, small=small, mef=mef, jobs=jobs, on_frame=update
        )
    rows = [
        {"name": n.name, "night": n.night, "directory": str(n.directory), "frames": n.n_frames,
         "truth": str(n.truth_dir)}
        for n in written
    ]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['name']}: night {r['night']}, {r['frames']} frames in {r['directory']}")


# ingest -------------------------------------------------------------------------------------


@app.command()
@_fails_cleanly
def ingest(
    paths: List[Path] = typer.Argument(..., help="Directories (searched recursively) or files."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Index every header card of every FITS file into the archive.

    Unchanged files are skipped, changed ones re-indexed, renamed ones recognised by
    their content. Bad files are reported one line each and the rest go on; the exit
    status is 3 when any file was rejected.

    Example:

        nota ingest N1/
    """
    from nota.archive.ingest import ingest as run_ingest
    from nota.archive.query import frame_summary

    db = _open_db()
    with progress_bar("ingesting") as update:
        report = run_ingest(db, paths, on_file=update)
    db.conn.close()
    summary = frame_summary(state.db, report.roots)
    if as_json:
        print_json(
            {
                "activity_id": report.activity_id,
                "files": report.files_seen,
                "outcomes": dict(report.outcomes),
                "rejected": report.rejected,
                "problems": [p.__dict__ for p in report.problems],
                "frames": summary,
            }
        )
    else:
        for problem in report.problems:
            typer.echo(str(problem), err=True)
        outcome = ", ".join(f"{n} {k}" for k, n in sorted(report.outcomes.items()))
        typer.echo(f"{report.files_seen} files ({outcome or 'none'})")
        if summary:
            print_table(
                ["night", "kind", "filter", "frames"],
                [(r["night"], r["kind"], r["filter"], r["frames"]) for r in summary],
                title="Frames by night, kind and filter",
            )
        if report.rejected:
            typer.echo(f"{report.rejected} file(s) rejected; see `nota query "
                       "\"SELECT * FROM problems\"`", err=True)
    if report.rejected:
        raise typer.Exit(EXIT_REJECTED)


# query and frames -----------------------------------------------------------------------------


def _render(columns, rows, as_json: bool, as_csv: bool) -> None:
    if as_json:
        print_json(rows_as_dicts(columns, rows))
    elif as_csv:
        print_csv(columns, rows)
    else:
        print_table(columns, rows)


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise NotaError(f"--param {pair!r}: write it as name=value")
        params[name.lstrip(":")] = value
    return params


@app.command()
@_fails_cleanly
def query(
    sql: str = typer.Argument(..., help="One SQL SELECT over the archive's tables and views."),
    param: List[str] = typer.Option([], "--param", "-p", help="A :name parameter as name=value."),
    as_json: bool = typer.Option(False, "--json", help="Print an array of row objects."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV."),
    time_limit: float = typer.Option(10.0, help="Seconds before the query is stopped."),
) -> None:
    """Run a read-only SQL query against the archive.

    Writes, ATTACH and extensions are refused. regexp() is available.

    Example:

        nota query "SELECT filename, object, exptime FROM frames WHERE exptime > 600"
    """
    from nota.archive.query import run_query

    columns, rows = run_query(state.db, sql, _params(param), time_limit=time_limit)
    _render(columns, rows, as_json, as_csv)


@app.command()
@_fails_cleanly
def frames(
    night: Optional[str] = typer.Option(None, help="Night, as the date it began (2008-04-12)."),
    kind: Optional[str] = typer.Option(
        None, help="bias, dome_flat, sky_flat, standard, science, focus or unknown."
    ),
    filter: Optional[str] = typer.Option(None, "--filter", help="Filter name (R) or wheel id (76)."),
    as_json: bool = typer.Option(False, "--json", help="Print an array of row objects."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV."),
) -> None:
    """List the archive's frames.

    Example:

        nota frames --night 2008-04-12 --kind sky_flat --filter R
    """
    from nota.archive.query import list_frames

    columns, rows = list_frames(state.db, night=night, kind=kind, filter=filter)
    _render(columns, rows, as_json, as_csv)


if __name__ == "__main__":  # pragma: no cover
    app()
