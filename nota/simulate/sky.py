"""The sky the simulator points at: time and airmass at La Palma, fields, star catalogues, WCS.

Pure functions of coordinates and time, with no dependence on astropy's IERS tables, so a
simulation never needs the network. Catalogue stars depend on the seed and the field only:
the sky is the same every night.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

__all__ = [
    "CATALOGUE_BANDS",
    "FIELDS",
    "Field",
    "Galaxy",
    "Pointing",
    "TrueWcs",
    "airmass",
    "alt_az",
    "field_catalogue",
    "julian_date",
    "local_sidereal_time",
    "make_wcs",
    "world_to_pixel",
]

log = logging.getLogger(__name__)

# Bands every catalogue star has a magnitude in (AB), by filter short name.
CATALOGUE_BANDS = ("B", "V", "R", "NII_658", "661_5")


@dataclass(frozen=True)
class Galaxy:
    """An extended source: exponential disc plus a compact bulge and Hα knots."""

    r_mag: float             # total AB magnitude of the disc + bulge in R
    scale_arcsec: float      # disc scale length
    axis_ratio: float
    pa_deg: float            # position angle of the major axis, north through east
    bulge_fraction: float
    halpha_filter: str       # short name of the narrow band holding redshifted Hα
    knot_mag: float          # magnitude of each Hα knot in that band
    n_knots: int


@dataclass(frozen=True)
class Field:
    """A pointing target: catalogue coordinates and how crowded its sky is."""

    key: str
    name: str                    # TCSTGT, the telescope's catalogue entry
    ra_deg: float
    dec_deg: float
    n_stars: int
    bright_limit: float          # brightest random field star (R mag)
    standard: str | None = None  # canonical standard name when the field is a standard
    galaxy: Galaxy | None = None
    extra_stars: tuple[tuple[float, float, float], ...] = field(default=())
    # extra stars as (offset east arcsec, offset north arcsec, R mag): planted on purpose


def _hms(text: str) -> float:
    h, m, s = (float(p) for p in text.split(":"))
    return 15.0 * (h + m / 60 + s / 3600)


def _dms(text: str) -> float:
    sign = -1.0 if text.startswith("-") else 1.0
    d, m, s = (abs(float(p)) for p in text.split(":"))
    return sign * (d + m / 60 + s / 3600)


FIELDS: dict[str, Field] = {
    f.key: f
    for f in (
        Field("HZ44", "HZ44", _hms("13:23:35.4"), _dms("+36:08:00"), 45, 14.0, "HZ 44"),
        Field("BD+75d325", "BD+75d325", _hms("08:10:49.3"), _dms("+74:57:57"), 40, 14.0,
              "BD+75 325"),
        Field("Feige34", "Feige34", _hms("10:39:36.7"), _dms("+43:06:10"), 40, 14.0,
              "Feige 34"),
        Field("NGC3982", "NGC3982", _hms("11:56:28.1"), _dms("+55:07:31"), 160, 13.0,
              galaxy=Galaxy(11.3, 14.0, 0.88, 20.0, 0.25, "NII_658", 17.2, 18)),
        # The saturated star of frame 103: planted 1.6' north-west of the galaxy.
        Field("NGC4496A", "NGC4496A", _hms("12:31:39.5"), _dms("+03:56:22"), 220, 13.0,
              galaxy=Galaxy(11.9, 22.0, 0.8, 70.0, 0.08, "661_5", 17.8, 22),
              extra_stars=((-70.0, 60.0, 10.8),)),
        Field("NGC4941", "NGC4941", _hms("13:04:13.1"), _dms("-05:33:06"), 280, 12.0,
              galaxy=Galaxy(11.0, 18.0, 0.52, 15.0, 0.3, "NII_658", 17.6, 12)),
        Field("NGC5363", "NGC5363", _hms("13:56:07.2"), _dms("+05:15:17"), 240, 12.0,
              galaxy=Galaxy(10.6, 16.0, 0.65, 135.0, 0.6, "NII_658", 18.5, 5)),
        # Twilight blank fields near the evening zenith; blank2 hides a star that the
        # last two R flats catch (the telescope moved between exposures).
        Field("blank1", "Blank field 1", _hms("09:40:00"), _dms("+29:10:00"), 25, 16.0),
        Field("blank2", "Blank field 2", _hms("10:05:00"), _dms("+30:05:00"), 25, 16.0,
              extra_stars=((240.0, 30.0, 13.4),)),
    )
}


# ---------------------------------------------------------------- time and position
def julian_date(moment: datetime) -> float:
    """Julian date of an aware or naive-UTC datetime."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    epoch = datetime(2000, 1, 1, 12)
    return 2451545.0 + (moment - epoch).total_seconds() / 86400.0


