"""One exposure's circumstances: pointing, airmass, seeing, sky, bias level and true WCS.

Computed from the plan, the night's conditions and the frame's own random generator, before
any pixel is made; the header, the pixels and the truth file all read from it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from nota.instruments import load_profile
from nota.simulate.conditions import (
    BANDS,
    NIGHT1_BIAS_LEVELS,
    NightConditions,
    seeing_at,
    sky_rate,
)
from nota.simulate.detector import OPTICAL_CENTRE, Geometry
from nota.simulate.plan import FramePlan
from nota.simulate.sky import (
    FIELDS,
    Pointing,
    TrueWcs,
    airmass,
    alt_az,
    local_sidereal_time,
    make_wcs,
    offset_position,
)

__all__ = ["Observation", "observe"]

log = logging.getLogger(__name__)

FIELD_ROTATION_DEG = 0.42      # the instrument's small turn from north-up, east-left


@dataclass(frozen=True)
class Observation:
    """Everything about a frame except its pixels."""

    plan: FramePlan
    geometry: Geometry
    band: str | None
    lst_hours: float
    alt_deg: float
    az_deg: float
    airmass_start: float
    airmass_mid: float
    pointing: Pointing
    wcs: TrueWcs | None          # on the frame as written (window-aware), None off the sky
    seeing: float | None         # FWHM arcsec
    fwhm_px: float | None
    sky_rate: float              # ADU/s/pixel before the flat response (0 off the sky)
    bias_level: float
    pixel_scale: float           # arcsec per (binned) pixel
    ccd_temp: float

    @property
    def mid_time(self) -> datetime:
        return self.plan.start + timedelta(seconds=self.plan.exptime / 2)


def _bias_level(cond: NightConditions, plan: FramePlan, rng: np.random.Generator) -> float:
    """Night 1's biases as measured in the lecture; the rest drift by a few tenths of ADU."""
    if cond.night == 1 and plan.kind == "bias" and plan.seq <= len(NIGHT1_BIAS_LEVELS):
        return NIGHT1_BIAS_LEVELS[plan.seq - 1]
    if plan.kind == "bias":
        # A warming detector: the first biases sit a few ADU low, as on night 1.
        return round(cond.bias_level - 5.0 * math.exp(-(plan.seq - 1) / 1.5)
                     + float(rng.normal(0, 0.15)), 2)
    midnight = datetime(cond.date.year, cond.date.month, cond.date.day)
    hours = (plan.start - midnight).total_seconds() / 3600
    return round(cond.bias_level + 0.3 * math.sin(hours / 2.0) + float(rng.normal(0, 0.15)), 2)


def observe(plan: FramePlan, cond: NightConditions, rng: np.random.Generator) -> Observation:
    """Work out a frame's circumstances (consumes a fixed number of draws from ``rng``)."""
    profile = load_profile("alfosc")
    lat, lon = float(profile.site["latitude"]), profile.longitude
    geo = Geometry(cond.binning, plan.window)
    mid = plan.start + timedelta(seconds=plan.exptime / 2)
    lst = local_sidereal_time(plan.start, lon)
    band = BANDS.get(plan.filter_id) if plan.filter_id is not None else None
    pointing_jitter = rng.normal(0.0, 2.5, 2)
    rotation = FIELD_ROTATION_DEG + float(rng.normal(0, 0.01))
    bias = _bias_level(cond, plan, rng)
    temp = round(-120.0 + float(rng.normal(0, 0.08)), 1)
    scale = float(profile.detector["pixel_scale"]) * cond.binning
    if plan.field is None:
        # Calibrations in the dome: the telescope parked at the zenith.
        ra, dec = (lst * 15.0) % 360.0, lat
        pointing = Pointing(ra, dec, ra, dec, rotation)
        return Observation(plan, geo, band, lst, 90.0, 0.0, 1.0, 1.0, pointing, None, None,
                           None, 0.0, bias, scale, temp)
    fld = FIELDS[plan.field]
    ra, dec = offset_position(fld.ra_deg, fld.dec_deg, *plan.offset)
    true_ra, true_dec = offset_position(ra, dec, float(pointing_jitter[0]),
                                        float(pointing_jitter[1]))
    pointing = Pointing(ra, dec, true_ra, true_dec, rotation)
    alt, az = alt_az(ra, dec, lst, lat)
    alt_mid, _ = alt_az(ra, dec, local_sidereal_time(mid, lon), lat)
    b = cond.binning
    crpix = ((OPTICAL_CENTRE[0] - (b - 1) / 2) / b + 1, (OPTICAL_CENTRE[1] - (b - 1) / 2) / b + 1)
    wcs = make_wcs(pointing, scale, crpix)
    if plan.window is not None:
        wcs = wcs.shifted(*geo.origin)
    seeing = seeing_at(cond, plan.start, rng) * plan.focus
    sky = sky_rate(cond, band, plan.start, rng) if band else 0.0
    if plan.level is not None and plan.exptime > 0:
        sky = plan.level / plan.exptime          # a flat: the sky is what the log says
    return Observation(plan, geo, band, lst, alt, az, round(airmass(alt), 4),
                       round(airmass(alt_mid), 4), pointing, wcs, round(seeing, 3),
                       seeing / scale, sky, bias, scale, temp)
