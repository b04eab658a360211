"""The small observatory's night as data: what was taken, when, with which program's habits.

Why two programs in one night: real archives mix them (a dark library shot with MaxIm DL,
the night's sequences with N.I.N.A.), and a generic profile must read both. Each frame has
a ``style`` ('maxim' or 'nina') that decides its IMAGETYP, SWCREATE, filter spelling and
bias exposure; even nights swap the two. Folders and names are N.I.N.A.'s throughout.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from nota.simulate.sky import FIELDS, Field, Galaxy

__all__ = ["Exposure", "SITE", "TARGETS", "UTC_OFFSET_H", "night_date", "night_plan"]

log = logging.getLogger(__name__)

FIRST_NIGHT = date(2026, 11, 30)
UTC_OFFSET_H = 1.0          # CET: N.I.N.A. names files by local time, DATE-OBS is UTC
DOWNLOAD_S = 2.0            # readout, download and save
DITHER_S = 12.0             # dither and settle between lights
SLEW_S = 90.0
SET_TEMP = -10.0
WARM_TEMP = -5.0            # the one dark set taken warmer, for temperature matching
# The Universidad Complutense's observatory in Madrid (the lecture's home), 0.36 m telescope.
SITE = {"name": "Observatorio UCM", "latitude": 40.4511, "longitude": -3.7264,
        "elevation": 650.0, "SITELAT": "+40 27 04", "SITELONG": "-03 43 35"}

IMAGETYP = {
    "maxim": {"BIAS": "Bias Frame", "DARK": "Dark Frame", "FLAT": "Flat Field",
              "DARKFLAT": "Dark Frame", "LIGHT": "Light Frame"},
    "nina": {"BIAS": "BIAS", "DARK": "DARK", "FLAT": "FLAT", "DARKFLAT": "DARKFLAT",
             "LIGHT": "LIGHT"},
}
SOFTWARE = {"maxim": "MaxIm DL Version 6.40", "nina": "N.I.N.A. 3.1.2.9001"}
FILTER_NAMES = {"maxim": {"Ha": "Halpha"}, "nina": {}}    # what each program calls a filter
# Which program took each part of an odd night (even nights swap them).
_STYLE = {"bias": "maxim", "dark": "maxim", "dark_warm": "nina", "flat": "maxim",
          "darkflat": "nina", "NGC7331": "nina", "NGC891": "maxim", "M37": "nina",
          "standard": "maxim", "grism": "nina"}


def _hms(h: float, m: float, s: float) -> float:
    return 15.0 * (h + m / 60 + s / 3600)


def _dms(d: float, m: float, s: float) -> float:
    return math.copysign(abs(d) + m / 60 + s / 3600, d)


TARGETS: dict[str, Field] = {
    f.key: f for f in (
        Field("NGC7331", "NGC 7331", _hms(22, 37, 4.0), _dms(34, 24, 56), 260, 11.0,
              galaxy=Galaxy(9.4, 38.0, 0.40, 171.0, 0.35, "NII_658", 15.8, 16)),
        Field("NGC891", "NGC 891", _hms(2, 22, 33.4), _dms(42, 20, 57), 300, 10.5,
              galaxy=Galaxy(9.3, 45.0, 0.22, 22.0, 0.12, "NII_658", 16.5, 8)),
        Field("M37", "M 37", _hms(5, 52, 18.0), _dms(32, 33, 12), 900, 9.0),
        Field("BD+75d325", "BD+75 325", FIELDS["BD+75d325"].ra_deg,
              FIELDS["BD+75d325"].dec_deg, 120, 12.0, "BD+75 325"),
    )
}


@dataclass(frozen=True)
class Exposure:
    """One frame as planned: enough to name it, make its pixels, header and truth."""

    seq: int
    kind: str                       # bias, dark, sky_flat, science, standard, spectrum
    folder: str                     # N.I.N.A.'s frame-type folder: BIAS, DARK, ...
    style: str                      # 'maxim' or 'nina'
    exptime: float
    start: datetime                 # UTC
    set_temp: float
    ccd_temp: float                 # measured at the start, as written
    filter: str | None = None       # canonical name: V, R, Ha, Grism
    field: str | None = None        # key of TARGETS
    object: str | None = None
    level: float | None = None      # flats: ADU above bias at the optical centre
    offset: tuple[float, float] = (0.0, 0.0)     # dither east, north (arcsec)
    counter: int = 0                # N.I.N.A.'s frame number within its folder

    @property
    def imagetyp(self) -> str:
        return IMAGETYP[self.style][self.folder]

    @property
    def software(self) -> str:
        return SOFTWARE[self.style]

    @property
    def filter_written(self) -> str | None:
        """FILTER as the program writes it (MaxIm's wheel calls Ha 'Halpha')."""
        if self.filter is None:
            return None
        return FILTER_NAMES[self.style].get(self.filter, self.filter)

    @property
    def local_start(self) -> datetime:
        return self.start + timedelta(hours=UTC_OFFSET_H)

    @property
    def filename(self) -> str:
        """N.I.N.A.'s default: FOLDER/date_time_filter_temperature_exposures_counter.fits."""
        t = self.local_start
        return (f"{self.folder}/{t:%Y-%m-%d_%H-%M-%S}_{self.filter_written or ''}_"
                f"{self.ccd_temp:.2f}_{self.exptime:.2f}s_{self.counter:04d}.fits")


def night_date(night: int) -> date:
    """Local date on which night ``night`` (1-based) began."""
    return FIRST_NIGHT + timedelta(days=night - 1)


class _Sequencer:
    """Start times, temperatures and counters: a frame starts when the previous one is saved."""

    def __init__(self, night: int, rng: np.random.Generator) -> None:
        day = night_date(night)
        self.midnight = datetime(day.year, day.month, day.day)
        self.now = self.midnight
        self.night, self.rng = night, rng
        self.frames: list[Exposure] = []
        self.counters: dict[str, int] = {}
        self.field: str | None = None

    def at(self, hours_ut: float) -> None:
        self.now = max(self.now, self.midnight + timedelta(hours=hours_ut))

    def style(self, part: str) -> str:
        style = _STYLE[part]
        if self.night % 2 == 0:
            style = "nina" if style == "maxim" else "maxim"
        return style

    def take(self, part: str, kind: str, folder: str, exptime: float, *,
             set_temp: float = SET_TEMP, pause: float = 0.0, **extra: object) -> None:
        fld = extra.get("field")
        if fld is not None and fld != self.field:
            self.now += timedelta(seconds=SLEW_S)
            self.field = fld  # type: ignore[assignment]
        jitter = float(np.clip(self.rng.normal(0.0, 0.12), -0.3, 0.3))
        self.counters[folder] = self.counters.get(folder, 0) + 1
        self.frames.append(Exposure(
            len(self.frames) + 1, kind, folder, self.style(part), exptime, self.now,
            set_temp, round(set_temp + jitter, 1), counter=self.counters[folder],
            **extra))  # type: ignore[arg-type]
        self.now += timedelta(seconds=exptime + DOWNLOAD_S + pause)


_DITHERS = ((0.0, 0.0), (25.0, 15.0), (-20.0, 30.0), (15.0, -25.0), (-30.0, -10.0))
FLAT_EXPTIME = {"Ha": 20.0, "V": 3.0, "R": 2.0}     # N.I.N.A.'s flat wizard, fixed per filter


def _calibrations_evening(seq: _Sequencer) -> None:
    """Afternoon biases; twilight flats (narrow band first, while the sky is brightest);
    their darks at the flats' exposures (DARKFLAT)."""
    seq.at(15.2)
    style = seq.style("bias")
    for _ in range(20):
        seq.take("bias", "bias", "BIAS", 0.0 if style == "maxim" else 3e-5)
    seq.at(16.25)
    for band, t in FLAT_EXPTIME.items():
        for i in range(7):
            level = float(30000.0 * (1 - 0.03 * i) * (1 + seq.rng.normal(0, 0.02)))
            obj = "Twilight flat" if seq.style("flat") == "maxim" else "FlatWizard"
            seq.take("flat", "sky_flat", "FLAT", t, filter=band, level=round(level, 1),
                     object=obj)
    seq.at(16.75)
    for band, t in FLAT_EXPTIME.items():
        for _ in range(5):
            seq.take("darkflat", "dark", "DARKFLAT", t, filter=band)


def _lights(seq: _Sequencer) -> None:
    """The night's targets, dithered, then the standard and its spectra through the grism."""
    def series(part: str, key: str, band: str, t: float, n: int, kind: str = "science") -> None:
        for i in range(n):
            seq.take(part, kind, "LIGHT", t, filter=band, field=key,
                     object=TARGETS[key].name, offset=_DITHERS[i % len(_DITHERS)],
                     pause=DITHER_S)

    seq.at(18.3)
    series("NGC7331", "NGC7331", "Ha", 300.0, 5)
    seq.at(20.5)
    series("NGC891", "NGC891", "R", 300.0, 5)
    series("NGC891", "NGC891", "V", 300.0, 5)
    seq.at(24.5)
    series("M37", "M37", "V", 120.0, 5)
    series("M37", "M37", "R", 120.0, 5)
    seq.at(26.5)
    series("standard", "BD+75d325", "V", 2.0, 3, "standard")
    series("standard", "BD+75d325", "R", 2.0, 3, "standard")
    series("grism", "BD+75d325", "Grism", 120.0, 3, "spectrum")


def _darks_morning(seq: _Sequencer) -> None:
    """The dark library after closing: the lights' exposures and one longer, then one set
    warmer (the cooler at -5 C) at 300 s."""
    seq.at(30.0)
    for t, n in ((300.0, 10), (120.0, 10), (600.0, 5)):
        for _ in range(n):
            seq.take("dark", "dark", "DARK", t)
    seq.at(33.8)
    for _ in range(5):
        seq.take("dark_warm", "dark", "DARK", 300.0, set_temp=WARM_TEMP)


def night_plan(night: int, rng: np.random.Generator) -> tuple[Exposure, ...]:
    """The frames of night ``night`` in time order (``rng``: temperatures and flat levels)."""
    seq = _Sequencer(night, rng)
    _calibrations_evening(seq)
    _lights(seq)
    _darks_morning(seq)
    return tuple(seq.frames)