def local_sidereal_time(moment: datetime, longitude_deg: float) -> float:
    """Local mean sidereal time in hours (IAU 1982 GMST; good to a second here)."""
    d = julian_date(moment) - 2451545.0
    gmst = 18.697374558 + 24.06570982441908 * d
    return (gmst + longitude_deg / 15.0) % 24.0


def alt_az(ra_deg: float, dec_deg: float, lst_hours: float, lat_deg: float) -> tuple[float, float]:
    """Altitude and azimuth (degrees, azimuth from north through east) of a J2000 position.

    Why no precession: eight years from J2000 move a star by ~0.1°, an airmass error below
    0.3 % at the airmasses of this run.
    """
    ha = math.radians((lst_hours * 15.0 - ra_deg) % 360.0)
    dec, lat = math.radians(dec_deg), math.radians(lat_deg)
    sin_alt = math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * math.cos(ha)
    alt = math.asin(max(-1.0, min(1.0, sin_alt)))
    y = -math.cos(dec) * math.sin(ha)
    x = math.sin(dec) * math.cos(lat) - math.cos(dec) * math.sin(lat) * math.cos(ha)
    az = math.degrees(math.atan2(y, x)) % 360.0
    return math.degrees(alt), az


def airmass(alt_deg: float) -> float:
    """sec z, as the NOT TCS writes AIRMASS."""
    return 1.0 / math.sin(math.radians(max(alt_deg, 1.0)))


# ---------------------------------------------------------------- catalogues
def _field_rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, 7, zlib.crc32(key.encode())])


def offset_position(ra_deg: float, dec_deg: float, east_arcsec: float,
                    north_arcsec: float) -> tuple[float, float]:
    """A position offset by small east/north angles (tangent-plane approximation)."""
    dec = dec_deg + north_arcsec / 3600.0
    ra = ra_deg + east_arcsec / 3600.0 / math.cos(math.radians(dec_deg))
    return ra % 360.0, dec


def field_catalogue(seed: int, fld: Field, standard_mags: dict[str, float] | None = None,
                    radius_arcsec: float = 240.0) -> list[dict[str, float | str]]:
    """Stars of a field: id, ra, dec and AB magnitude per band of ``CATALOGUE_BANDS``.

    Counts rise as 10^(0.2 m), near real star counts at high galactic latitude, so a field
    has a dozen stars bright enough for astrometry and many faint ones; colours per star.
    """
    rng = _field_rng(seed, fld.key)
    stars: list[dict[str, float | str]] = []
    if fld.standard and standard_mags:
        star = {"id": f"{fld.key}-std", "ra": fld.ra_deg, "dec": fld.dec_deg}
        star.update({b: standard_mags[b] for b in CATALOGUE_BANDS})
        stars.append(star)
    for i, (east, north, rmag) in enumerate(fld.extra_stars):
        ra, dec = offset_position(fld.ra_deg, fld.dec_deg, east, north)
        stars.append({"id": f"{fld.key}-x{i}", "ra": ra, "dec": dec,
                      **_colours(rng, rmag)})
    faint = 22.0
    u = rng.random(fld.n_stars)
    a = 10 ** (0.2 * fld.bright_limit)
    b = 10 ** (0.2 * faint)
    rmags = np.log10(a + u * (b - a)) / 0.2
    # Uniform over a square a little larger than the detector (±195") so dithers stay covered.
    east = rng.uniform(-radius_arcsec, radius_arcsec, fld.n_stars)
    north = rng.uniform(-radius_arcsec, radius_arcsec, fld.n_stars)
    if fld.galaxy is not None:
        # Keep random stars off the galaxy's centre, where nobody could measure them.
        near = np.hypot(east, north) < 25.0
        east[near] += 60.0
    for i in range(fld.n_stars):
        ra, dec = offset_position(fld.ra_deg, fld.dec_deg, float(east[i]), float(north[i]))
        stars.append({"id": f"{fld.key}-{i:03d}", "ra": ra, "dec": dec,
                      **_colours(rng, float(rmags[i]))})
    return stars


