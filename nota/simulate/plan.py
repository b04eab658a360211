"""The night's observing sequence as data: what the observers took, when, and with what.

Night 1 follows the logbook of 2008-04-12 (NOT/ALFOSC, PI Gil de Paz) frame by frame,
quirks included: the over-exposed NB#49 dome flat, the NB#49 dome flats with the filter
rotated in its wheel, the 800x800 focus window, the 'HZ44 #79' typo. Later nights keep the
shape of the plan and drop the quirks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import numpy as np

__all__ = ["FILTER_WHEEL", "FramePlan", "KINDS", "night_date", "night_plan", "frame_filename"]

log = logging.getLogger(__name__)

KINDS = ("bias", "dome_flat", "sky_flat", "focus", "standard", "science")

# Which wheel holds a filter: the broad bands sit in ALFOSC's wheel, the narrow bands in
# FASU wheel B (the header writes the filter number in that wheel's ID keyword).
FILTER_WHEEL = {74: "AL", 75: "AL", 76: "AL", 49: "FB", 78: "FB"}

FIRST_NIGHT = date(2008, 4, 12)
READOUT_S = 38.0        # full unbinned readout, ALFOSC 2008
SETUP_S = 12.0          # between two frames of a series
SLEW_S = 150.0          # a new target
# The focus window: unbinned 1-based origin and size (origin-1 a multiple of 4 so the
# binned readout covers it exactly).
FOCUS_WINDOW = (701, 629, 800, 800)


@dataclass(frozen=True)
class FramePlan:
    """One exposure as planned: enough to make its pixels, header and truth."""

    seq: int
    object: str
    kind: str
    exptime: float
    start: datetime                     # UTC, start of exposure
    filter_id: int | None               # NOT filter number in the beam, None for bias
    field: str | None = None            # key of sky.FIELDS the telescope points at
    level: float | None = None          # flats: counts above bias at the field centre
    flags: tuple[str, ...] = ()
    window: tuple[int, int, int, int] | None = None   # unbinned x0, y0 (1-based), nx, ny
    focus: float = 1.0                  # PSF width multiplier (focus series)
    offset: tuple[float, float] = (0.0, 0.0)          # pointing offset east, north (arcsec)

    @property
    def imagetyp(self) -> str:
        return "BIAS" if self.kind == "bias" else "OBJECT"

    @property
    def on_sky(self) -> bool:
        return self.field is not None


def night_date(night: int) -> date:
    """Local date on which night ``night`` (1-based) began."""
    return FIRST_NIGHT + timedelta(days=night - 1)


def frame_filename(night: int, seq: int) -> str:
    """ALFOSC's name: AL + r (2008) + d (April) + day + 4-digit sequence."""
    return f"ALrd{night_date(night).day:02d}{seq:04d}.fits"


class _Clock:
    """Start times for a sequence: a frame starts when the previous one is read out."""

    def __init__(self, day: date) -> None:
        self.day = day
        self.now = datetime(day.year, day.month, day.day)
        self.field: str | None = None

    def at(self, hours: float) -> None:
        self.now = max(self.now, datetime(self.day.year, self.day.month, self.day.day)
                       + timedelta(hours=hours))

    def take(self, exptime: float, fld: str | None) -> datetime:
        if fld is not None and fld != self.field:
            self.now += timedelta(seconds=SLEW_S)
        self.field = fld if fld is not None else self.field
        start = self.now
        self.now += timedelta(seconds=exptime + READOUT_S + SETUP_S)
        return start


_DITHERS = ((0.0, 0.0), (9.0, 6.0), (-7.0, 10.0))

