"""The CCD: readout geometry, the fixed bias structure and the true flat response per filter.

Every map is computed on the full (possibly binned) readout; a windowed frame takes a slice.
Maps depend on the seed, not on the night, where the hardware does not change between
nights (pixel response, bias structure, dust on the dewar window); dust on a filter moves
with the filter.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "Geometry",
    "bias_pattern",
    "binned_section",
    "illumination",
    "response_map",
]

log = logging.getLogger(__name__)

FULL_NX, FULL_NY = 2198, 2052       # unbinned readout, NAXIS1 x NAXIS2
ILLUMINATED_COLS = (53, 2099)       # 0-based, inclusive: FITS columns 54..2100
ILLUMINATED_ROWS = (20, 2031)       # 0-based, inclusive: the filter's shadow top and bottom
OPTICAL_CENTRE = (1076.5, 1025.5)   # unbinned 0-based x, y


@dataclass(frozen=True)
class Geometry:
    """A readout: binning and optional window (unbinned 1-based x0, y0, nx, ny)."""

    binning: int = 1
    window: tuple[int, int, int, int] | None = None

    @property
    def full_shape(self) -> tuple[int, int]:
        """(ny, nx) of the full readout at this binning."""
        b = self.binning
        return math.ceil(FULL_NY / b), math.ceil(FULL_NX / b)

    @property
    def origin(self) -> tuple[int, int]:
        """0-based (x, y) of this readout's first pixel in the full binned readout."""
        if self.window is None:
            return 0, 0
        return (self.window[0] - 1) // self.binning, (self.window[1] - 1) // self.binning

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) of the array written."""
        if self.window is None:
            return self.full_shape
        return self.window[3] // self.binning, self.window[2] // self.binning

    @property
    def slices(self) -> tuple[slice, slice]:
        """Where this readout sits in full-readout maps."""
        x0, y0 = self.origin
        ny, nx = self.shape
        return slice(y0, y0 + ny), slice(x0, x0 + nx)

    def detwin(self) -> str:
        """DETWIN1: the unbinned window read out."""
        if self.window is None:
            return f"[1:{FULL_NX}, 1:{FULL_NY}]"
        x0, y0, nx, ny = self.window
        return f"[{x0}:{x0 + nx - 1}, {y0}:{y0 + ny - 1}]"

    def unbinned_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Unbinned 0-based coordinates of the full binned readout's pixel centres (x, y)."""
        ny, nx = self.full_shape
        b = self.binning
        x = (np.arange(nx, dtype=np.float32) * b + (b - 1) / 2.0).astype(np.float32)
        y = (np.arange(ny, dtype=np.float32) * b + (b - 1) / 2.0).astype(np.float32)
        return x, y


