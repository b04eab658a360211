"""The airmass an exposure was taken through, from where the telescope pointed and when.

ALFOSC writes AIRMASS at the start of the exposure; extinction acts through the whole of
it, so photometry and stacks want the airmass at mid-exposure, and a stack of several
exposures the exposure-weighted mean of theirs ("effective airmass"). Computed here from
RA, Dec, DATE-OBS, EXPTIME and the site, with the plane-parallel sec z the NOT's
telescope control system writes. UTC stands in for UT1 (under a second: 0.004 deg of
hour angle), so no Earth-orientation table is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import erfa
from astropy.time import Time, TimeDelta

__all__ = ["airmass_at", "mid_exposure_airmass", "effective_airmass"]


def airmass_at(ra_deg: float, dec_deg: float, when: Time, latitude_deg: float, longitude_deg: float) -> float:
    """sec z of a position at a moment, seen from a site (longitude east positive)."""
    jd1, jd2 = when.utc.jd1, when.utc.jd2
    lst = erfa.gmst82(jd1, jd2) + math.radians(longitude_deg)
    hour_angle = lst - math.radians(ra_deg)
    lat, dec = math.radians(latitude_deg), math.radians(dec_deg)
    sin_alt = math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * math.cos(hour_angle)
    if sin_alt <= 0:
        raise ValueError(f"RA {ra_deg:.4f} Dec {dec_deg:.4f} is below the horizon at {when.isot}")
    return 1.0 / sin_alt


def mid_exposure_airmass(ra_deg: float, dec_deg: float, date_obs: str, exptime: float,
                         latitude_deg: float, longitude_deg: float) -> float:
    """sec z halfway through an exposure that started at DATE-OBS (UTC)."""
    middle = Time(date_obs, scale="utc") + TimeDelta(exptime / 2.0, format="sec")
    return airmass_at(ra_deg, dec_deg, middle, latitude_deg, longitude_deg)


def effective_airmass(exptimes: Sequence[float], airmasses: Sequence[float]) -> float:
    """The exposure-weighted mean airmass of a series: what its summed light went through."""
    total = float(sum(exptimes))
    if total <= 0 or len(exptimes) != len(airmasses):
        raise ValueError("effective airmass needs one positive exposure time per airmass")
    return sum(t * x for t, x in zip(exptimes, airmasses)) / total
