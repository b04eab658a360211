"""The ``nota`` command: a thin layer over the library.

Each command parses its arguments, makes one library call and renders the result; no SQL
here. Library code raises ``NotaError``; here it becomes ``Error: ...`` on stderr and exit
status 1. The commands live by group: ``archive`` (simulate, ingest, query, frames,
selections), ``groups`` (qc, groups, overrides, explain), ``reduce`` (reduce, astrometry,
calibration, photometry, products, lineage, serve).
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import typer

from nota import __version__
from nota.errors import NotaError
from nota.output import print_csv, print_json, print_table, rows_as_dicts

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
    """Turn nota's own errors into one line on stderr and exit status 1 (and keep the
    help's example lines as they are written)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except NotaError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(EXIT_ERROR) from None

    wrapper.__doc__ = _examples_kept(command.__doc__)
    return wrapper


def _examples_kept(doc: str | None) -> str | None:
    """A command's docstring with each indented block (its examples) marked for click to
    print as written: click rewraps every paragraph, and ran two example commands into
    one line."""
    if not doc:
        return doc
    import inspect

    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(f"\b\n{p}" if p.startswith(" ") else p for p in paragraphs)


def writable():
    """The archive named by --db / NOTA_DB, for a command that writes (created if new)."""
    from nota.archive.database import open_archive

    return open_archive(state.db)


def readable(time_limit: float = 10.0):
    """The archive named by --db / NOTA_DB, read-only (user SQL is safe on it)."""
    from nota.archive.database import open_readonly

    return open_readonly(state.db, time_limit=time_limit)


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


def _sub_app(name: str, help: str, example: str) -> typer.Typer:
    """A command group (nota NAME ...) with its help and an example."""
    group = typer.Typer(help=f"{help}\n\nExample:\n\n    {example}", no_args_is_help=True,
                        rich_markup_mode=None)
    app.add_typer(group, name=name)
    return group


# The command groups register themselves on ``app``.
from nota.cli import archive as _archive, groups as _groups, profile as _profile, reduce as _reduce  # noqa: E402,F401
from nota.cli import check as _check, report as _report, watch as _watch  # noqa: E402,F401


def run() -> None:
    """The ``nota`` program: the app, and then an exit without the collector's last passes.

    Every command has closed what it opened by the time it ends (archives, pools, files,
    all in ``with`` blocks), but Python's exit still walks every object the process holds
    looking for cycles: 20 to 30 ms after an ingest, a twentieth of the whole command.
    ``gc.freeze()`` leaves them out of it; everything is still freed as the modules go.
    Only here, in the program itself: a test calling the commands in-process keeps its
    collector."""
    try:
        app()
    except SystemExit:  # click ends every run so, with the exit status
        import gc

        gc.freeze()
        raise


if __name__ == "__main__":  # pragma: no cover
    run()
