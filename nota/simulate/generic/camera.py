"""The small observatory's camera: a cooled CMOS sensor on a 0.36 m telescope, and its maps.

Why a second camera: every cooled CMOS camera needs darks, which ALFOSC never did. The
sensor has no overscan, a bias pedestal set by OFFSET, dark current that doubles every
``DOUBLING_C`` degrees, hot pixels, amplifier glow in one corner and a vignetted flat.
The maps depend on the seed only (the hardware does not change between nights).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nota.simulate.detector import Geometry, pixel_response

__all__ = [
    "FILTERS",
    "Sensor",
    "bias_pattern",
    "dark_factor",
    "dark_rate_map",
    "response_maps",
]

log = logging.getLogger(__name__)

FULL_NX, FULL_NY = 3008, 2008      # a 3008 x 2008 region of interest of the sensor
PIXEL_UM = 4.63
FOCAL_MM = 2737.0                  # C14 EdgeHD with its 0.7x reducer
APERTURE_MM = 356.0
REFERENCE_C = -10.0                # where the dark-rate map is given
DOUBLING_C = 6.0                   # dark current doubles every 6 degrees C
DARK_RATE = 0.01                   # e-/s per unbinned pixel at REFERENCE_C, away from glow
N_HOT = 300
SATURATION = 65535
# Filters in the wheel, by canonical name (the flat response of each differs by its dust).
FILTERS = ("V", "R", "Ha", "Grism")


@dataclass(frozen=True)
class Sensor:
    """One readout mode of the camera: ``binning`` 1 (full size) or 4 (``--small``)."""

    binning: int = 1
    egain: float = 0.80            # e-/ADU at the gain setting below
    gain_setting: int = 100        # GAIN as N.I.N.A. writes it: the driver's dial
    offset_setting: int = 50       # OFFSET: the pedestal is 10 ADU per step
    read_noise: float = 1.8        # e- per readout pixel

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) of the array written."""
        return FULL_NY // self.binning, FULL_NX // self.binning

    @property
    def bias_level(self) -> float:
        return 10.0 * self.offset_setting

    @property
    def pixel_um(self) -> float:
        """XPIXSZ: the binned pixel size."""
        return PIXEL_UM * self.binning

    @property
    def pixel_scale(self) -> float:
        """arcsec per readout pixel."""
        return 206.265 * self.pixel_um / FOCAL_MM

    @property
    def dark_rate(self) -> float:
        """Mean dark current (e-/s per readout pixel) at REFERENCE_C: charge of b x b pixels."""
        return DARK_RATE * self.binning**2

    def cosmic_area(self) -> float:
        """The sensor's area as a fraction of ALFOSC's CCD, for physics.cosmic_rays."""
        return (FULL_NX * FULL_NY * PIXEL_UM**2) / (2198 * 2052 * 13.5**2)


@dataclass(frozen=True)
class _SensorGeometry(Geometry):
    """ALFOSC's Geometry with this sensor's shape, so its pixel-response code can be reused."""

    ny: int = FULL_NY
    nx: int = FULL_NX

    @property
    def full_shape(self) -> tuple[int, int]:
        return self.ny, self.nx


def dark_factor(temperature: float) -> float:
    """How many times the REFERENCE_C dark current a sensor at ``temperature`` collects."""
    return 2.0 ** ((temperature - REFERENCE_C) / DOUBLING_C)


def _glow(sensor: Sensor) -> tuple[np.ndarray, dict[str, Any]]:
    """Amplifier glow in the bottom-right corner (e-/s per pixel at REFERENCE_C)."""
    ny, nx = sensor.shape
    peak = 20.0 * sensor.dark_rate
    length = 0.04 * nx
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    d = np.hypot(xx - (nx - 1), yy)
    return (np.float32(peak) * np.exp(-d / np.float32(length))).astype(np.float32), {
        "corner": "bottom right (x = NAXIS1, y = 1)", "peak_rate": round(peak, 6),
        "scale_px": round(length, 3), "profile": "peak * exp(-distance / scale)"}


