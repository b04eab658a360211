"""The ``nota`` command: a thin layer over the library.

Each command parses its arguments, makes one library call and renders the result. Library
code raises ``NotaError``; here it becomes ``Error: ...`` on stderr and exit status 1.
"""

from __future__ import annotations

import functools
import logging
import sys
from contextlib import nullcontext
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


# selections -----------------------------------------------------------------------------------

def _sub_app(name: str, help: str, example: str) -> typer.Typer:
    """A command group (nota NAME ...) with its help and an example."""
    group = typer.Typer(help=f"{help}\n\nExample:\n\n    {example}", no_args_is_help=True,
                        rich_markup_mode=None)
    app.add_typer(group, name=name)
    return group


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

    db = _open_db()
    sync_shipped_selections(db)
    added = add_selection(db, state.db, name, condition, doc)
    typer.echo(f"selection {added.name} stored")


@selection_app.command("list")
@_fails_cleanly
def selection_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the selections: shipped by the instrument profile, and yours.

    Example:

        nota selection list --json
    """
    from nota.archive.selections import list_selections, sync_shipped_selections

    sync_shipped_selections(_open_db())
    found = list_selections(state.db)
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
        sync_shipped_selections(_open_db())
        condition = get_selection(state.db, name).condition
    else:
        condition = where
    columns, rows = run_select(state.db, condition, _params(param), ", ".join(FRAME_COLUMNS))
    _render(columns, rows, as_json, as_csv)


# quality control, groups, overrides ---------------------------------------------------------


@app.command()
@_fails_cleanly
def qc(
    jobs: Optional[int] = typer.Option(None, help="Worker processes (default: the cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Measure every frame once (mean, median, robust std, saturation, flat patterns) and flag.

    Flags carry their figure and the profile's threshold: odd_shape, too_faint,
    too_bright, blocked_beam, pattern_mismatch, star, bias_level, bias_noise, saturated.

    Example:

        nota qc && nota query "SELECT f.filename, g.flag, g.message FROM flags g JOIN frames f USING (file_id)"
    """
    from nota.archive.qc import run_qc

    db = _open_db()
    with progress_bar("measuring") as update:
        report = run_qc(db, jobs=jobs, on_frame=update)
    if as_json:
        print_json({"activity_id": report.activity_id, "measured": report.measured,
                    "failed": report.failed, "flags": dict(report.flags)})
        return
    for failure in report.failed:
        typer.echo(f"failed {failure}", err=True)
    flags = ", ".join(f"{n} {k}" for k, n in sorted(report.flags.items())) or "none"
    typer.echo(f"{report.measured} frame(s) measured; flags: {flags}")


@app.command()
@_fails_cleanly
def groups(
    night: Optional[str] = typer.Option(None, help="Only print this night's groups."),
    as_json: bool = typer.Option(False, "--json", help="Print groups with their members as JSON."),
) -> None:
    """Build the calibration groups and associate every frame to its masters.

    Master-bias groups per night and binning; master-flat groups per night, filter and
    flat kind (sky preferred to dome). Members say included or not, and why.

    Example:

        nota groups --night 2008-04-12 --json
    """
    from nota.archive.groups import build_groups, groups_as_dicts

    report = build_groups(_open_db())
    for line in report.unusable:
        typer.echo(f"warning: group {line}", err=True)
    for line in report.uncalibratable:
        typer.echo(f"warning: {line}", err=True)
    found = groups_as_dicts(state.db, night)
    if as_json:
        print_json(found)
        return
    rows = [
        (g["key"], "yes" if g["usable"] else "no", "yes" if g["preferred"] else "",
         f"{g['n_included']}/{g['n_members']}", g["note"])
        for g in found
    ]
    print_table(["group", "usable", "used", "frames", "note"], rows)


@app.command()
@_fails_cleanly
def exclude(
    frame: str = typer.Argument(..., help="File name, path or file_id."),
    reason: str = typer.Option(..., "--reason", help="Why, in words: kept with the frame."),
) -> None:
    """Keep a frame out of every calibration group, whatever QC says.

    Example:

        nota exclude ALrd120045.fits --reason "low counts, the lecture drops it"
    """
    from nota.archive.groups import set_override

    found = set_override(_open_db(), frame, "exclude", reason)
    typer.echo(f"{found['filename']} excluded; run `nota groups` to rebuild the groups")