def binned_section(section: str, binning: int) -> str:
    """A FITS section scaled to a binned readout: the binned pixels wholly inside it."""
    inner = section.strip().strip("[]")
    (x0, x1), (y0, y1) = (tuple(int(v) for v in part.split(":")) for part in inner.split(","))

    def scale(a: int, b: int) -> tuple[int, int]:
        return -(-(a - 1) // binning) + 1, b // binning

    (bx0, bx1), (by0, by1) = scale(x0, x1), scale(y0, y1)
    return f"[{bx0}:{bx1},{by0}:{by1}]"


def _step(z: np.ndarray, width: float) -> np.ndarray:
    """A soft 0→1 step at z = 0 (logistic), so edges look like shadows, not cuts."""
    return (1.0 / (1.0 + np.exp(-np.clip(z / width, -40, 40)))).astype(np.float32)


def illumination(geo: Geometry) -> np.ndarray:
    """Which pixels see light: the useful columns, minus the filter's shadow at top/bottom."""
    x, y = geo.unbinned_centres()
    cols = _step(x - (ILLUMINATED_COLS[0] - 0.5), 0.6) * _step(ILLUMINATED_COLS[1] + 0.5 - x, 0.6)
    # The filter edge is slightly curved: a couple of rows deeper at the corners.
    bow = 2.0 * ((x - OPTICAL_CENTRE[0]) / OPTICAL_CENTRE[0]) ** 2
    bottom = _step(y[:, None] - (ILLUMINATED_ROWS[0] - 0.5 + bow[None, :]), 2.0)
    top = _step(ILLUMINATED_ROWS[1] + 0.5 - bow[None, :] - y[:, None], 2.0)
    light = (cols[None, :] * bottom * top).astype(np.float32)
    light[light < 1e-4] = 0.0          # a logistic never reaches zero; the shadow does
    return light


def _radius(geo: Geometry, centre: tuple[float, float]) -> np.ndarray:
    x, y = geo.unbinned_centres()
    return np.hypot(x[None, :] - centre[0], y[:, None] - centre[1]).astype(np.float32)


def vignetting(geo: Geometry, wheel: str, rotated: bool = False) -> np.ndarray:
    """Large-scale transmission, 1 at the optical centre.

    ALFOSC's own wheel vignettes ~10 % into the corners; the smaller FASU narrow-band
    filters cut the corners off (the lecture's NB flats have ~35 % rms over the trimmed
    area). A filter rotated in its wheel shifts that pattern and its tilted edge throws a
    dark wedge into one corner.
    """
    r = _radius(geo, OPTICAL_CENTRE) / 1000.0
    v = 1.0 - 0.03 * r**2 - 0.012 * r**4
    if wheel == "FB":
        cx, cy = (1100.0, 1000.0) if not rotated else (1230.0, 900.0)
        r0 = 1.07 if not rotated else 0.98
        rf = _radius(geo, (cx, cy)) / 1000.0
        edge = 1.0 / (1.0 + np.exp((rf - r0) / 0.12))
        r_centre = math.hypot(OPTICAL_CENTRE[0] - cx, OPTICAL_CENTRE[1] - cy) / 1000
        centre_edge = 1.0 / (1.0 + math.exp((r_centre - r0) / 0.12))
        v = v * edge / centre_edge
        if rotated:
            x, y = geo.unbinned_centres()
            t = math.radians(30.0)
            d = ((x[None, :] - OPTICAL_CENTRE[0]) * math.cos(t)
                 - (y[:, None] - OPTICAL_CENTRE[1]) * math.sin(t))
            v = v * (1.0 - 0.88 * _step(d - 650.0, 25.0))
    return v.astype(np.float32)


def pixel_response(seed: int, geo: Geometry) -> np.ndarray:
    """The CCD's fixed pixel-to-pixel response: ~0.9 % white, 0.4 % smooth, faint columns."""
    rng = np.random.default_rng([seed, 0, 101, geo.binning])
    ny, nx = geo.full_shape
    white = rng.standard_normal((ny, nx), dtype=np.float32) * np.float32(0.009)
    coarse = rng.standard_normal((24, 24)).astype(np.float32)
    smooth = ndimage.zoom(coarse, (ny / 24, nx / 24), order=3)[:ny, :nx]
    smooth *= np.float32(0.004 / max(float(smooth.std()), 1e-6))
    columns = rng.standard_normal(nx).astype(np.float32) * np.float32(0.0015)
    return (np.float32(1.0) + white + smooth + columns[None, :]).astype(np.float32)


def _add_donuts(out: np.ndarray, geo: Geometry, rng: np.random.Generator, n: int,
                radius: tuple[float, float], depth: tuple[float, float]) -> list[dict]:
    """Multiply out-of-focus dust shadows (rings, darker at the rim) into ``out`` in place."""
    b = geo.binning
    ny, nx = out.shape
    placed = []
    for _ in range(n):
        r_u = float(rng.uniform(*radius))
        xc_u = float(rng.uniform(ILLUMINATED_COLS[0] + 100, ILLUMINATED_COLS[1] - 100))
        yc_u = float(rng.uniform(ILLUMINATED_ROWS[0] + 100, ILLUMINATED_ROWS[1] - 100))
        dep = float(rng.uniform(*depth))
        xc, yc, r = (xc_u - (b - 1) / 2) / b, (yc_u - (b - 1) / 2) / b, r_u / b
        x0, x1 = max(int(xc - 1.3 * r) - 1, 0), min(int(xc + 1.3 * r) + 2, nx)
        y0, y1 = max(int(yc - 1.3 * r) - 1, 0), min(int(yc + 1.3 * r) + 2, ny)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        u = np.hypot(xx - xc, yy - yc) / r
        dip = 0.55 * np.exp(-(((u - 0.85) / 0.12) ** 2)) + 0.45 / (1 + np.exp((u - 0.9) / 0.05))
        out[y0:y1, x0:x1] *= (1.0 - dep * dip).astype(np.float32)
        placed.append({"x": round(xc + 1, 2), "y": round(yc + 1, 2),
                       "radius": round(r, 2), "depth": round(dep, 4)})
    return placed


def response_map(seed: int, geo: Geometry, filter_id: int, wheel: str,
                 rotated: bool = False) -> tuple[np.ndarray, dict]:
    """The true flat response of one filter: illumination x vignetting x pixels x dust.

    Normalised to 1 at the optical centre on a clean pixel; 0 where no light falls.
    Returns the map and a description of its parts for the truth file.
    """
    response = pixel_response(seed, geo)
    window_dust = _add_donuts(response, geo, np.random.default_rng([seed, 0, 103]), 5,
                              (45.0, 75.0), (0.02, 0.04))
    filter_dust = _add_donuts(response, geo, np.random.default_rng([seed, 0, 104, filter_id]),
                              4, (12.0, 30.0), (0.04, 0.08))
    response *= vignetting(geo, wheel, rotated)
    response *= illumination(geo)
    return response, {"window_dust": window_dust, "filter_dust": filter_dust,
                      "wheel": wheel, "rotated": rotated}


def bias_pattern(seed: int, geo: Geometry) -> np.ndarray:
    """The fixed 2-D bias structure (ADU, zero mean over the useful area): column offsets,
    a gentle gradient along the columns, amplifier glow at the read-out corner, two warm
    columns. A master bias should recover it."""
    rng = np.random.default_rng([seed, 0, 102, geo.binning])
    ny, nx = geo.full_shape
    x, y = geo.unbinned_centres()
    columns = ndimage.uniform_filter1d(rng.normal(0, 0.6, nx), 3).astype(np.float32)
    rows = (1.5 * (1 - y / FULL_NY)).astype(np.float32)
    glow = (4.0 * np.exp(-x / 30.0)).astype(np.float32)
    pattern = columns[None, :] + rows[:, None] + glow[None, :]
    for col_u in rng.integers(300, 2000, 2):
        pattern[:, int(col_u) // geo.binning] += 6.0
    useful = pattern[ILLUMINATED_ROWS[0] // geo.binning:ILLUMINATED_ROWS[1] // geo.binning,
                     ILLUMINATED_COLS[0] // geo.binning:ILLUMINATED_COLS[1] // geo.binning]
    return (pattern - np.float32(useful.mean())).astype(np.float32)