def dark_rate_map(seed: int, sensor: Sensor) -> tuple[np.ndarray, dict[str, Any]]:
    """Dark current per pixel at REFERENCE_C (e-/s): a 10 % spread, the glow, hot pixels.

    Hot pixels are a few hundred with rates 10-1000 x the mean, log-uniform; they scale with
    temperature as the rest. Returns the map and its description (hot pixels 1-based x, y).
    """
    rng = np.random.default_rng([seed, 0, 301, sensor.binning])
    ny, nx = sensor.shape
    base = rng.lognormal(0.0, 0.1, (ny, nx)).astype(np.float32)
    base *= np.float32(sensor.dark_rate / float(base.mean()))
    glow, glow_info = _glow(sensor)
    rates = base + glow
    flat_index = rng.choice(ny * nx, N_HOT, replace=False)
    hot = (sensor.dark_rate * 10.0 ** rng.uniform(1.0, 3.0, N_HOT)).astype(np.float32)
    rates.ravel()[flat_index] += hot
    order = np.argsort(flat_index)
    hot_pixels = [{"x": int(i % nx) + 1, "y": int(i // nx) + 1, "rate": round(float(r), 5)}
                  for i, r in zip(flat_index[order], hot[order])]
    return rates.astype(np.float32), {
        "mean_rate": round(sensor.dark_rate, 6), "spread": "lognormal, sigma 0.1",
        "glow": glow_info, "hot_pixels": hot_pixels}


def bias_pattern(seed: int, sensor: Sensor) -> np.ndarray:
    """The fixed bias structure (ADU, zero mean): column offsets and a faint row gradient."""
    rng = np.random.default_rng([seed, 0, 302, sensor.binning])
    ny, nx = sensor.shape
    columns = rng.normal(0.0, 0.8, nx).astype(np.float32)
    rows = np.linspace(-0.6, 0.6, ny, dtype=np.float32)
    pattern = columns[None, :] + rows[:, None]
    return (pattern - np.float32(pattern.mean())).astype(np.float32)


def _vignetting(sensor: Sensor) -> np.ndarray:
    """Reducer vignetting: 1 at the optical centre (a little right of and above the middle),
    about 0.72 in the far corners."""
    ny, nx = sensor.shape
    cx, cy = 0.53 * (nx - 1), 0.52 * (ny - 1)
    half_diagonal = math.hypot(nx / 2, ny / 2)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    r = np.hypot(xx - np.float32(cx), yy - np.float32(cy)) / np.float32(half_diagonal)
    return (1.0 - 0.18 * r**2 - 0.08 * r**4).astype(np.float32)


def _dust(out: np.ndarray, binning: int, rng: np.random.Generator, n: int, radius: float,
          depth: tuple[float, float]) -> list[dict[str, float]]:
    """Out-of-focus dust rings multiplied into ``out`` in place. Drawn in unbinned pixels,
    so the full-size and the binned sensor carry the same dust; listed 1-based, readout."""
    ny, nx = out.shape
    placed = []
    for _ in range(n):
        r_u = float(radius * rng.uniform(0.7, 1.3))
        xc_u = float(rng.uniform(r_u, FULL_NX - r_u))
        yc_u = float(rng.uniform(r_u, FULL_NY - r_u))
        dep = float(rng.uniform(*depth))
        xc, yc = (xc_u - (binning - 1) / 2) / binning, (yc_u - (binning - 1) / 2) / binning
        r = r_u / binning
        x0, x1 = max(int(xc - 1.3 * r), 0), min(int(xc + 1.3 * r) + 2, nx)
        y0, y1 = max(int(yc - 1.3 * r), 0), min(int(yc + 1.3 * r) + 2, ny)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        u = np.hypot(xx - xc, yy - yc) / r
        ring = 0.5 * np.exp(-(((u - 0.85) / 0.12) ** 2)) + 0.5 / (1 + np.exp((u - 0.9) / 0.05))
        out[y0:y1, x0:x1] *= (1.0 - dep * ring).astype(np.float32)
        placed.append({"x": round(xc + 1, 2), "y": round(yc + 1, 2), "radius": round(r, 2),
                       "depth": round(dep, 4)})
    return placed


def response_maps(seed: int, sensor: Sensor) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The true flat response per filter: pixels x vignetting x dust (sensor window + filter).

    Normalised to 1 at the optical centre of a clean pixel, as the ALFOSC maps are.
    """
    b = sensor.binning
    ny, nx = sensor.shape
    pixels = pixel_response(seed, _SensorGeometry(b, None, ny, nx))
    common = pixels * _vignetting(sensor)
    window_dust = _dust(common, b, np.random.default_rng([seed, 0, 303]), 4, 160.0,
                        (0.01, 0.03))
    maps, parts = {}, {"window_dust": window_dust, "filter_dust": {}}
    for i, name in enumerate(FILTERS):
        response = common.copy()
        parts["filter_dust"][name] = _dust(response, b, np.random.default_rng([seed, 0, 304, i]),
                                           3, 60.0, (0.03, 0.06))
        maps[name] = response
    return maps, parts
