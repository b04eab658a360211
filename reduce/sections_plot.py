"""Where the light really falls: a flat's column and row medians against the profile's sections.

Headers are not always right about their sections: real cameras call light-carrying columns
"prescan" while the unexposed strip lies at the other edge, and a reduction that trusts them
subtracts 28,000 ADU of "bias". A flat shows the truth: its median along each column (and
each row) sits at the bias level where no light falls and on a plateau where it does. The
light starts and stops where the profile crosses halfway between the two. These functions
measure that and draw it with BIASSEC and TRIMSEC over it, so a wrong section is seen before
a night is reduced. Pure: arrays in, numbers and PNG bytes out.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from nota.errors import NotaError
from nota.sections import format_section, parse_section

__all__ = ["Edges", "SectionsMeasurement", "median_profiles", "light_edges", "measure_sections", "sections_png"]

# Without a bias, a strip counts as unexposed only when it is darker than this fraction of
# the plateau (a vignetted edge stays above it; an overscan at the bias level is far below).
UNLIT_FRACTION = 0.5


@dataclass(frozen=True)
class Edges:
    """Where light starts and stops along one axis (1-based, inclusive, as FITS sections)."""

    first: int | None
    last: int | None
    size: int
    dark_level: float | None  # None: no unexposed level known, the whole axis is lit
    plateau: float
    threshold: float | None

    def unlit(self) -> list[tuple[int, int]]:
        """The unexposed runs at either end, (first, last) 1-based."""
        if self.first is None or self.last is None:
            return [(1, self.size)]
        runs = [(1, self.first - 1)] if self.first > 1 else []
        return runs + ([(self.last + 1, self.size)] if self.last < self.size else [])


@dataclass(frozen=True)
class SectionsMeasurement:
    """A flat's (and a bias's) median profiles, the lit edges, and what is wrong with the sections."""

    columns: Edges
    rows: Edges
    flat_columns: np.ndarray = field(repr=False)
    flat_rows: np.ndarray = field(repr=False)
    bias_columns: np.ndarray | None = field(default=None, repr=False)
    bias_rows: np.ndarray | None = field(default=None, repr=False)
    biassec: str | None = None
    trimsec: str | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def lit_section(self) -> str | None:
        """The lit part of the frame as a FITS section (a TRIMSEC to start from)."""
        c, r = self.columns, self.rows
        if None in (c.first, c.last, r.first, r.last):
            return None
        return format_section(c.first, c.last, r.first, r.last)


def median_profiles(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(median of each column, median of each row): robust to stars, cosmics and bad pixels."""
    values = np.asarray(data, dtype=np.float64)
    return np.nanmedian(values, axis=0), np.nanmedian(values, axis=1)


def _smoothed_min(profile: np.ndarray) -> float:
    """The profile's low end, a 3-wide running median first so one bad column does not set it."""
    if profile.size < 3:
        return float(np.min(profile))
    stacked = np.stack([profile[:-2], profile[1:-1], profile[2:]])
    return float(np.min(np.median(stacked, axis=0)))


def _longest_run(mask: np.ndarray) -> tuple[int | None, int | None]:
    """(first, last) 1-based of the longest run of True; (None, None) when there is none."""
    if not mask.any():
        return None, None
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    starts, stops = np.flatnonzero(np.diff(padded) == 1), np.flatnonzero(np.diff(padded) == -1)
    best = int(np.argmax(stops - starts))
    return int(starts[best]) + 1, int(stops[best])


def light_edges(profile: np.ndarray, dark_level: float | None) -> Edges:
    """Where ``profile`` (a flat's medians) rises above halfway from ``dark_level`` to its plateau.

    The plateau is the profile's median: the lit part is most of any frame. Without a
    ``dark_level`` the whole axis is taken as lit."""
    plateau = float(np.median(profile))
    if dark_level is None:
        return Edges(1, int(profile.size), int(profile.size), None, plateau, None)
    threshold = (dark_level + plateau) / 2
    first, last = _longest_run(np.asarray(profile) > threshold)
    return Edges(first, last, int(profile.size), float(dark_level), plateau, float(threshold))


def _dark_level(flat_cols: np.ndarray, flat_rows: np.ndarray,
                bias: np.ndarray | None) -> tuple[float | None, str | None]:
    """The level where no light falls: the bias's median, else the flat's darkest strip when it
    is clearly below the plateau; else the flat's low end is taken as lit (a note says so)."""
    if bias is not None:
        return float(np.nanmedian(bias)), None
    low = min(_smoothed_min(flat_cols), _smoothed_min(flat_rows))
    plateau = float(np.median(flat_cols))
    if low < UNLIT_FRACTION * plateau:
        return low, "no bias given: the unexposed level is the flat's darkest strip"
    return None, ("no bias given and no strip of the flat below half its plateau: "
                           "the whole frame is taken as lit")


def _parse_inside(text: str | None, shape: tuple[int, int], name: str, warnings: list[str]):
    if not text:
        return None
    try:
        x1, x2, y1, y2 = parse_section(text)
    except NotaError as exc:
        warnings.append(f"{name}: {exc}")
        return None
    if x2 > shape[1] or y2 > shape[0]:
        warnings.append(f"{name} {text} lies outside the {shape[1]} x {shape[0]} frame")
        return None
    return x1, x2, y1, y2


def _overlap(a1: int, a2: int, b1: int | None, b2: int | None) -> tuple[int, int] | None:
    if b1 is None or b2 is None:
        return None
    low, high = max(a1, b1), min(a2, b2)
    return (low, high) if low <= high else None