def _colours(rng: np.random.Generator, rmag: float) -> dict[str, float]:
    v_r = float(np.clip(rng.normal(0.35, 0.15), 0.0, 1.0))
    b_v = float(np.clip(1.6 * v_r + rng.normal(0.1, 0.08), -0.1, 1.8))
    # Narrow bands near 660 nm sit close to R; a small colour term plus Hα absorption scatter.
    nii = rmag + 0.12 * v_r + float(rng.normal(0.03, 0.02))
    nb49 = rmag + 0.15 * v_r + float(rng.normal(0.02, 0.02))
    return {"B": round(rmag + v_r + b_v, 4), "V": round(rmag + v_r, 4), "R": round(rmag, 4),
            "NII_658": round(nii, 4), "661_5": round(nb49, 4)}


# ---------------------------------------------------------------- WCS
@dataclass(frozen=True)
class TrueWcs:
    """A TAN projection: reference pixel (1-based), reference sky position, CD matrix (deg/px)."""

    crpix1: float
    crpix2: float
    crval1: float
    crval2: float
    cd: tuple[tuple[float, float], tuple[float, float]]

    def cards(self) -> dict[str, float | str]:
        """The header cards a solved frame would carry."""
        return {
            "WCSAXES": 2, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
            "CUNIT1": "deg", "CUNIT2": "deg", "RADESYS": "ICRS", "EQUINOX": 2000.0,
            "CRPIX1": self.crpix1, "CRPIX2": self.crpix2,
            "CRVAL1": self.crval1, "CRVAL2": self.crval2,
            "CD1_1": self.cd[0][0], "CD1_2": self.cd[0][1],
            "CD2_1": self.cd[1][0], "CD2_2": self.cd[1][1],
        }

    def shifted(self, dx: float, dy: float) -> TrueWcs:
        """The same sky on a readout whose pixel (1,1) is pixel (1+dx, 1+dy) of this one."""
        return TrueWcs(self.crpix1 - dx, self.crpix2 - dy, self.crval1, self.crval2, self.cd)


@dataclass(frozen=True)
class Pointing:
    """Where the telescope says it points (header) and where it really points (truth)."""

    ra_deg: float
    dec_deg: float
    true_ra_deg: float
    true_dec_deg: float
    rotation_deg: float


def make_wcs(pointing: Pointing, scale_arcsec: float, crpix: tuple[float, float]) -> TrueWcs:
    """North up, east left, turned by a small rotation, centred on the true pointing."""
    s = scale_arcsec / 3600.0
    t = math.radians(pointing.rotation_deg)
    cd = ((-s * math.cos(t), s * math.sin(t)), (s * math.sin(t), s * math.cos(t)))
    return TrueWcs(crpix[0], crpix[1], pointing.true_ra_deg, pointing.true_dec_deg, cd)


def world_to_pixel(wcs: TrueWcs, ra_deg: np.ndarray, dec_deg: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """1-based FITS pixel positions of sky positions through a TAN projection."""
    ra = np.radians(np.asarray(ra_deg, dtype=float))
    dec = np.radians(np.asarray(dec_deg, dtype=float))
    ra0, dec0 = math.radians(wcs.crval1), math.radians(wcs.crval2)
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    xi = np.degrees(np.cos(dec) * np.sin(ra - ra0) / cos_c)
    eta = np.degrees((np.cos(dec0) * np.sin(dec)
                      - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cos_c)
    (a, b), (c, d) = wcs.cd
    det = a * d - b * c
    dx = (d * xi - b * eta) / det
    dy = (-c * xi + a * eta) / det
    return dx + wcs.crpix1, dy + wcs.crpix2
