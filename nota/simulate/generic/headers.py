"""Headers as MaxIm DL and N.I.N.A. write them for a cooled camera: no ALFOSC keyword at all.

Why two orders and spellings: a generic profile must read either, as small observatories'
archives hold both: IMAGETYP 'Light Frame' or 'LIGHT',
DATE-OBS with or without fractions, N.I.N.A.'s RA/DEC in degrees beside the sexagesimal
OBJCTRA/OBJCTDEC strings, GAIN as the driver's dial and EGAIN in e-/ADU.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from astropy.io import fits

from nota.simulate.generic.camera import APERTURE_MM, FOCAL_MM, Sensor
from nota.simulate.generic.plan import SITE, Exposure

__all__ = ["INSTRUMENT", "TELESCOPE", "frame_header", "sexagesimal"]

log = logging.getLogger(__name__)

INSTRUMENT = "ZWO ASI294MM Pro"
TELESCOPE = "Celestron C14 EdgeHD"
OBSERVER = "Observatorio UCM"


def sexagesimal(value: float, hours: bool) -> str:
    """'22 37 04.05' or '+34 24 56.1': the strings with spaces MaxIm and N.I.N.A. write."""
    v = value / 15.0 if hours else value
    sign = "-" if v < 0 else ("" if hours else "+")
    decimals = 2 if hours else 1
    total = round(abs(v) * 3600, decimals)
    d, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{sign}{int(d):02d} {int(m):02d} {s:0{3 + decimals}.{decimals}f}"


def _date(t: datetime, style: str) -> str:
    if style == "nina":
        return t.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def _camera_cards(exp: Exposure, sensor: Sensor) -> list[tuple[str, Any, str]]:
    b = sensor.binning
    return [
        ("XBINNING", b, "X axis binning factor"), ("YBINNING", b, "Y axis binning factor"),
        ("GAIN", sensor.gain_setting, "Sensor gain setting"),
        ("OFFSET", sensor.offset_setting, "Sensor gain offset"),
        ("EGAIN", sensor.egain, "[e-/ADU] Electrons per A/D unit"),
        ("XPIXSZ", round(sensor.pixel_um, 2), "[um] Pixel X axis size"),
        ("YPIXSZ", round(sensor.pixel_um, 2), "[um] Pixel Y axis size"),
        ("INSTRUME", INSTRUMENT, "Imaging instrument name"),
        ("SET-TEMP", exp.set_temp, "[degC] CCD temperature setpoint"),
        ("CCD-TEMP", exp.ccd_temp, "[degC] CCD temperature"),
    ]


def _optics_cards() -> list[tuple[str, Any, str]]:
    return [
        ("TELESCOP", TELESCOPE, "Name of telescope"),
        ("FOCALLEN", FOCAL_MM, "[mm] Focal length"),
        ("FOCRATIO", round(FOCAL_MM / APERTURE_MM, 2), "Focal ratio"),
        ("APTDIA", APERTURE_MM, "[mm] Aperture diameter"),
        ("SITEELEV", SITE["elevation"], "[m] Observation site elevation"),
        ("SITELAT", SITE["SITELAT"], "[deg] Observation site latitude"),
        ("SITELONG", SITE["SITELONG"], "[deg] Observation site longitude"),
    ]


def _target_cards(exp: Exposure, light: dict[str, Any] | None) -> list[tuple[str, Any, str]]:
    cards: list[tuple[str, Any, str]] = []
    if exp.filter_written is not None:
        cards.append(("FILTER", exp.filter_written, "Active filter name"))
    if exp.object is not None:
        cards.append(("OBJECT", exp.object, "Name of the object of interest"))
    if light is not None:
        ra, dec = light["pointing"]["ra"], light["pointing"]["dec"]
        if exp.style == "nina":
            cards += [("RA", round(ra, 6), "[deg] RA of telescope"),
                      ("DEC", round(dec, 6), "[deg] Declination of telescope"),
                      ("CENTALT", round(light["altitude"], 4), "[deg] Altitude of telescope"),
                      ("AIRMASS", light["airmass"], "Airmass at frame center (Gueymard 1993)")]
        cards += [("OBJCTRA", sexagesimal(ra, True), "[H M S] RA of imaged object"),
                  ("OBJCTDEC", sexagesimal(dec, False), "[D M S] Declination of imaged object"),
                  ("EQUINOX", 2000.0, "Equinox of celestial coordinate system")]
    return cards


def frame_header(exp: Exposure, sensor: Sensor, light: dict[str, Any] | None) -> fits.Header:
    """The header of one frame in its program's order; astropy adds the structural cards."""
    exposure = [("EXPOSURE", float(exp.exptime), "[s] Exposure duration"),
                ("EXPTIME", float(exp.exptime), "[s] Exposure duration")]
    when = [("DATE-OBS", _date(exp.start, exp.style), "Time of observation (UTC)")]
    if exp.style == "nina":
        when.insert(0, ("DATE-LOC", _date(exp.local_start, "nina"), "Time of observation (local)"))
        cards = ([("IMAGETYP", exp.imagetyp, "Type of exposure")] + exposure + when
                 + _camera_cards(exp, sensor) + _optics_cards() + _target_cards(exp, light))
    else:
        cards = ([("OBSERVER", OBSERVER, "Observatory")] + when + exposure
                 + [("IMAGETYP", exp.imagetyp, "Type of image"),
                    ("XORGSUBF", 0, "Subframe X position in binned pixels"),
                    ("YORGSUBF", 0, "Subframe Y position in binned pixels")]
                 + _camera_cards(exp, sensor) + _optics_cards() + _target_cards(exp, light))
    cards.append(("SWCREATE", exp.software, "Software that created this file"))
    header = fits.Header()
    for key, value, comment in cards:
        header.append(fits.Card(key, value, comment), end=True)
    return header
