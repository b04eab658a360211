"""Diagnostic plots a person would rather look at than read, as PNG bytes.

The lecture judges calibration frames by eye: bias histograms side by side, flats next to each
other in DS9, counts through the night. These functions draw the same pictures for the
catalogue, with Pillow (``nota.reduce.canvas``) in matplotlib's font and colours: they are
remade whenever what they show changes, and matplotlib's layout of a twenty-panel figure cost
more than building the master it shows. Nothing here holds global state, so they are safe in
a web server's threads and in worker processes.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from nota.reduce.canvas import GRID_GREY, Box, Canvas, log_ticks, nice_ticks, padded, panel_boxes, tint
from nota.reduce.preview import block_average, zscale_limits

__all__ = [
    "bias_histograms_png",
    "flat_patterns_png",
    "image_png",
    "night_statistics_png",
]

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 800, 400  # pixels of a plot (taller for many panels)
HISTOGRAM_HALF_WIDTH = 50  # ADU either side of the common median, in 1-ADU bins, as the lecture
HISTOGRAM_SAMPLE = 2  # every 2nd pixel each way: a quarter of a 2k frame is a smooth histogram
EXCLUDED_COLOUR = (214, 39, 40)  # matplotlib's tab:red
NIGHT_BOX = Box(78, 34, 640, 350)  # the night plot's axes in its 800 x 400
MARKERS = ("circle", "square", "diamond", "triangle", "triangle_down")
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # matplotlib's C0..C9
BAR_BLUE = tint((31, 119, 180), 0.8)  # C0 at matplotlib's alpha 0.8


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

    A shared x range and count scale make an offset or a wider read noise jump out between
    panels; each panel's own median is marked so a drifting level is read off without a table.
    """
    if not frames:
        raise ValueError("no bias frames to plot")
    levels_of = [_Levels(data) for _, data in frames]
    medians = [levels.median for levels in levels_of]
    centre = round(float(np.median(medians)))
    low, bins = centre - HISTOGRAM_HALF_WIDTH, 2 * HISTOGRAM_HALF_WIDTH + 1
    counts = [levels.histogram(low, bins) for levels in levels_of]
    top_count = max(1, max(int(c.max()) for c in counts)) * 1.05
    rows, columns = _grid(len(frames), 5)
    canvas = Canvas(WIDTH, max(HEIGHT, 200 * rows))
    canvas.text((WIDTH / 2, 8), f"Bias histograms: {len(frames)} frames, common median {centre} ADU", 14, "ma")
    area = Box(70, 48, WIDTH - 12, canvas.height - 42)
    x_low, x_high = low - 0.5, low + bins - 0.5
    x_ticks, y_ticks = nice_ticks(x_low, x_high, 4), nice_ticks(0, top_count, 4)
    for number, (box, (name, _), histogram, median) in enumerate(
            zip(panel_boxes(len(frames), columns, area, 14, 30), frames, counts, medians)):
        for i, n in enumerate(histogram):
            if n:
                canvas.draw.rectangle([box.x_of(low + i - 0.5, x_low, x_high), box.y_of(n, 0, top_count),
                                       box.x_of(low + i + 0.5, x_low, x_high), box.bottom], fill=BAR_BLUE)
        x = box.x_of(median, x_low, x_high)
        canvas.draw.line([(x, box.top), (x, box.bottom)], fill="black")
        canvas.frame(box)
        canvas.text(((box.left + box.right) / 2, box.top - 4), name, 10, "md")
        canvas.text((box.right - 4, box.top + 3), f"{median:.0f}", 9, "ra")
        last_row, first_column = number >= len(frames) - columns, number % columns == 0
        canvas.x_ticks(box, x_low, x_high, x_ticks, labels=last_row)
        canvas.y_ticks(box, 0, top_count, y_ticks, labels=first_column)
    canvas.text(((area.left + area.right) / 2, canvas.height - 6), "ADU", 11, "md")
    canvas.vertical_text((14, (area.top + area.bottom) / 2), "pixels", 11)
    return canvas.png()