def _biassec_warning(sec, text: str, cols: Edges, rows: Edges, flat: np.ndarray) -> str | None:
    x1, x2, y1, y2 = sec
    xs, ys = _overlap(x1, x2, cols.first, cols.last), _overlap(y1, y2, rows.first, rows.last)
    if xs is None or ys is None:
        return None
    level = float(np.nanmedian(flat[y1 - 1:y2, x1 - 1:x2]))
    dark = "" if cols.dark_level is None else f", the unexposed level {cols.dark_level:,.0f}"
    return (f"BIASSEC {text} overlaps the light: its columns {xs[0]}-{xs[1]} (rows {ys[0]}-{ys[1]}) are lit "
            f"(light in columns {cols.first}-{cols.last}); the flat's median there, which would be taken for the bias level, is {level:,.0f} ADU{dark}")


def _trimsec_warning(sec, text: str, cols: Edges, rows: Edges) -> str | None:
    x1, x2, y1, y2 = sec
    parts = []
    for axis, (a1, a2), edges in (("columns", (x1, x2), cols), ("rows", (y1, y2), rows)):
        if edges.first is None or edges.last is None:
            parts.append(f"{axis} {a1}-{a2} (no light found)")
            continue
        if a1 < edges.first:
            parts.append(f"{axis} {a1}-{min(a2, edges.first - 1)}")
        if a2 > edges.last:
            parts.append(f"{axis} {max(a1, edges.last + 1)}-{a2}")
    if not parts:
        return None
    return (f"TRIMSEC {text} reaches into unlit {', '.join(parts)} "
            f"(light in columns {cols.first}-{cols.last}, rows {rows.first}-{rows.last})")


def measure_sections(flat: np.ndarray, bias: np.ndarray | None = None, biassec: str | None = None,
                     trimsec: str | None = None) -> SectionsMeasurement:
    """The flat's lit edges, and a warning when BIASSEC overlaps the light or TRIMSEC reaches
    into unlit columns or rows (sections are of this readout, binned as it is)."""
    flat = np.asarray(flat, dtype=np.float64)
    if bias is not None and np.shape(bias) != flat.shape:
        raise NotaError(f"the bias is {np.shape(bias)[::-1]} pixels, the flat {flat.shape[::-1]}")
    flat_cols, flat_rows = median_profiles(flat)
    bias_cols, bias_rows = median_profiles(bias) if bias is not None else (None, None)
    dark, note = _dark_level(flat_cols, flat_rows, bias)
    cols, rows = light_edges(flat_cols, dark), light_edges(flat_rows, dark)
    warnings: list[str] = []
    bsec = _parse_inside(biassec, flat.shape, "BIASSEC", warnings)
    tsec = _parse_inside(trimsec, flat.shape, "TRIMSEC", warnings)
    known = dark is not None  # without an unexposed level, no light edge is known to test against
    found = [_biassec_warning(bsec, biassec, cols, rows, flat) if bsec and known else None,
             _trimsec_warning(tsec, trimsec, cols, rows) if tsec and known else None]
    return SectionsMeasurement(cols, rows, flat_cols, flat_rows, bias_cols, bias_rows, biassec, trimsec,
                               tuple(warnings + [w for w in found if w]), (note,) if note else ())


# The picture ---------------------------------------------------------------------------------


def _axis_panel(ax, flat: np.ndarray, bias: np.ndarray | None, edges: Edges, spans: dict[str, tuple[int, int]],
                label: str) -> None:
    """One axis: the medians, the sections shaded, the measured edges dashed."""
    index = np.arange(1, flat.size + 1)
    ax.plot(index, flat, color="tab:blue", lw=1, label="flat median")
    if bias is not None:
        ax.plot(index, bias, color="tab:gray", lw=1, label="bias median")
    for name, colour in (("BIASSEC", "tab:red"), ("TRIMSEC", "tab:green")):
        if name in spans:
            a, b = spans[name]
            ax.axvspan(a - 0.5, b + 0.5, color=colour, alpha=0.15, label=f"{name} {a}-{b}")
    if edges.threshold is not None:
        ax.axhline(edges.threshold, color="tab:orange", lw=0.8, ls=":", label="halfway")
    for edge in (edges.first, edges.last):
        if edge is not None:
            ax.axvline(edge, color="black", lw=0.8, ls="--")
    ax.set_xlim(0.5, flat.size + 0.5)
    ax.set_xlabel(label)
    ax.set_ylabel("ADU")
    ax.set_title(f"light in {label}s {edges.first}-{edges.last} of {edges.size}", fontsize=9)
    ax.legend(fontsize=7, loc="best")


def _spans(sections: dict[str, str | None], axis: int) -> dict[str, tuple[int, int]]:
    spans = {}
    for name, text in sections.items():
        try:
            parts = parse_section(text) if text else None
        except NotaError:
            parts = None
        if parts:
            spans[name] = (parts[2 * axis], parts[2 * axis + 1])
    return spans


def sections_png(measured: SectionsMeasurement, title: str = "") -> bytes:
    """Column and row medians with BIASSEC and TRIMSEC over them and the lit edges, as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 6.0), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1)
    sections = {"BIASSEC": measured.biassec, "TRIMSEC": measured.trimsec}
    _axis_panel(top, measured.flat_columns, measured.bias_columns, measured.columns, _spans(sections, 0), "column")
    _axis_panel(bottom, measured.flat_rows, measured.bias_rows, measured.rows, _spans(sections, 1), "row")
    figure.suptitle(title or "where the light falls", fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