# What the observers typed in OBJECT for each standard and filter.
_STANDARD_TEXT = {
    ("HZ44", 76): "HZ44 R", ("HZ44", 78): "HZ44 #78", ("HZ44", 49): "HZ44 #49",
    ("BD+75d325", 76): "BD+75d325 R", ("BD+75d325", 78): "BD+75d325 #78",
    ("BD+75d325", 49): "BD+75d325 #49",
    ("Feige34", 76): "Feige34 R", ("Feige34", 78): "Feige34 #78",
    ("Feige34", 49): "Feige34 #49",
}
# Exposure times (s) per standard and filter: ~20-40 kADU peaks in 1" seeing.
_STANDARD_EXPTIME = {
    ("HZ44", 76): 5.0, ("HZ44", 78): 50.0, ("HZ44", 49): 60.0,
    ("BD+75d325", 76): 0.5, ("BD+75d325", 78): 30.0, ("BD+75d325", 49): 25.0,
    ("Feige34", 76): 2.0, ("Feige34", 78): 40.0, ("Feige34", 49): 40.0,
}


def night_plan(night: int, rng: np.random.Generator) -> tuple[FramePlan, ...]:
    """The frames of night ``night`` in order; ``rng`` varies flat levels on later nights."""
    quirks = night == 1
    clock = _Clock(night_date(night))
    frames: list[FramePlan] = []

    def add(obj: str, kind: str, exptime: float, filter_id: int | None,
            fld: str | None = None, **extra: object) -> None:
        start = clock.take(exptime, fld)
        frames.append(FramePlan(len(frames) + 1, obj, kind, exptime, start, filter_id,
                                fld, **extra))  # type: ignore[arg-type]

    def vary(level: float) -> float:
        return level if quirks else float(level * (1 + rng.normal(0, 0.06)))

    # Afternoon calibrations --------------------------------------------------- 001-043
    clock.at(17.42)
    for _ in range(10):
        add("Bias afternoon", "bias", 0.0, None)
    clock.at(17.75)
    for _ in range(10):
        add("Dome Flat R", "dome_flat", 1.0, 76, level=vary(21000.0))
    add("Dome Flat NB#78", "dome_flat", 10.0, 78, level=vary(9000.0), flags=("too_faint",))
    if quirks:
        add("Dome Flat NB#49", "dome_flat", 30.0, 49, level=39000.0, flags=("too_bright",))
    else:
        add("Dome Flat NB#49", "dome_flat", 20.0, 49, level=vary(26000.0))
    for _ in range(10):
        add("Dome Flat NB#78", "dome_flat", 30.0, 78, level=vary(24000.0))
    for _ in range(10):
        add("Dome Flat NB#49", "dome_flat", 20.0, 49, level=vary(26000.0),
            flags=("rotated_filter",) if quirks else ())
    add("Dome Flat NB#49", "dome_flat", 10.0, 49, level=vary(13000.0))

    # Evening twilight flats: the logbook's times and counts ------------------- 044-062
    clock.at(20.02)
    nb78 = ((0.1, 3000), (1.199, 11000), (3.5, 27000), (5.0, 30000), (7.5, 29000),
            (11.0, 32000), (17.0, 31000))
    for i, (t, level) in enumerate(nb78):
        add("Sky Flat evening", "sky_flat", t, 78, "blank1", level=vary(level),
            flags=("too_faint",) if level < 15000 else (), offset=(12.0 * i, -8.0 * i))
    nb49 = ((18.0, 30000), (27.0, 30000), (43.0, 28000), (10.0, 18000), (22.0, 24000),
            (33.0, 24000))
    for i, (t, level) in enumerate(nb49):
        fld = "blank1" if i < 2 else "blank2"      # 053: "a otro blank field"
        add("Sky Flat evening", "sky_flat", t, 49, fld, level=vary(level),
            offset=(-15.0 * i, 10.0 * i))
    r_flats = ((2.5, 26000), (3.3, 24000), (4.9, 27000), (7.0, 27000), (10.0, 28000),
               (15.0, 27000))
    # The last two R flats catch blank2's star; earlier offsets keep it off the detector.
    r_offsets = ((0.0, 0.0), (-20.0, 20.0), (20.0, -20.0), (-30.0, -10.0),
                 (150.0, 40.0), (185.0, -70.0))
    for (t, level), off in zip(r_flats, r_offsets):
        flags = ("star_in_flat",) if off[0] > 100 else ()
        add("Sky Flat evening", "sky_flat", t, 76, "blank2", level=vary(level),
            flags=flags, offset=off)

    # Focus: a windowed readout, then HZ44 through focus ------------------------ 063-078
    # 063 is part of a focus series, but its OBJECT says sky flat: it is one, of the wrong
    # shape, and quality control must keep it out of the R flat (as the lecture does).
    add("Sky Flat evening", "sky_flat", 3.0, 76, "blank2", level=vary(5500.0),
        flags=("window",), window=FOCUS_WINDOW, offset=(185.0, -70.0))
    focus_series = (
        (76, 2.0, 1.9), (76, 2.0, 1.5), (76, 2.0, 1.2), (78, 30.0, 1.05), (78, 30.0, 1.0),
        (76, 2.0, 1.0), (76, 2.0, 1.1), (76, 2.0, 1.3), (76, 2.0, 1.6),
        (78, 20.0, 1.25), (78, 20.0, 1.0), (76, 3.0, 1.0), (76, 3.0, 1.05), (76, 3.0, 1.0),
        (76, 3.0, 1.1),
    )
    for filter_id, t, focus in focus_series:
        add("HZ44 focusing", "focus", t, filter_id, "HZ44", focus=focus)

    def standards(order: tuple[tuple[str, int], ...], typo_first: bool = False) -> None:
        for i, (fld, filter_id) in enumerate(order):
            text = _STANDARD_TEXT[(fld, filter_id)]
            flags: tuple[str, ...] = ()
            if typo_first and i == 0:
                text, flags = "HZ44 #79", ("object_typo",)   # FBFLTID says 78
            add(text, "standard", _STANDARD_EXPTIME[(fld, filter_id)], filter_id, fld,
                flags=flags)

    def science(text: str, fld: str, filter_id: int, exptimes: tuple[float, ...],
                flags: tuple[str, ...] = ()) -> None:
        for i, t in enumerate(exptimes):
            extra = ("interrupted",) if t < 300 and "3x900s" in text else ()
            add(text, "science", t, filter_id, fld, offset=_DITHERS[i % 3],
                flags=flags + extra)

    # Early standards ---------------------------------------------------------- 079-087
    clock.at(21.0)
    standards((("HZ44", 78), ("HZ44", 49), ("HZ44", 76), ("BD+75d325", 76),
               ("BD+75d325", 78), ("BD+75d325", 49), ("Feige34", 76), ("Feige34", 49),
               ("Feige34", 78)), typo_first=quirks)

    # The night's science, with standards at mid-night and before dawn --------- 088-134
    science("C3982 #49 3x900s", "NGC3982", 49, (900.0,) * 3)
    science("C3982 R 3x300s", "NGC3982", 76, (300.0,) * 3)
    science("GC4496A #49 3x900s", "NGC4496A", 49, (900.0,) * 3)
    standards((("Feige34", 78),))
    science("C3982 #78 3x900s", "NGC3982", 78, (900.0,) * 3)
    standards((("HZ44", 78), ("HZ44", 49)))
    science("GC4496A R 3x300s", "NGC4496A", 76, (300.0,) * 3, ("saturated_star",))
    science("GC4496A #78 3x900s", "NGC4496A", 78, (900.0,) * 3)
    standards((("HZ44", 76), ("Feige34", 76), ("Feige34", 49), ("BD+75d325", 76)))
    science("C4941 #78 3x900s", "NGC4941", 78, (900.0,) * 3)
    science("C4941 #49 3x900s", "NGC4941", 49, (900.0,) * 3)
    science("C5363 #78 3x900s", "NGC5363", 78, (900.0, 900.0, 900.0, 180.0))
    standards((("Feige34", 76), ("Feige34", 78), ("Feige34", 49)))
    science("C5363 #49 3x900s", "NGC5363", 49, (900.0,) * 3)
    standards((("BD+75d325", 76), ("BD+75d325", 78), ("BD+75d325", 49), ("HZ44", 76),
               ("HZ44", 78), ("HZ44", 49)))
    if not quirks:
        frames = [replace(f, flags=tuple(x for x in f.flags if x != "saturated_star"))
                  if f.field == "NGC4496A" else f for f in frames]
    return tuple(frames)