@app.command()
@_fails_cleanly
def include(
    frame: str = typer.Argument(..., help="File name, path or file_id."),
    reason: str = typer.Option("included by the user", "--reason", help="Why, in words."),
    clear: bool = typer.Option(False, "--clear", help="Forget the override instead: QC decides again."),
) -> None:
    """Put a frame back into its calibration group, over its QC flags.

    Example:

        nota include ALrd120045.fits --reason "checked in DS9, fine"
    """
    from nota.archive.groups import clear_override, set_override

    db = _open_db()
    found = clear_override(db, frame) if clear else set_override(db, frame, "include", reason)
    typer.echo(f"{found['filename']} {'override cleared' if clear else 'included'};"
               " run `nota groups` to rebuild the groups")


@app.command()
@_fails_cleanly
def pin(
    group: str = typer.Argument(..., help="Group key, as `nota groups` prints it."),
    frames: List[str] = typer.Argument(None, help="The frames the group must hold; none unpins."),
) -> None:
    """Pin a calibration group to an explicit list of frames (or unpin it).

    Example:

        nota pin master_flat/2008-04-12/NII_658/sky_flat/4x4 ALrd120046.fits ALrd120047.fits ALrd120048.fits
    """
    from nota.archive.groups import pin_group

    found = pin_group(_open_db(), group, frames or [])
    typer.echo(f"{group} pinned to {len(found)} frame(s)" if found else f"{group} unpinned")


