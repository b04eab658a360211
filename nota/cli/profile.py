"""nota profile list, show, check, draft, sections: writing and checking a camera's profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from nota.cli import _fails_cleanly, _sub_app, state, writable
from nota.output import print_json, print_table

profile_app = _sub_app(
    "profile",
    "Instrument profiles: list them, show one, check one on a night, draft one, see its sections.",
    "nota profile draft night/*.fits --out mycam.toml && nota profile check mycam.toml night/",
)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@profile_app.command("list")
@_fails_cleanly
def list_(as_json: bool = typer.Option(False, "--json", help="Print the profiles as JSON.")) -> None:
    """Every profile of the search order (NOTA_PROFILES, the user's config, nota's own).

    A profile found earlier shadows a later one of the same key; a malformed file is
    listed with its first problem.

    Example:

        NOTA_PROFILES=~/cameras nota profile list --json
    """
    from nota.pipeline.profile_tools import list_profiles

    entries = list_profiles()
    if as_json:
        print_json([vars(e) for e in entries])
        return
    rows = [(e.key, e.name or "", e.error and f"error: {e.error}" or e.matches,
             f"by {e.shadowed_by}" if e.shadowed_by else "", e.source) for e in entries]
    print_table(["key", "instrument", "matches", "shadowed", "source"], rows)


@profile_app.command("show")
@_fails_cleanly
def show(
    name: str = typer.Argument(..., help="A profile key (alfosc, generic, yours) or a profile file."),
    as_json: bool = typer.Option(False, "--json", help="Print the profile's main facts as JSON."),
) -> None:
    """A profile's file and its text (with --json, its parsed facts).

    Example:

        nota profile show generic
    """
    from nota.pipeline.profile_tools import profile_facts, show_profile

    profile, text = show_profile(name)
    if as_json:
        print_json(profile_facts(profile))
        return
    typer.echo(f"# {profile.source}")
    typer.echo(text, nl=not text.endswith("\n"))


def _print_check(report) -> None:
    columns = ["file", "kind", "rule", "filter", "binning", "exptime", "gain", "read_noise", "ccd_temp",
               "trimsec", "biassec"]
    print_table(columns, [[_fmt(f[c]) for c in columns] for f in report.frames])
    kinds = ", ".join(f"{n} {k}" for k, n in report.kinds.items()) or "none"
    typer.echo(f"{len(report.frames)} frame(s) read by {report.profile} ({report.source}): {kinds}")
    typer.echo(f"no rule matched: {len(report.unmatched)} frame(s)")
    for name in report.unmatched:
        typer.echo(f"  {name}")
    for bad in report.unreadable:
        typer.echo(f"not a frame: {bad['file']}: {bad['problem']}")
    if report.missing:
        typer.echo("keywords the profile names that the headers lack:")
        print_table(["keyword", "named in", "frames lacking"],
                    [(m["keyword"], ", ".join(m["named_in"]), f"{m['frames_lacking']}/{m['frames']}")
                     for m in report.missing])
    for fact in report.unread:
        typer.echo(f"{fact['fact']}: none of {', '.join(fact['keywords'])} in {fact['frames_lacking']} frame(s)")


@profile_app.command("check")
@_fails_cleanly
def check(
    profile: str = typer.Argument(..., help="A profile key or a profile file."),
    directory: Path = typer.Argument(..., help="A directory of FITS frames (searched recursively)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """How every frame under DIR would be read by PROFILE, writing nothing.

    Per frame: its kind and the rule that decided it, filter, binning, exposure, gain,
    read noise, CCD temperature and sections; then the frames no rule matched and the
    keywords the profile names that the headers lack. Exit status 1 on a malformed profile.

    Example:

        nota profile check generic demo/N1/ --json
    """
    from nota.pipeline.profile_tools import check_directory

    report = check_directory(profile, directory)
    if as_json:
        print_json(report.as_dict())
        return
    _print_check(report)


def _print_draft(draft) -> None:
    typer.echo(f"wrote {draft.path}: a starting profile from {draft.frames} frame(s)")
    print_table(["fact", "keyword", "frames", "values seen"],
                [(c["fact"], c["keyword"], c["frames"], ", ".join(c["values"])) for c in draft.conventions])
    print_table(["frame type keyword", "value", "frames", "suggests"],
                [(t["keyword"], t["value"], t["frames"], t["suggests"] or "nothing") for t in draft.frame_types])
    typer.echo("kinds: " + ", ".join(f"{n} {k}" for k, n in draft.kinds.items()))
    shape = "x".join(map(str, draft.shape)) if draft.shape else "unknown"
    typer.echo(f"detector: {shape} unbinned; binnings: {', '.join(f'{b} ({n})' for b, n in draft.binnings.items())}")
    typer.echo(f"match: INSTRUME = {', '.join(draft.instrument)}" if draft.instrument
               else "no INSTRUME: the draft is a fallback profile")
    for note in draft.notes:
        typer.echo(f"note: {note}")


@profile_app.command("draft")
@_fails_cleanly
def draft(
    frames: List[Path] = typer.Argument(..., help="FITS frames (or directories of them) of the camera."),
    out: Path = typer.Option(..., "--out", help="The profile file to write (never overwritten)."),
    as_json: bool = typer.Option(False, "--json", help="Print what was found as JSON."),
) -> None:
    """A starting profile from real headers, as TOML with a comment on every key.

    Says which of the common keyword conventions the headers follow (MaxIm DL, N.I.N.A.,
    ACP, SGP, IRAF OBSTYPE, ESO DPR), the kinds their frame-type values suggest, the
    detector's shape and binning, and INSTRUME for the profile's match.

    Example:

        nota profile draft night/*.fits --out ~/.config/nota/instruments/mycam.toml
    """
    from nota.pipeline.profile_draft import draft_profile

    found = draft_profile(frames, out)
    if as_json:
        print_json(found.as_dict())
        return
    _print_draft(found)


def _print_sections(report) -> None:
    found = report.as_dict()
    typer.echo(f"{report.flat} through {report.profile} (binning {report.binning}): "
               f"BIASSEC {found['biassec'] or 'none'}, TRIMSEC {found['trimsec'] or 'none'}")
    for axis in ("columns", "rows"):
        edges = found[axis]
        unlit = ", ".join(f"{a}-{b}" for a, b in edges["unlit"]) or "none"
        level = "unknown" if edges["dark_level"] is None else f"{edges['dark_level']:,.0f}"
        typer.echo(f"light in {axis} {edges['first']}-{edges['last']} of {edges['size']} (unexposed level "
                   f"{level}, plateau {edges['plateau']:,.0f} ADU); unlit {axis}: {unlit}")
    typer.echo(f"lit section: {found['lit_section']}")
    for note in found["notes"]:
        typer.echo(f"note: {note}")
    typer.echo(f"plot: {report.png}" if report.png else "plot: give --out FILE.png to draw it")
    for warning in found["warnings"]:
        typer.echo(f"warning: {warning}", err=True)


@profile_app.command("sections")
@_fails_cleanly
def sections(
    profile: str = typer.Argument(..., help="A profile key or a profile file."),
    flat: Path = typer.Argument(..., help="A raw flat of the camera."),
    bias: Optional[Path] = typer.Argument(None, help="A raw bias of the same readout (the unexposed level)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Draw the medians and sections in this PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print the measurement as JSON."),
) -> None:
    """Where a flat's light really starts and stops, against the profile's BIASSEC and TRIMSEC.

    Column and row medians of the flat (and the bias); the light starts where the flat
    rises above halfway between the unexposed level and its plateau. A warning when
    BIASSEC overlaps the light or TRIMSEC reaches into unlit columns or rows.

    Example:

        nota profile sections mycam.toml flat_V_001.fits bias_001.fits --out sections.png
    """
    from nota.pipeline.profile_sections import check_sections

    if state.db.exists():  # the archive --db names keeps the drawing too (nota serve shows it)
        with writable() as archive:
            report = check_sections(profile, flat, bias, out, archive)
    else:
        report = check_sections(profile, flat, bias, out)
    if as_json:
        print_json(report.as_dict())
        return
    _print_sections(report)
