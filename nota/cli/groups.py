"""nota qc, groups, exclude, include, pin, explain: quality control and calibration groups."""

from __future__ import annotations

from typing import List, Optional

import typer

from nota.cli import _fails_cleanly, app, readable, writable
from nota.output import print_json, print_table, progress_bar


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
    from nota.pipeline.qc import run_qc

    with writable() as archive, progress_bar("measuring") as update:
        report = run_qc(archive, jobs=jobs, on_frame=update)
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
    from nota.archive.groups import groups_as_dicts
    from nota.pipeline.groups import build_groups

    with writable() as archive:
        report = build_groups(archive)
    for line in report.unusable:
        typer.echo(f"warning: group {line}", err=True)
    for line in report.uncalibratable:
        typer.echo(f"warning: {line}", err=True)
    with readable() as archive:
        found = groups_as_dicts(archive, night)
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

    with writable() as archive:
        found = set_override(archive, frame, "exclude", reason)
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

    with writable() as archive:
        found = clear_override(archive, frame) if clear else set_override(archive, frame, "include", reason)
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

    with writable() as archive:
        found = pin_group(archive, group, frames or [])
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
    from nota.archive.association import explain as explain_frame

    with readable() as archive:
        answer = explain_frame(archive, frame)
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
        if m["master_bias_rule"]:  # a flat group: the master bias its flats are corrected with
            typer.echo(f"    its master_bias: {m['master_bias'] or 'NONE'} ({m['master_bias_rule']})")
    for c in answer["calibrations"]:
        typer.echo(f"  {c['purpose']}: {c['group'] or 'NONE'} ({c['rule']})")
        for other in c["not_chosen"]:
            typer.echo(f"    not {other['group']}: {other['why_not']}")
    if answer["note"]:
        typer.echo(f"  {answer['note']}")


