"""nota simulate, ingest, query, frames, selection, select: the archive's commands."""

from __future__ import annotations

from pathlib import Path
from typing import List, Literal, Optional

import typer

from nota.cli import EXIT_REJECTED, _fails_cleanly, _params, _render, _sub_app, app, readable, writable
from nota.errors import NotaError
from nota.output import print_json, print_table, progress_bar


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
    camera: Literal["alfosc", "generic"] = typer.Option(
        "alfosc", "--camera",
        help="alfosc: NOT/ALFOSC in 2008; generic: a cooled CMOS camera at a small "
             "observatory (N.I.N.A./MaxIm DL headers and folders, darks).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the nights written as JSON."),
) -> None:
    """Write a simulated night with a truth directory beside it: NOT/ALFOSC (2008-04-12),
    or with --camera generic a small observatory's cooled CMOS camera (2026-11-30).

    Example:

        nota simulate demo/ --nights 2 --small
        nota simulate cmos/ --camera generic --small
    """
    from nota.simulate import simulate_run

    with progress_bar("simulating") as update:
        written = simulate_run(
            outdir, nights=nights, seed=seed, small=small, mef=mef, jobs=jobs, on_frame=update,
            camera=camera,
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
    profile: Optional[Path] = typer.Option(
        None, "--profile", help="An instrument profile (TOML) that reads every frame of this run."
    ),
    no_hash: bool = typer.Option(
        False, "--no-hash", help="Headers only, no content hash: quicker on a slow disk, but renamed"
        " files and copies are then not recognised."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Index every header card of every FITS file into the archive.

    Unchanged files are skipped, changed ones re-indexed, renamed ones recognised by
    their content. Bad files are reported one line each and the rest go on; the exit
    status is 3 when any file was rejected.

    Frames already indexed are read again from their stored cards when the profile that
    reads them has changed ("renormalised" in the report).

    Example:

        nota ingest N1/
        nota ingest night/ --profile ~/observatory/mycamera.toml
    """
    from nota.archive.query import frame_summary
    from nota.pipeline.ingest import ingest as run_ingest

    with writable() as archive, progress_bar("ingesting") as update:
        report = run_ingest(archive, paths, profile_file=profile, hash_content=not no_hash, on_file=update)
    with readable() as archive:
        summary = frame_summary(archive, report.roots)
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
                ["night", "kind", "filter", "frames", "kept out of imaging because"],
                [(r["night"], r["kind"], r["filter"], r["frames"], r["why"]) for r in summary],
                title="Frames by night, kind and filter",
            )
        if report.rejected:
            typer.echo(f"{report.rejected} file(s) rejected; see `nota query "
                       "\"SELECT * FROM problems\"`", err=True)
    if report.rejected:
        raise typer.Exit(EXIT_REJECTED)


# query and frames -----------------------------------------------------------------------------


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

    with readable(time_limit) as archive:
        columns, rows = run_query(archive, sql, _params(param))
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

    with readable() as archive:
        columns, rows = list_frames(archive, night=night, kind=kind, filter=filter)
    _render(columns, rows, as_json, as_csv)


# selections -----------------------------------------------------------------------------------

selection_app = _sub_app("selection", "Named SQL selections of frames.", "nota selection list")


@selection_app.command("add")
@_fails_cleanly
def selection_add(
    name: str = typer.Argument(..., help="Name, lower-case (long_r_exposures)."),
    condition: str = typer.Argument(..., help="SQL condition over the frames view."),
    doc: str = typer.Option("", "--doc", help="What the selection is for, in a sentence."),
) -> None:
    """Store a selection: a named SQL condition over the frames view.

    header('KEYWORD') gives any raw header card; :night and :filter are parameters.

    Example:

        nota selection add nb78 "header('FBFLTID') = 78 AND exptime > 20" --doc "NB#78 frames"
    """
    from nota.archive.selections import add_selection, sync_shipped_selections

    with writable() as archive:
        sync_shipped_selections(archive)
        added = add_selection(archive, name, condition, doc)
    typer.echo(f"selection {added.name} stored")


@selection_app.command("list")
@_fails_cleanly
def selection_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the selections: shipped by the instrument profile, and yours.

    Example:

        nota selection list --json
    """
    from nota.archive.selections import list_selections, sync_shipped_selections

    with writable() as archive:
        sync_shipped_selections(archive)
        found = list_selections(archive)
    rows = [(s.name, s.source, ", ".join(s.parameters), s.condition, s.doc) for s in found]
    columns = ["name", "source", "parameters", "condition", "doc"]
    _render(columns, rows, as_json, False)


@app.command()
@_fails_cleanly
def select(
    name: Optional[str] = typer.Argument(None, help="A stored selection's name."),
    where: Optional[str] = typer.Option(None, "--where", help="An ad-hoc SQL condition instead."),
    param: List[str] = typer.Option([], "--param", "-p", help="A parameter as name=value (night=2008-04-12)."),
    as_json: bool = typer.Option(False, "--json", help="Print an array of row objects."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV."),
) -> None:
    """Print the frames a selection (or a --where condition) selects.

    Example:

        nota select sky_flats -p night=2008-04-12 -p filter=R
        nota select --where "exptime > 600"
    """
    from nota.archive.query import FRAME_COLUMNS
    from nota.archive.selections import get_selection, select as run_select, sync_shipped_selections

    if (name is None) == (where is None):
        raise NotaError("give a selection name or --where CONDITION (one of them)")
    if name is not None:
        with writable() as archive:
            sync_shipped_selections(archive)
            condition = get_selection(archive, name).condition
    else:
        condition = where
    with readable() as archive:
        columns, rows = run_select(archive, condition, _params(param), ", ".join(FRAME_COLUMNS))
    _render(columns, rows, as_json, as_csv)