def flat_patterns_png(
    patterns: list[tuple[str, np.ndarray, bool]], reference: np.ndarray | None = None
) -> bytes:
    """Flats' coarse illumination patterns side by side on one colour scale.

    The reference (given, or the median of the included patterns) comes first and each panel
    states its largest departure from it, so a rotated filter's shadow stands out both by
    colour and by number. Excluded flats carry a red "excluded" title and frame.
    """
    from nota.reduce.preview import CMAPS

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
    canvas = Canvas(WIDTH, max(HEIGHT, 160 * rows + 60))
    canvas.text((WIDTH / 2 - 40, 8), f"Flat illumination patterns: {len(patterns)} frames", 14, "ma")
    cell = min((WIDTH - 130 - 12 * (columns - 1)) / columns, (canvas.height - 40) / rows - 42)
    grid_height = rows * cell + (rows - 1) * 42
    top = max(58.0, (canvas.height - grid_height) / 2)  # a single row sits mid-height
    area = Box(10, top, 10 + columns * cell + (columns - 1) * 12, top + grid_height)
    for box, (name, grid, keep) in zip(panel_boxes(len(panels), columns, area, 12, 42), panels):
        canvas.picture(grid, (low, high), CMAPS["flat"], box)
        centre = (box.left + box.right) / 2
        if keep is None:
            canvas.text((centre, box.top - 4), name, 10, "md", bold=True)
            canvas.frame(box)
            continue
        colour = "black" if keep else EXCLUDED_COLOUR
        canvas.text((centre, box.top - 4), name if keep else f"{name}\nexcluded", 9, "md", fill=colour)
        canvas.frame(box, colour, 1 if keep else 2)
        if reference is not None and grid.shape == np.shape(reference):
            departure = float(np.nanmax(np.abs(grid - reference)))
            canvas.text((centre, box.bottom + 4), f"max dev. {100 * departure:.1f}%", 9, "ma")
    bar = Box(area.right + 22, area.top, area.right + 38, max(area.bottom, area.top + 150))
    canvas.colour_bar(bar, CMAPS["flat"], low, high, "level / median level")
    return canvas.png()


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

    The picture is sized to the averaged image (about max_size pixels of image across) so it
    is not resampled a second time; the axes keep the original pixel coordinates.
    """
    small = block_average(data, max_size, mask)
    finite = np.isfinite(small)
    low, high = zscale_limits(small, ~finite) if finite.any() else (0.0, 1.0)
    rows, cols = np.shape(data)
    image_rows, image_cols = small.shape
    canvas = Canvas(max(image_cols + (150 if colorbar else 70), 300), max(image_rows + 90, 250))
    box = Box(60, 34, 60 + image_cols, 34 + image_rows)
    canvas.picture(small, (low, high), cmap, box)
    canvas.frame(box)
    canvas.x_ticks(box, 0.5, cols + 0.5, nice_ticks(0.5, cols + 0.5, 5))
    canvas.y_ticks(box, 0.5, rows + 0.5, nice_ticks(0.5, rows + 0.5, 5))
    canvas.text(((box.left + box.right) / 2, 10), title, 13, "ma")
    canvas.text(((box.left + box.right) / 2, box.bottom + 20), "x (pixels)", 11, "ma")
    canvas.vertical_text((14, (box.top + box.bottom) / 2), "y (pixels)", 11)
    if colorbar:
        canvas.colour_bar(Box(box.right + 14, box.top, box.right + 28, box.bottom), cmap, low, high, unit)
    return canvas.png()


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
    """Points (x, y > 0) on a linear x and a logarithmic y axis, a legend beside the box."""
    box = NIGHT_BOX
    xs = [x for points in series.values() for x, _ in points]
    logs = [math.log10(y) for points in series.values() for _, y in points]
    x_low, x_high = padded(min(xs), max(xs), 0.03, 0.5)
    y_low, y_high = padded(min(logs), max(logs), 0.05, 0.1)

    def at(x: float, y: float) -> tuple[float, float]:
        return box.x_of(x, x_low, x_high), box.y_of(math.log10(y), y_low, y_high)

    canvas = Canvas(WIDTH, HEIGHT)
    draw = canvas.draw
    for x in nice_ticks(x_low, x_high):
        px = at(x, 10**y_low)[0]
        draw.line([(px, box.top), (px, box.bottom)], fill=GRID_GREY)
        canvas.text((px, box.bottom + 4), f"{x:g}", 11, "ma")
    for y in log_ticks(y_low, y_high):
        py = at(x_low, y)[1]
        draw.line([(box.left, py), (box.right, py)], fill=GRID_GREY)
        canvas.text((box.left - 5, py), f"{y:,.0f}" if y >= 1 else f"{y:.2g}", 11, "rm")
    canvas.frame(box)
    for number, (label, points) in enumerate(series.items()):
        marker, colour = MARKERS[number % len(MARKERS)], TAB10[number % len(TAB10)]
        for x, y in points:
            _marker(draw, at(x, y), marker, colour)
        row = box.top + 10 + 18 * number
        _marker(draw, (box.right + 18, row), marker, colour)
        canvas.text((box.right + 28, row), f"{label} ({len(points)})", 11, "lm")
    canvas.text(((box.left + box.right) / 2, box.top - 8), title, 14, "md")
    canvas.text(((box.left + box.right) / 2, box.bottom + 24), xlabel, 11, "ma")
    canvas.vertical_text((16, (box.top + box.bottom) / 2), ylabel, 11)
    return canvas.png()


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
