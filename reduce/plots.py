"""Diagnostic plots a person would rather look at than read, as PNG bytes.

The lecture judges calibration frames by eye: bias histograms side by side, flats next to each
other in DS9, counts through the night. These functions draw the same pictures for the
catalogue. Each builds its own ``Figure`` on an Agg canvas, never pyplot's global state, so
they are safe in a web server's threads and in worker processes.
"""

from __future__ import annotations

import io
import logging
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from nota.reduce.preview import CMAPS, NEUTRAL_RGB, block_average, zscale_limits

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "bias_histograms_png",
    "flat_patterns_png",
    "image_png",
    "night_statistics_png",
]

log = logging.getLogger(__name__)

DPI = 100
WIDTH, HEIGHT = 8.0, 4.0  # inches at DPI: 800 x 400 pixels
HISTOGRAM_HALF_WIDTH = 50  # ADU either side of the common median, in 1-ADU bins, as the lecture
HISTOGRAM_SAMPLE = 2  # every 2nd pixel each way: a quarter of a 2k frame is a smooth histogram
EXCLUDED_COLOUR = "tab:red"
NEUTRAL = tuple(c / 255 for c in NEUTRAL_RGB)
IMPORTS = ("matplotlib.figure", "matplotlib.backends.backend_agg")  # imported on first use
NIGHT_MARGINS = {"left": 0.09, "right": 0.98, "bottom": 0.12, "top": 0.92}  # fit its labels at 800 x 400


def _figure(width: float = WIDTH, height: float = HEIGHT, margins: dict | None = None) -> Figure:
    """A figure on its own Agg canvas; constrained layout keeps labels inside the picture.

    A plot of one known shape can give fixed ``margins`` (``subplots_adjust`` fractions)
    instead: constrained layout measures every label before drawing, which is half the
    cost of a simple plot.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout=None if margins else "constrained")
    if margins:
        figure.subplots_adjust(**margins)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    """The figure as PNG bytes, at exactly its size (no tight bounding box)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _grid(count: int, max_columns: int) -> tuple[int, int]:
    """(rows, columns) for ``count`` panels, as square-ish as the columns allow."""
    columns = min(count, max_columns)
    return math.ceil(count / columns), columns


class _Levels:
    """One frame's strided sample as a histogram of levels, plus its median.

    Raw biases are 16-bit integers: one ``bincount`` gives both the median and the 1-ADU
    histogram without sorting; float frames fall back to numpy's median and histogram.
    """

    def __init__(self, data: np.ndarray) -> None:
        sample = np.asarray(data)[::HISTOGRAM_SAMPLE, ::HISTOGRAM_SAMPLE].ravel()
        self.counts: np.ndarray | None = None
        if sample.dtype.kind == "u" and sample.dtype.itemsize <= 2 and sample.size:
            self.counts = np.bincount(sample)
            cumulative = np.cumsum(self.counts)
            half = (sample.size + 1) // 2, sample.size // 2 + 1
            self.median = float(np.searchsorted(cumulative, half).mean())
            return
        self.sample = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample
        if self.sample.size == 0:
            raise ValueError("a bias frame has no finite pixels")
        self.median = float(np.median(self.sample))

    def histogram(self, low: int, bins: int) -> np.ndarray:
        """Pixels per 1-ADU bin centred on low, low + 1, ..., low + bins - 1."""
        if self.counts is None:
            edges = np.arange(bins + 1) + low - 0.5
            return np.histogram(self.sample, bins=edges)[0]
        window = np.zeros(bins, dtype=np.int64)
        first, last = max(low, 0), min(low + bins, self.counts.size)
        if last > first:
            window[first - low : last - low] = self.counts[first:last]
        return window


