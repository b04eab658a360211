"""Diagnostic plots a person would rather look at than read, as PNG bytes.

The lecture judges calibration frames by eye: bias histograms side by side, flats next to each
other in DS9, counts through the night. These functions draw the same pictures for the
catalogue. Each builds its own ``Figure`` on an Agg canvas, never pyplot's global state, so
they are safe in a web server's threads and in worker processes. The night's counts, remade
by every ``nota qc``, are drawn with Pillow instead, in the same font and colours.
"""

from __future__ import annotations

import io
import logging
import math
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
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
# The night plot, drawn with Pillow: plot box and legend column in pixels of 800 x 400.
NIGHT_BOX = (78, 34, 640, 350)  # left, top, right, bottom
MARKERS = ("circle", "square", "diamond", "triangle", "triangle_down")
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # matplotlib's C0..C9


def _figure(width: float = WIDTH, height: float = HEIGHT) -> Figure:
    """A figure on its own Agg canvas; constrained layout keeps labels inside the picture."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
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

    if len(placed) < len(rows):
        log.info(
            "night plot: %d of %d frames had no time or no positive median",
            len(rows) - len(placed),
            len(rows),
        )
    return _log_scatter_png(
        {kind: sorted(points[kind]) for kind in sorted(points)},
        title=f"Frame medians through the night: {len(placed)} frames",
        xlabel=f"UT (hours from {start:%Y-%m-%d} 0h)",
        ylabel="median counts (ADU)",
    )


def _log_scatter_png(series: dict[str, list[tuple[float, float]]], title: str, xlabel: str,
                     ylabel: str) -> bytes:
    """Points (x, y > 0) on a linear x and a logarithmic y axis, a legend beside the box.

    Drawn with Pillow in matplotlib's font and colours rather than by matplotlib: ``nota
    qc`` remakes the night plot on every run, and importing and laying out a matplotlib
    figure cost that run 0.4 s, as much as measuring thirty frames.
    """
    from PIL import Image, ImageDraw

    left, top, right, bottom = NIGHT_BOX
    xs = [x for points in series.values() for x, _ in points]
    logs = [math.log10(y) for points in series.values() for _, y in points]
    x_low, x_high = _padded(min(xs), max(xs), 0.03, 0.5)
    y_low, y_high = _padded(min(logs), max(logs), 0.05, 0.1)

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x_low) / (x_high - x_low) * (right - left),
                bottom - (math.log10(y) - y_low) / (y_high - y_low) * (bottom - top))

    image = Image.new("RGB", (int(WIDTH * DPI), int(HEIGHT * DPI)), "white")
    draw = ImageDraw.Draw(image)
    small, large = _font(11), _font(14)
    for x in _nice_ticks(x_low, x_high):
        px = at(x, 10**y_low)[0]
        draw.line([(px, top), (px, bottom)], fill=(230, 230, 230))
        draw.text((px, bottom + 4), f"{x:g}", font=small, fill="black", anchor="ma")
    for y in _log_ticks(y_low, y_high):
        py = at(x_low, y)[1]
        draw.line([(left, py), (right, py)], fill=(230, 230, 230))
        draw.text((left - 5, py), f"{y:,.0f}" if y >= 1 else f"{y:.2g}", font=small, fill="black", anchor="rm")
    draw.rectangle([left, top, right, bottom], outline="black")
    for number, (label, points) in enumerate(series.items()):
        marker, colour = MARKERS[number % len(MARKERS)], TAB10[number % len(TAB10)]
        for x, y in points:
            _marker(draw, at(x, y), marker, colour)
        row = top + 10 + 18 * number
        _marker(draw, (right + 18, row), marker, colour)
        draw.text((right + 28, row), f"{label} ({len(points)})", font=small, fill="black", anchor="lm")
    draw.text(((left + right) / 2, top - 8), title, font=large, fill="black", anchor="md")
    draw.text(((left + right) / 2, bottom + 24), xlabel, font=small, fill="black", anchor="ma")
    width = int(draw.textlength(ylabel, font=small)) + 4
    label = Image.new("RGB", (width, 16), "white")
    ImageDraw.Draw(label).text((width / 2, 8), ylabel, font=small, fill="black", anchor="mm")
    image.paste(label.rotate(90, expand=True), (8, int((top + bottom - width) / 2)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _padded(low: float, high: float, fraction: float, least: float) -> tuple[float, float]:
    """An axis range around the data with a margin, never empty."""
    margin = max((high - low) * fraction, least if high == low else 0.0)
    return low - margin, high + margin


def _nice_ticks(low: float, high: float, target: int = 10) -> list[float]:
    """Ticks at a round step (1, 2 or 5 times a power of ten), about ``target`` of them."""
    raw = (high - low) / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step)
    return [k * step for k in range(first, math.floor(high / step) + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    """Decades inside log10 limits; 2 and 5 times them too when fewer than two decades show."""
    decades = range(math.floor(low), math.ceil(high) + 1)
    ticks = [10.0**k for k in decades if low <= k <= high]
    if len(ticks) < 2:
        ticks = sorted(m * 10.0**k for k in decades for m in (1, 2, 5) if low <= math.log10(m) + k <= high)
    return ticks or [10.0**low, 10.0**high]  # a narrow range: label its ends


def _marker(draw, centre: tuple[float, float], shape: str, colour: str, r: float = 3.5) -> None:
    x, y = centre
    if shape == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    elif shape == "square":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=colour)
    else:
        points = {"diamond": [(x, y - r - 1), (x + r, y), (x, y + r + 1), (x - r, y)],
                  "triangle": [(x, y - r - 1), (x + r + 1, y + r), (x - r - 1, y + r)],
                  "triangle_down": [(x, y + r + 1), (x + r + 1, y - r), (x - r - 1, y - r)]}[shape]
        draw.polygon(points, fill=colour)


@lru_cache(maxsize=4)
def _font(size: int):
    """matplotlib's DejaVu Sans, from its data files without importing matplotlib's plotting."""
    from PIL import ImageFont

    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path(), "fonts/ttf/DejaVuSans.ttf")), size)
    except OSError:
        return ImageFont.load_default(size)