@app.command()
@_fails_cleanly
def explain(
    frame: str = typer.Argument(..., help="File name, path or file_id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Which calibrations a frame will get, and why not the others.

    Example:

        nota explain ALrd120103.fits
    """
    from nota.archive.groups import explain as explain_frame

    answer = explain_frame(state.db, frame)
    if as_json:
        print_json(answer)
        return
    typer.echo(f"{answer['frame']}: {answer['kind']} ({answer['kind_rule']}), filter {answer['filter']},"
               f" night {answer['night']}")
    for f in answer["flags"]:
        typer.echo(f"  flag {f['flag']}{' (excludes)' if f['excludes'] else ''}: {f['message']}")
    if answer["override"]:
        typer.echo(f"  override: {answer['override']['action']} ({answer['override']['reason']})")
    for m in answer["member_of"]:
        typer.echo(f"  member of {m['group']}: {'included' if m['included'] else 'excluded'} ({m['reason']})")
    for c in answer["calibrations"]:
        typer.echo(f"  {c['purpose']}: {c['group'] or 'NONE'} ({c['rule']})")
        for other in c["not_chosen"]:
            typer.echo(f"    not {other['group']}: {other['why_not']}")
    if answer["note"]:
        typer.echo(f"  {answer['note']}")


# reduction and products ------------------------------------------------------------------------


def _memory(text: str) -> int:
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    value = text.strip().lower().rstrip("b")
    try:
        if value and value[-1] in units:
            return int(float(value[:-1]) * units[value[-1]])
        return int(value)
    except ValueError:
        raise NotaError(f"--memory {text!r}: give a size such as 800M or 2G") from None


@app.command()
@_fails_cleanly
def reduce(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be built, build nothing."),
    jobs: Optional[int] = typer.Option(None, help="Worker processes (default: the cores)."),
    scheduler: Optional[str] = typer.Option(
        None, help="Run on Dask: 'local' starts a local cluster, or tcp://HOST:PORT."
    ),
    overscan: bool = typer.Option(False, "--overscan", help="Subtract the overscan (BIASSEC) row by row first."),
    keep_intermediate: bool = typer.Option(
        False, "--keep-intermediate", help="Also write the lecture's t_ and zt_ files."
    ),
    memory: str = typer.Option("1G", help="Memory budget for combining masters."),
    cosmics: bool = typer.Option(
        True, "--cosmics/--no-cosmics", help="Clean cosmic rays from each reduced frame (L.A.Cosmic)."
    ),
    stacks: bool = typer.Option(True, "--stacks/--no-stacks", help="Align and stack each series of exposures."),
    photometry: bool = typer.Option(
        True, "--photometry/--no-photometry",
        help="Calibrate each night on its standards and write PHOTZP into science frames and stacks.",
    ),
    products: Optional[Path] = typer.Option(
        None, "--products", envvar="NOTA_PRODUCTS", help="Products root (default: products/ beside the archive)."
    ),
    index_dir: Optional[Path] = typer.Option(
        None, "--index-dir", envvar="NOTA_INDEX_DIR",
        help="astrometry.net index files (default: astrometry/ beside the archive, if any); frames are solved when given.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan or the report as JSON."),
) -> None:
    """Make master biases, master flats, flat-fielded frames and stacks: only what is missing or stale.

    Run `nota qc` and `nota groups` first. Each reduced frame is cleaned of cosmic rays
    (L.A.Cosmic), solved (when astrometry.net index files are at hand) and, after the
    night's standards have given its photometric calibration, stamped with PHOTZP; series
    of three or more exposures are aligned and stacked. A product is stale when an input's
    content, a parameter, a group's membership or the step's code changed. Exit status 1 when any
    product failed (each says why), 0 otherwise.

    Example:

        nota reduce --dry-run && nota reduce --jobs 2
    """
    from nota.archive.reduction import (
        ReduceOptions,
        default_index_dir,
        default_products_root,
        plan_reduction,
        run_plan,
    )

    options = ReduceOptions(
        products_root=str(products or default_products_root(state.db)),
        overscan=overscan,
        keep_intermediate=keep_intermediate,
        memory_bytes=_memory(memory),
        index_dir=str(index_dir) if index_dir else default_index_dir(state.db),
        cosmics=cosmics,
        stacks=stacks,
        photometry=photometry,
    )
    db = _open_db()
    plan = plan_reduction(db, options)
    if dry_run:
        rows = [{"kind": t.kind, "output": t.output, "key": t.key, "inputs": len(t.inputs),
                 "status": "impossible: " + t.failure if t.failure else "to build"} for t in plan.tasks]
        if as_json:
            print_json({"to_build": rows, "up_to_date": len(plan.up_to_date)})
            return
        print_table(["kind", "output", "inputs", "status"],
                    [(r["kind"], r["output"], r["inputs"], r["status"]) for r in rows])
        typer.echo(f"{len(plan.to_build)} to build, {len(plan.impossible)} impossible,"
                   f" {len(plan.up_to_date)} up to date")
        return
    nothing = not plan.tasks  # a run still calibrates what the standards' products call for
    with nullcontext(None) if nothing else progress_bar("reducing") as update:
        report = run_plan(db, plan, options, jobs=1 if nothing else jobs,
                          scheduler=None if nothing else scheduler, on_task=update)
    if as_json:
        print_json({"built": report.built, "failed": [{"output": o, "error": e} for o, e in report.failed],
                    "up_to_date": report.up_to_date, "calibrations": report.calibrations})
    elif nothing:
        typer.echo(f"nothing to do: {report.up_to_date} product(s) up to date"
                   + (f"; {len(report.calibrations)} photometric calibration(s) made" if report.calibrations else ""))
    else:
        for output, error in report.failed:
            typer.echo(f"failed {output}: {error}", err=True)
        kinds = {}
        for b in report.built:
            kinds[b["kind"]] = kinds.get(b["kind"], 0) + 1
        made = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "nothing"
        typer.echo(f"built {made}; {report.up_to_date} up to date; {len(report.failed)} failed;"
                   f" {len(report.calibrations)} night/filter photometric calibration(s) made")
        typer.echo(f"products in {options.products_root}")
    if report.failed:
        raise typer.Exit(EXIT_ERROR)


astrometry_app = _sub_app("astrometry", "astrometry.net index files for offline solving.",
                          "nota astrometry build-index catalogue.csv")


@astrometry_app.command("build-index")
@_fails_cleanly
def astrometry_build_index(
    catalogues: List[Path] = typer.Argument(..., help="Reference catalogues: CSV or FITS with ra, dec and a magnitude."),
    index_dir: Optional[Path] = typer.Option(
        None, "--index-dir", envvar="NOTA_INDEX_DIR", help="Where to write them (default: astrometry/ beside the archive)."
    ),
    mag_column: str = typer.Option("R", help="The magnitude column that orders the stars."),
) -> None:
    """Build astrometry.net index files from reference catalogues, for `nota reduce` to solve with.

    For real data, put the standard 4100/5200-series index files in the index directory instead.

    Example:

        nota astrometry build-index demo/N1/truth/catalogue_*.csv
    """
    from nota.reduce.astrometry import build_index

    out = index_dir or (Path(state.db).absolute().parent / "astrometry")
    made = []
    for n, catalogue in enumerate(catalogues):
        made += build_index(catalogue, out, index_id=9000 + 10 * n, mag_column=mag_column)
    typer.echo(f"{len(made)} index file(s) from {len(catalogues)} catalogue(s) in {out}")


@app.command()
@_fails_cleanly
def calibration(
    night: Optional[str] = typer.Option(None, help="Only this night (the date it began)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Each night's photometric solution per filter: zero point, extinction, colour term (AB).

    m_catalogue - m_instrumental = ZP - k X + c C, with m_instrumental = -2.5 log10(ADU/s)
    on the reduced frames, X the mid-exposure airmass, C the catalogue colour in the
    profile's colour index for the filter (ZP is for C = 0); made by `nota reduce` from the
    standard stars. The method says what was fitted and why anything was not.

    Example:

        nota calibration --night 2008-04-12 --json
    """
    from nota.archive.calibration import list_calibrations

    found = list_calibrations(state.db, night)
    if as_json:
        print_json(found)
        return
    print_table(
        ["night", "filter", "system", "ZP", "k (mag/airmass)", "colour term", "rms", "stars", "method"],
        [(c["night"], c["filter"], c["magnitude_system"], f"{c['zp']:.3f} +- {c['zp_err']:.3f}",
          f"{c['k']:.3f} +- {c['k_err']:.3f}",
          "" if c["colour_term"] is None else f"{c['colour_term']:.3f} +- {c['colour_term_err']:.3f} ({c['colour_index']})",
          f"{c['rms']:.3f}", f"{c['n_used']}", c["method"]) for c in found],
        title="Photometric calibration (AB magnitudes)",
    )


@app.command()
@_fails_cleanly
def photometry(
    frame: str = typer.Argument(
        ..., help="A raw file name, its product (fzt_ALrd120103.fits) or a stack (stack_GC4496A_R_3x300s_R.fits)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the source catalogue as JSON."),
) -> None:
    """Measure a reduced frame's (or a stack's) sources into the `sources` table, in calibrated AB magnitudes.

    Positions in pixels and (when the frame was solved) RA/Dec; calibrated with the night's
    zero point and extinction for the frame's filter and airmass; narrow bands also get the
    flux in erg/s/cm2.

    Example:

        nota photometry ALrd120103.fits --json
    """
    from nota.archive.sources import list_sources, measure_frame

    report = measure_frame(_open_db(), frame)
    found = list_sources(state.db, report.filename)
    if as_json:
        print_json(found)
        return
    typer.echo(f"{report.filename}: {report.sources} sources"
               + ("" if report.calibrated else " (no photometric calibration for its night and filter)")
               + ("" if report.solved else " (no WCS: not solved)"))
    print_table(["x", "y", "ra", "dec", "mag (AB)", "err"],
                [(f"{r['x']:.1f}", f"{r['y']:.1f}", "" if r["ra"] is None else f"{r['ra']:.6f}",
                  "" if r["dec"] is None else f"{r['dec']:.6f}", "" if r["mag"] is None else f"{r['mag']:.3f}",
                  "" if r["mag_err"] is None else f"{r['mag_err']:.3f}") for r in found[:20]])


@app.command("products")
@_fails_cleanly
def products_command(as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """List the archive's current products with their inputs.

    Example:

        nota products --json
    """
    from nota.archive.products import list_products

    found = list_products(state.db)
    if as_json:
        print_json(found)
        return
    print_table(["id", "kind", "night", "filter", "path", "inputs"],
                [(p["id"], p["kind"], p["night"], p["filter"] or "", p["path"], len(p["inputs"])) for p in found])


@app.command()
@_fails_cleanly
def lineage(
    product: str = typer.Argument(..., help="Product id, file name, path or NOTAKEY."),
    as_json: bool = typer.Option(False, "--json", help="Print the tree as JSON."),
    prov: bool = typer.Option(False, "--prov", help="Print W3C PROV-JSON."),
) -> None:
    """Print the tree a product was made from, down to the raw frames.

    Example:

        nota lineage fzt_ALrd120103.fits
    """
    from nota.archive.products import lineage as product_lineage, prov_document

    if prov:
        print_json(prov_document(state.db, product))
        return
    tree = product_lineage(state.db, product)
    if as_json:
        print_json(tree)
        return

    def show(node: dict, depth: int) -> None:
        pad = "  " * depth
        if node.get("kind") == "raw":
            mark = "" if node["included"] else f"  [left out: {node['reason']}]"
            typer.echo(f"{pad}{node['role']}: {node['filename']} ({node['content_hash'][:12]}){mark}")
            return
        role = f"{node['role']}: " if "role" in node else ""
        typer.echo(f"{pad}{role}{node['kind']} {Path(node['path']).name} (#{node['id']})")
        for child in node["inputs"]:
            show(child, depth + 1)

    show(tree, 0)


@app.command()
@_fails_cleanly
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8001, help="Port to listen on."),
    time_limit: int = typer.Option(3000, help="SQL time limit in milliseconds."),
) -> None:
    """Browse the archive in Datasette: frames, groups, products and their lineage, read-only.

    Example:

        nota serve --port 8001
    """
    from nota.archive.serve import serve as run_server

    run_server(state.db, host, port, time_limit,
               on_ready=lambda url: typer.echo(f"Browse the archive at {url}  (Ctrl-C to stop)"))


if __name__ == "__main__":  # pragma: no cover
    app()
