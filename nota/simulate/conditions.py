"""A night's conditions: zero points, extinction, seeing, sky brightness and bias level.

Drawn once per night from the seed, so a reduction can be checked against the values that
made the frames. Per-frame values (seeing, sky) are smooth functions of time plus a little
frame-to-frame scatter, as on a real night.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources

import numpy as np

from nota.instruments import load_profile

__all__ = [
    "BANDS",
    "NightConditions",
    "extinction_at",
    "night_conditions",
    "seeing_at",
    "sky_rate",
]

log = logging.getLogger(__name__)

# Filter short names the simulator knows, with their NOT ids.
BANDS = {74: "B", 75: "V", 76: "R", 78: "NII_658", 49: "661_5"}
# AB magnitude giving 1 ADU/s on an unbinned readout, outside the atmosphere. Estimated for
# a 2.56 m telescope, ~30 % throughput and 0.73 e-/ADU; the lecture's standards agree.
BASE_ZERO_POINT = {"B": 25.55, "V": 25.70, "R": 25.35, "NII_658": 21.45, "661_5": 21.80}
# Sky per unbinned pixel (ADU/s): dark sky, and what a first-quarter moon adds until it sets.
DARK_SKY = {"B": 0.9, "V": 2.0, "R": 3.5, "NII_658": 0.05, "661_5": 0.06}
MOON_SKY = {"B": 5.0, "V": 9.0, "R": 16.5, "NII_658": 0.25, "661_5": 0.28}
BIAS_LEVEL = 358.0
# Night 1's ten afternoon biases: the lecture's truncated means (353, 355, 357, 358...).
NIGHT1_BIAS_LEVELS = (353.3, 355.3, 357.3, 358.3, 358.3, 358.3, 358.3, 358.3, 358.3, 358.3)
BINNED_PIXELS = 16     # a 4x4 binned pixel covers 16 unbinned ones


@dataclass(frozen=True)
class NightConditions:
    """What the sky and the detector were like on one night."""

    night: int
    date: date
    seed: int
    small: bool
    zero_points: dict[str, float]     # AB mag for 1 ADU/s in this readout's pixels
    extinction: dict[str, float]      # mag/airmass
    bias_level: float                 # ADU, the level frames settle at
    seeing: float                     # median FWHM, arcsec
    seeing_phase: float
    gain: float                       # e-/ADU
    read_noise: float                 # e-

    @property
    def binning(self) -> int:
        return 4 if self.small else 1

    @property
    def read_noise_adu(self) -> float:
        return self.read_noise / self.gain


def _extinction_curve() -> tuple[np.ndarray, np.ndarray]:
    text = resources.files("nota").joinpath("data", "lapalma_extinction.dat").read_text()
    rows = [line.split() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    table = np.array([[float(a), float(b)] for a, b, *_ in rows])
    return table[:, 0], table[:, 1]


def extinction_at(wavelength_A: float) -> float:
    """La Palma extinction (mag/airmass) at a wavelength, from King (1985)."""
    w, k = _extinction_curve()
    return float(np.interp(wavelength_A, w, k))


def night_conditions(seed: int, night: int, night_day: date, small: bool) -> NightConditions:
    """Draw a night's zero points (±0.03), extinction (±0.02), seeing and bias level."""
    rng = np.random.default_rng([seed, night, 0])
    profile = load_profile("alfosc")
    shift = 2.5 * math.log10(BINNED_PIXELS) if small else 0.0
    zero_points, extinction = {}, {}
    for fid, band in BANDS.items():
        centre_A = profile.filters[fid].centre_nm * 10.0
        zero_points[band] = round(BASE_ZERO_POINT[band] + rng.uniform(-0.03, 0.03) - shift, 4)
        extinction[band] = round(max(0.01, extinction_at(centre_A) + rng.uniform(-0.02, 0.02)), 4)
    bias = BIAS_LEVEL if night == 1 else round(float(BIAS_LEVEL + rng.normal(0, 2.0)), 2)
    return NightConditions(
        night=night, date=night_day, seed=seed, small=small,
        zero_points=zero_points, extinction=extinction, bias_level=bias,
        seeing=round(float(rng.uniform(0.85, 1.15)), 3),
        seeing_phase=float(rng.uniform(0, 2 * math.pi)),
        gain=float(profile.detector["gain"]), read_noise=float(profile.detector["read_noise"]),
    )


def _hours(moment: datetime, day: date) -> float:
    """Hours since 0h UT of the night's date (past midnight runs on beyond 24)."""
    return (moment - datetime(day.year, day.month, day.day)).total_seconds() / 3600.0


def seeing_at(cond: NightConditions, moment: datetime, rng: np.random.Generator) -> float:
    """FWHM (arcsec) at a time: slow wander of ±15 % around the night's median, plus jitter."""
    h = _hours(moment, cond.date)
    slow = 1.0 + 0.15 * math.sin(2 * math.pi * h / 7.0 + cond.seeing_phase)
    return float(np.clip(cond.seeing * slow * (1 + rng.normal(0, 0.03)), 0.7, 1.5))


def twilight_factor(cond: NightConditions, moment: datetime) -> float:
    """How many times the night sky the twilight adds (the R flats at 20:25 UT saw ~90x)."""
    h = _hours(moment, cond.date)
    return 90.0 * math.exp(-(h - 20.5) * 3600.0 / 300.0) if h > 19.0 else 1e4


def sky_rate(cond: NightConditions, band: str, moment: datetime,
             rng: np.random.Generator) -> float:
    """Sky in ADU/s per pixel: dark sky, the moon until it sets (~02:45 UT), twilight."""
    h = _hours(moment, cond.date)
    moon = float(np.clip((26.75 - h) / 1.25, 0.0, 1.0))   # sets between 01:30 and 02:45
    base = DARK_SKY[band] + MOON_SKY[band] * moon
    return float(base * (1.0 + twilight_factor(cond, moment)) * (1 + rng.normal(0, 0.04)))
