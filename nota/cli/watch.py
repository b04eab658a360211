"""nota watch: reduce a night while it is being observed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List

import typer

from nota.cli import _fails_cleanly, app, writable
from nota.cli.reduce import (Cosmics, IndexDir, Jobs, KeepIntermediate, Memory, Overscan, Photometry, Products,
                             Scheduler, Stacks, reduce_options)

_STYLES = {"built": "green", "calibrated": "cyan", "ingested": "blue", "failed": "bold red",
           "rejected": "bold red", "warning": "yellow", "incomplete": "yellow", "waiting": "dim", "note": "dim"}


def _renderer(as_json: bool):
    """One line per event: JSON for scripts, rich on a terminal, plain text in a pipe."""
    if as_json:
        return lambda event: typer.echo(json.dumps(event.as_dict()))
    if not sys.stdout.isatty():
        return lambda event: typer.echo(
            f"{event.event} {event.subject}" + (f": {event.detail}" if event.detail else ""))
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)

    def show(event) -> None:
        style = _STYLES.get(event.event, "bold")
        subject = Path(event.subject).name if event.event in ("built", "ingested", "failed") else event.subject
        console.print(f"[{style}]{event.event:>10}[/] {escape(subject)}"
                      + (f" [dim]{escape(event.detail)}[/]" if event.detail else ""))

    return show


@app.command()
@_fails_cleanly
def watch(
    directories: List[Path] = typer.Argument(..., help="Directories the camera writes into (watched recursively)."),
    settle: float = typer.Option(
        2.0, "--settle", help="Seconds a file's size must stay the same (and be a whole FITS file) before it is read."
    ),
    jobs: Jobs = None,
    scheduler: Scheduler = None,
    overscan: Overscan = False,
    keep_intermediate: KeepIntermediate = False,
    memory: Memory = "1G",
    cosmics: Cosmics = True,
    stacks: Stacks = True,
    photometry: Photometry = True,
    products: Products = None,
    index_dir: IndexDir = None,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per line for scripts."),
) -> None:
    """Reduce a night while it is observed: ingest each FITS file once it is complete, make what it allows.

    Files already in the directories are taken first, then each new or changed file once its
    size has been steady for --settle seconds and it is a whole FITS file (never half-read).
    Each cycle does what `nota ingest FILES && nota reduce` does, with the same options: a
    science frame is reduced as soon as its masters exist, a master is rebuilt when a late
    member arrives (and the frames reduced with it), the night's photometric solution is
    refitted as standards come in. Files that arrive during a cycle make the next one.
    Prints a line per file ingested and per product made (--json: one JSON object per line,
    with event, subject and detail). Ctrl-C or SIGTERM stops it between
    tasks with exit status 0: no half-written product is left, and the next start (its
    state is the archive) makes what was not made. `nota serve` beside it shows the new
    frames and products on reload.

    Example:

        nota watch /data/alfosc/2008-04-12 --jobs 2
    """
    from nota.pipeline.watch import WatchOptions, stop_on_signals, watch_night

    options = WatchOptions(
        directories=tuple(str(d) for d in directories),
        reduce=reduce_options(overscan=overscan, keep_intermediate=keep_intermediate, memory=memory,
                              cosmics=cosmics, stacks=stacks, photometry=photometry, products=products,
                              index_dir=index_dir),
        settle=settle, jobs=jobs, scheduler=scheduler,
    )
    with writable() as archive, stop_on_signals() as stop:
        watch_night(archive, options, stop=stop, on_event=_renderer(as_json))
