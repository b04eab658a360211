"""Pictures drawn with Pillow: panels, axes, ticks, text and colour bars, in matplotlib's look.

nota remakes its diagnostic plots on every run that changes what they show (a master's
bias histograms, a group's flat patterns, each master's picture, the night's counts).
matplotlib took a second or more for a twenty-panel figure and as much again to start in
each worker process: on a small night that was most of ``nota reduce``. Pillow draws the
same pictures in milliseconds. The font is matplotlib's DejaVu Sans (read from its data
files, without importing its plotting) and the colours are its palettes.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from nota.reduce.preview import palette, to_levels

__all__ = ["Box", "Canvas", "font", "nice_ticks", "log_ticks", "padded", "panel_boxes", "tint"]

GRID_GREY = (230, 230, 230)


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels: left, top, right, bottom (y grows downwards)."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def x_of(self, value: float, low: float, high: float) -> float:
        return self.left + (value - low) / ((high - low) or 1.0) * self.width

    def y_of(self, value: float, low: float, high: float) -> float:
        return self.bottom - (value - low) / ((high - low) or 1.0) * self.height


@lru_cache(maxsize=8)
def font(size: int, bold: bool = False):
    """matplotlib's DejaVu Sans, from its data files without importing matplotlib's plotting."""
    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(_matplotlib_data() / "fonts" / "ttf" / name), size)
    except OSError:
        return ImageFont.load_default(size)


def _matplotlib_data() -> Path:
    """matplotlib's ``mpl-data`` folder (what ``matplotlib.get_data_path()`` says), found
    without importing matplotlib: that import took 0.1 to 0.2 s of each worker."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise OSError("matplotlib is not installed")
    return Path(next(iter(spec.submodule_search_locations)), "mpl-data")


def tint(colour: tuple[int, int, int], alpha: float) -> tuple[int, int, int]:
    """A colour laid over white at an opacity (matplotlib's ``alpha``)."""
    return tuple(round(alpha * c + (1 - alpha) * 255) for c in colour)


def padded(low: float, high: float, fraction: float, least: float) -> tuple[float, float]:
    """An axis range around the data with a margin, never empty."""
    margin = max((high - low) * fraction, least if high == low else 0.0)
    return low - margin, high + margin


def nice_ticks(low: float, high: float, target: int = 10) -> list[float]:
    """Ticks at a round step (1, 2 or 5 times a power of ten), about ``target`` of them."""
    if not high > low:
        return [low]
    raw = (high - low) / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9)
    return [round(k * step, 12) for k in range(first, math.floor(high / step + 1e-9) + 1)]


def log_ticks(low: float, high: float) -> list[float]:
    """Decades inside log10 limits; 2 and 5 times them too when fewer than two decades show."""
    decades = range(math.floor(low), math.ceil(high) + 1)
    ticks = [10.0**k for k in decades if low <= k <= high]
    if len(ticks) < 2:
        ticks = sorted(m * 10.0**k for k in decades for m in (1, 2, 5) if low <= math.log10(m) + k <= high)
    return ticks or [10.0**low, 10.0**high]  # a narrow range: label its ends


def tick_label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


def panel_boxes(count: int, columns: int, area: Box, gap_x: float, gap_y: float) -> list[Box]:
    """``count`` panels in rows of ``columns`` filling ``area``, ``gap`` pixels apart."""
    rows = math.ceil(count / columns)
    width = (area.width - gap_x * (columns - 1)) / columns
    height = (area.height - gap_y * (rows - 1)) / rows
    return [Box(area.left + c * (width + gap_x), area.top + r * (height + gap_y),
                area.left + c * (width + gap_x) + width, area.top + r * (height + gap_y) + height)
            for r in range(rows) for c in range(columns)][:count]


class Canvas:
    """A white RGB picture to draw on, written out as PNG bytes."""

    def __init__(self, width: int, height: int) -> None:
        from PIL import Image, ImageDraw

        self.image = Image.new("RGB", (int(width), int(height)), "white")
        self.draw = ImageDraw.Draw(self.image)

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def text(self, xy: tuple[float, float], text: str, size: int = 11, anchor: str = "la",
             fill="black", bold: bool = False) -> None:
        align = {"l": "left", "m": "center", "r": "right"}[anchor[0]]  # of a text's lines
        self.draw.text(xy, text, font=font(size, bold), fill=fill, anchor=anchor, align=align)

    def vertical_text(self, centre: tuple[float, float], text: str, size: int = 11) -> None:
        """Text turned a quarter left (an axis label), centred on ``centre``."""
        from PIL import Image, ImageDraw

        width = int(self.draw.textlength(text, font=font(size))) + 4
        label = Image.new("RGB", (width, size + 6), "white")
        ImageDraw.Draw(label).text((width / 2, (size + 6) / 2), text, font=font(size), fill="black", anchor="mm")
        turned = label.rotate(90, expand=True)
        self.image.paste(turned, (int(centre[0] - turned.width / 2), int(centre[1] - turned.height / 2)))

    def frame(self, box: Box, colour="black", width: int = 1) -> None:
        self.draw.rectangle([box.left, box.top, box.right, box.bottom], outline=colour, width=width)

    def x_ticks(self, box: Box, low: float, high: float, ticks: list[float], *, labels: bool = True,
                size: int = 9) -> None:
        for value in ticks:
            x = box.x_of(value, low, high)
            if box.left - 0.5 <= x <= box.right + 0.5:
                self.draw.line([(x, box.bottom), (x, box.bottom + 3)], fill="black")
                if labels:
                    self.text((x, box.bottom + 4), tick_label(value), size, "ma")

    def y_ticks(self, box: Box, low: float, high: float, ticks: list[float], *, labels: bool = True,
                size: int = 9) -> None:
        for value in ticks:
            y = box.y_of(value, low, high)
            if box.top - 0.5 <= y <= box.bottom + 0.5:
                self.draw.line([(box.left - 3, y), (box.left, y)], fill="black")
                if labels:
                    self.text((box.left - 5, y), tick_label(value), size, "rm")

    def picture(self, values: np.ndarray, limits: tuple[float, float], cmap: str, box: Box) -> None:
        """An image in a colormap between display limits, row 0 at the bottom as DS9 shows
        it, scaled (nearest pixel) to fill ``box``; NaN pixels in the neutral grey."""
        from PIL import Image

        levels = Image.fromarray(np.ascontiguousarray(to_levels(np.asarray(values, np.float64), limits)[::-1]))
        levels.putpalette(palette(cmap))
        size = (max(int(round(box.width)), 1), max(int(round(box.height)), 1))
        self.image.paste(levels.convert("RGB").resize(size, Image.Resampling.NEAREST),
                         (int(round(box.left)), int(round(box.top))))

    def colour_bar(self, box: Box, cmap: str, low: float, high: float, label: str) -> None:
        """A vertical bar of the colormap from ``low`` (bottom) to ``high``, with ticks."""
        ramp = np.linspace(low, high, max(int(box.height), 2))[:, None]
        self.picture(ramp, (low, high), cmap, box)
        self.frame(box)
        for value in nice_ticks(low, high, 5):
            y = box.y_of(value, low, high)
            self.draw.line([(box.right, y), (box.right + 3, y)], fill="black")
            self.text((box.right + 5, y), f"{value:.4g}", 9, "lm")
        self.vertical_text((box.right + 55, (box.top + box.bottom) / 2), label, 10)

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()

