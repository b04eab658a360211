"""nota reduce, astrometry, calibration, photometry, products, lineage, serve: the reduction's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from nota.cli import EXIT_ERROR, _fails_cleanly, _sub_app, app, readable, state, writable
from nota.errors import NotaError
from nota.output import print_json, print_table, progress_bar


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


# The options `nota reduce` and `nota watch` share: declared once, built into ReduceOptions once.
Jobs = Annotated[Optional[int], typer.Option(help="Worker processes (default: the cores).")]
Scheduler = Annotated[Optional[str], typer.Option(
    help="Run on Dask: 'local' starts a local cluster, or tcp://HOST:PORT.")]
Overscan = Annotated[bool, typer.Option("--overscan", help="Subtract the overscan (BIASSEC) row by row first.")]
KeepIntermediate = Annotated[bool, typer.Option("--keep-intermediate", help="Also write the lecture's t_ and zt_ files.")]
Memory = Annotated[str, typer.Option(help="Memory budget for combining masters.")]
Cosmics = Annotated[bool, typer.Option(
    "--cosmics/--no-cosmics", help="Clean cosmic rays from each reduced frame (L.A.Cosmic).")]
Stacks = Annotated[bool, typer.Option("--stacks/--no-stacks", help="Align and stack each series of exposures.")]
Photometry = Annotated[bool, typer.Option(
    "--photometry/--no-photometry",
    help="Calibrate each night on its standards and write PHOTZP into science frames and stacks.")]
Products = Annotated[Optional[Path], typer.Option(
    "--products", envvar="NOTA_PRODUCTS", help="Products root (default: products/ beside the archive).")]
IndexDir = Annotated[Optional[Path], typer.Option(
    "--index-dir", envvar="NOTA_INDEX_DIR",
    help="astrometry.net index files (default: astrometry/ beside the archive, if any); frames are solved when given.")]


def reduce_options(*, overscan: bool, keep_intermediate: bool, memory: str, cosmics: bool, stacks: bool,
                   photometry: bool, products: Path | None, index_dir: Path | None):
    """The ReduceOptions the shared options ask for, with the archive's defaults."""
    from nota.pipeline.plan import options_for

    return options_for(state.db, products=products, index_dir=index_dir, overscan=overscan,
                       keep_intermediate=keep_intermediate, memory_bytes=_memory(memory), cosmics=cosmics,
                       stacks=stacks, photometry=photometry)


@app.command()
@_fails_cleanly
def reduce(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be built, build nothing."),
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
    as_json: bool = typer.Option(False, "--json", help="Print the plan or the report as JSON."),
) -> None:
    """Make master biases, master flats, flat-fielded frames and stacks: only what is missing or stale.

    Frames not measured yet are measured first (`nota qc`) and the calibration groups rebuilt
    when frames, flags, overrides or selections changed (`nota groups`), so `nota ingest N1/ &&
    nota reduce` is the whole path. Each reduced frame is cleaned of cosmic rays
    (L.A.Cosmic), solved (when astrometry.net index files are at hand) and, after the
    night's standards have given its photometric calibration, stamped with PHOTZP; series
    of three or more exposures are aligned and stacked. A product is stale when an input's
    content, a parameter, a group's membership or the step's code changed. Exit status 1 when any
    product failed (each says why), 0 otherwise. `nota watch` does the same while a night is
    being observed.

    Example:

        nota reduce --dry-run && nota reduce --jobs 2
    """
    options = reduce_options(overscan=overscan, keep_intermediate=keep_intermediate, memory=memory,
                             cosmics=cosmics, stacks=stacks, photometry=photometry, products=products,
                             index_dir=index_dir)
    with writable() as archive:
        _reduce(archive, options, dry_run, jobs, scheduler, as_json)


def _reduce(archive, options, dry_run: bool, jobs: int | None, scheduler: str | None, as_json: bool) -> None:
    from nota.pipeline.reduction import reduce_archive

    if dry_run:
        _dry_run(archive, options, as_json)
        return
    with progress_bar("reducing") as update:  # measuring first when needed, then the products
        done = reduce_archive(archive, options, jobs=jobs, scheduler=scheduler, on_frame=update, on_task=update)
    for line in done.refreshed.messages:
        typer.echo(line, err=True)
    report, nothing = done.report, not done.plan.tasks
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


def _dry_run(archive, options, as_json: bool) -> None:
    """What `nota reduce` would build, and what it would measure or regroup first."""
    from nota.pipeline.plan import plan_reduction
    from nota.pipeline.refresh import what_is_out_of_date

    for line in what_is_out_of_date(archive):
        typer.echo(f"not yet done: {line}; `nota reduce` does it first, so this plan is before it", err=True)
    plan = plan_reduction(archive, options)
    rows = [{"kind": t.step, "output": t.output, "key": t.key, "inputs": len(t.inputs),
             "status": "impossible: " + t.failure if t.failure else "to build"} for t in plan.tasks]
    if as_json:
        print_json({"to_build": rows, "up_to_date": len(plan.up_to_date)})
        return
    print_table(["kind", "output", "inputs", "status"], [(r["kind"], r["output"], r["inputs"], r["status"]) for r in rows])
    typer.echo(f"{len(plan.to_build)} to build, {len(plan.impossible)} impossible, {len(plan.up_to_date)} up to date")


astrometry_app = _sub_app("astrometry", "astrometry.net index files for offline solving.",
                          "nota astrometry build-index catalogue.csv")


@astrometry_app.command("build-index")
@_fails_cleanly
def astrometry_build_index(
    catalogues: List[Path] = typer.Argument(..., help="Reference catalogues: CSV or FITS with ra, dec and a magnitude."),
    index_dir: Optional[Path] = typer.Option(
        None, "--index-dir", envvar="NOTA_INDEX_DIR", help="Where to write them (default: astrometry/ beside the archive)."
    ),
    mag_column: Optional[str] = typer.Option(
        None, help="The magnitude column that orders the stars (default: the catalogue's only magnitude, R among several)."
    ),
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
    from nota.archive.calibrations import list_calibrations

    with readable() as archive:
        found = list_calibrations(archive, night)
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
    from nota.archive.sources import list_sources
    from nota.pipeline.sources import measure_frame

    with writable() as archive:
        report = measure_frame(archive, frame)
        found = list_sources(archive, report.product_id)
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

    with readable() as archive:
        found = list_products(archive)
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

    with readable() as archive:
        if prov:
            print_json(prov_document(archive, product))
            return
        tree = product_lineage(archive, product)
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