def bias_histograms_png(frames: list[tuple[str, np.ndarray]]) -> bytes:
    """One histogram per bias frame, 1-ADU bins over the common median +-50 ADU.

    A shared x range makes an offset or a wider read noise jump out between panels; each
    panel's own median is marked so a drifting level is read off without a table.
    """
    if not frames:
        raise ValueError("no bias frames to plot")
    levels_of = [_Levels(data) for _, data in frames]
    medians = [levels.median for levels in levels_of]
    centre = round(float(np.median(medians)))
    low, bins = centre - HISTOGRAM_HALF_WIDTH, 2 * HISTOGRAM_HALF_WIDTH + 1
    levels = np.arange(low, low + bins)
    rows, columns = _grid(len(frames), 5)
    figure = _figure(WIDTH, max(HEIGHT, 2.0 * rows))
    axes = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    for panel, (name, _), frame in zip(axes.flat, frames, levels_of):
        counts, median = frame.histogram(low, bins), frame.median
        panel.stairs(counts, np.append(levels, levels[-1] + 1) - 0.5, fill=True, alpha=0.8)
        panel.axvline(median, color="black", linewidth=0.8)
        panel.set_title(name, fontsize=8)
        panel.text(
            0.97, 0.95, f"{median:.0f}", transform=panel.transAxes, fontsize=7, ha="right", va="top"
        )
        panel.tick_params(labelsize=7)
    for panel in axes.flat[len(frames) :]:
        panel.set_visible(False)
    for panel in axes[-1]:
        panel.set_xlabel("ADU")
    for panel in axes[:, 0]:
        panel.set_ylabel("pixels")
    figure.suptitle(f"Bias histograms: {len(frames)} frames, common median {centre} ADU")
    return _png(figure)


def flat_patterns_png(
    patterns: list[tuple[str, np.ndarray, bool]], reference: np.ndarray | None = None
) -> bytes:
    """Flats' coarse illumination patterns side by side on one colour scale.

    The reference (given, or the median of the included patterns) comes first and each panel
    states its largest departure from it, so a rotated filter's shadow stands out both by
    colour and by number. Excluded flats carry a red "excluded" title.
    """
    if not patterns:
        raise ValueError("no flat patterns to plot")
    grids = [np.asarray(p, dtype=np.float64) for _, p, _ in patterns]
    label = "reference"
    if reference is None:
        included = [g for g, (_, _, keep) in zip(grids, patterns) if keep]
        reference = np.median(included, axis=0) if included else None
        label = "median"
    panels: list[tuple[str, np.ndarray, bool | None]] = []
    if reference is not None:
        panels.append((label, np.asarray(reference, dtype=np.float64), None))
    panels += [(name, grid, keep) for grid, (name, _, keep) in zip(grids, patterns)]

    finite = np.concatenate([g[np.isfinite(g)].ravel() for _, g, _ in panels])
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    rows, columns = _grid(len(panels), 7)
    figure = _figure(WIDTH, max(HEIGHT, 1.6 * rows + 0.6))
    axes = figure.subplots(rows, columns, squeeze=False)
    from matplotlib import colormaps

    colormap = colormaps[CMAPS["flat"]].with_extremes(bad=NEUTRAL)
    shown = None
    for panel, (name, grid, keep) in zip(axes.flat, panels):
        shown = panel.imshow(grid, origin="lower", cmap=colormap, vmin=low, vmax=high)
        panel.set_xticks([])
        panel.set_yticks([])
        if keep is None:
            panel.set_title(name, fontsize=8, fontweight="bold")
            continue
        title = name if keep else f"{name}\nexcluded"
        panel.set_title(title, fontsize=7, color="black" if keep else EXCLUDED_COLOUR)
        if not keep:
            for side in panel.spines.values():
                side.set_edgecolor(EXCLUDED_COLOUR)
                side.set_linewidth(2)
        if reference is not None and grid.shape == np.shape(reference):
            departure = float(np.nanmax(np.abs(grid - reference)))
            panel.set_xlabel(f"max dev. {100 * departure:.1f}%", fontsize=7)
    for panel in axes.flat[len(panels) :]:
        panel.set_visible(False)
    figure.colorbar(shown, ax=axes, shrink=0.8, label="level / median level")
    figure.suptitle(f"Flat illumination patterns: {len(patterns)} frames")
    return _png(figure)


def image_png(
    data: np.ndarray,
    title: str,
    *,
    cmap: str = "gray",
    max_size: int = 512,
    colorbar: bool = True,
    unit: str = "ADU",
    mask: np.ndarray | None = None,
) -> bytes:
    """A zscaled view of a whole image with pixel axes and a colour bar, for a product page.

    The figure is sized to the averaged image (about max_size pixels of image across) so the
    picture is not resampled a second time; axes keep the original pixel coordinates.
    """
    from matplotlib import colormaps

    small = block_average(data, max_size, mask)
    finite = np.isfinite(small)
    low, high = zscale_limits(small, ~finite) if finite.any() else (0.0, 1.0)
    rows, cols = np.shape(data)
    image_rows, image_cols = small.shape
    width = (image_cols + (140 if colorbar else 60)) / DPI
    height = (image_rows + 90) / DPI
    figure = _figure(max(width, 3.0), max(height, 2.5))
    axes = figure.subplots()
    colormap = colormaps[cmap].with_extremes(bad=NEUTRAL)
    shown = axes.imshow(
        small,
        origin="lower",
        cmap=colormap,
        vmin=low,
        vmax=high,
        extent=(0.5, cols + 0.5, 0.5, rows + 0.5),
        interpolation="nearest",
    )
    axes.set_title(title)
    axes.set_xlabel("x (pixels)")
    axes.set_ylabel("y (pixels)")
    if colorbar:
        figure.colorbar(shown, ax=axes, label=unit)
    return _png(figure)


def _ut(value: Any) -> datetime | None:
    """A DATE-OBS string as an aware UTC datetime; naive values are UTC as FITS says."""
    try:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _number(value: Any) -> float:
    """A database value as a float; NaN when it is missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def night_statistics_png(rows: list[dict]) -> bytes:
    """Median counts through the night, one marker per frame kind, on a log scale.

    Hours run on from 0h UT of the first frame's date, so a night past midnight stays one
    continuous axis (25 h is 1h UT the next day). Frames without a time or with no positive
    median cannot be placed on a log axis and are left out (logged).
    """
    points: dict[str, list[tuple[float, float]]] = {}
    placed = []
    for row in rows:
        moment, median = _ut(row.get("date_obs")), _number(row.get("median"))
        if moment is None or not median > 0 or not math.isfinite(median):
            log.debug(
                "night plot leaves out %s (date_obs %r, median %r)",
                row.get("filename"),
                row.get("date_obs"),
                median,
            )
            continue
        placed.append((moment, str(row.get("kind") or "unknown"), median))
    if not placed:
        raise ValueError("no frames with a date_obs and a positive median to plot")
    start = min(m for m, _, _ in placed).replace(hour=0, minute=0, second=0, microsecond=0)
    for moment, kind, median in placed:
        hours = (moment - start).total_seconds() / 3600.0
        points.setdefault(kind, []).append((hours, median))

    figure = _figure(margins=NIGHT_MARGINS)  # made on every qc run: no layout pass
    axes = figure.subplots()
    markers = "osD^v<>pPX*h"
    for number, kind in enumerate(sorted(points)):
        hours, medians = zip(*sorted(points[kind]))
        axes.plot(
            hours,
            medians,
            linestyle="none",
            marker=markers[number % len(markers)],
            markersize=5,
            color=f"C{number % 10}",
            label=f"{kind} ({len(hours)})",
        )
    axes.set_yscale("log")
    axes.set_xlabel(f"UT (hours from {start:%Y-%m-%d} 0h)")
    axes.set_ylabel("median counts (ADU)")
    axes.set_title(f"Frame medians through the night: {len(placed)} frames")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    if len(placed) < len(rows):
        log.info(
            "night plot: %d of %d frames had no time or no positive median",
            len(rows) - len(placed),
            len(rows),
        )
    return _png(figure)
