"""Headers as ALFOSC wrote them: every card of a real ALFOSC file, with this frame's values.

The template is the card dump of a real 2017 ALFOSC multi-extension file shipped in
``nota/data``: a data-less primary HDU with the telescope's keywords and an image extension
``im1`` with the detector's. A simple (renamed, "sin extensión") file carries both sets in
one HDU. No FILTER keyword and no celestial WCS: the real files had neither.
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta
from importlib import resources
from typing import Any

from astropy.io import fits

from nota.instruments import load_profile
from nota.simulate.detector import binned_section
from nota.simulate.observe import Observation
from nota.simulate.plan import FILTER_WHEEL, READOUT_S
from nota.simulate.sky import FIELDS

__all__ = ["frame_headers", "template_cards"]

log = logging.getLogger(__name__)

# Cards astropy writes itself from the data, or that belong to one layout only.
_STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE",
               "XTENSION", "PCOUNT", "GCOUNT"}
_EXTENSION_ONLY = {"EXTNAME", "IMAGEID", "INHERIT"}
_DROP = object()

OBSERVERS = "Perez-Gonzalez, Zamorano"
PI_NAME = "A. Gil de Paz"
PROPOSAL = ("37-412", "Calibrating the [OII]158 micron line as a SFR tracer")
# Wheel slot of each filter (the 2008 set-up), for the *POS cards.
_SLOTS = {74: 2, 75: 3, 76: 4, 49: 5, 78: 3}
# The template is from 2017; lamps it names were installed after this run.
_ANACHRONISMS = {"CLAMPID1": "OSRAM He/10 inst. 12-06-2006",
                 "CLAMPID2": "OSRAM Ne/10 inst. 12-06-2006",
                 "CLAMPID3": "OSRAM 64415 w448 10W 12V",
                 "BFLMP1ID": "Model 64614 OSRAM 12 V 75W G5,3. Installed 2004."}


@functools.cache
def template_cards() -> tuple[tuple[fits.Card, ...], tuple[fits.Card, ...]]:
    """The template's primary and image-extension cards, in order."""
    text = resources.files("nota").joinpath("data", "alfosc_header_2017.txt").read_text()
    hdus: list[list[fits.Card]] = []
    for line in text.splitlines():
        if line.startswith("### HDU"):
            hdus.append([])
            continue
        if not hdus or not line.strip() or line.startswith("END"):
            continue
        hdus[-1].append(fits.Card.fromstring(line[:80].ljust(80)))
    return tuple(hdus[0]), tuple(hdus[1])


def _sexa(value: float, marks: str = "   ", decimals: int = 1) -> str:
    """Sexagesimal text as the TCS writes it in comments: 03h:04m:09.7s, -11d:26m:58.5s."""
    sign = "-" if value < 0 else ""
    total = round(abs(value) * 3600, decimals)
    d = int(total // 3600)
    m = int((total - d * 3600) // 60)
    s = total - d * 3600 - m * 60
    width = 3 + decimals if decimals else 2
    a, b, tail = (c.strip() for c in marks)
    return f"{sign}{d:02d}{a}:{m:02d}{b}:{s:0{width}.{decimals}f}{tail}"


def _filter_cards(filter_id: int | None) -> dict[str, Any]:
    table = load_profile("alfosc").filters
    cards: dict[str, Any] = {}
    for wheel in ("AL", "FA", "FB"):
        in_wheel = filter_id is not None and FILTER_WHEEL.get(filter_id) == wheel
        cards[f"{wheel}FLTID"] = filter_id if in_wheel else 0
        cards[f"{wheel}FLTNM"] = table[filter_id].name if in_wheel else "Open"
        empty_slot = 1 if wheel == "AL" else 0
        cards[f"{wheel}FLTPOS"] = _SLOTS.get(filter_id, 0) if in_wheel else empty_slot
    return cards


def frame_headers(obs: Observation, filename: str, datamin: int, datamax: int,
                  mef: bool) -> tuple[fits.Header, fits.Header | None]:
    """The primary header and (MEF) the image-extension header of one frame."""
    plan, geo = obs.plan, obs.geometry
    start = plan.start
    mid = start + timedelta(seconds=plan.exptime / 2)
    written = start + timedelta(seconds=plan.exptime + READOUT_S)
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}"  # noqa: E731
    ut = start.hour + start.minute / 60 + (start.second + start.microsecond / 1e6) / 3600
    fld = FIELDS.get(plan.field) if plan.field else None
    p = obs.pointing
    values: dict[str, Any] = {
        "DATE-OBS": iso(start), "DATE_OBS": iso(start), "DATE-AVG": iso(mid),
        "ALAPRTNM": "Open", "ALAPRTID": 0, "ALAPRPOS": 1, "ALAPRORI": "Any", "ALAPRALG": "N",
        "ALGRNM": "Open (Lyot)", "ALGRID": 0, "ALGRPOS": 1, "ALGRORI": "Any", "ALGRALG": "N",
        "ALFOCUS": int(round(1315 + 120 * (plan.focus - 1.0) * (1 if plan.seq % 2 else -1))),
        **_filter_cards(plan.filter_id),
        "UT": (round(ut, 6), f"TCS UTC at start ({start:%Y-%m-%d %H:%M:%S})"),
        "ST": (round(obs.lst_hours, 10),
               f"Sidereal time at start ({_sexa(obs.lst_hours, '   ', 0)})"),
        "RA": (round(p.ra_deg, 9), f"Right ascention at start ({_sexa(p.ra_deg / 15, 'hms')})"),
        "DEC": (round(p.dec_deg, 9), f"Declination at start ({_sexa(p.dec_deg, 'dms')})"),
        "TELALT": round(obs.alt_deg, 7), "AZIMUTH": round(obs.az_deg, 7),
        "AIRMASS": obs.airmass_start,
        "FIELD": round(p.rotation_deg, 4), "ROTPOS": round(-p.rotation_deg, 4),
        "TELFOCUS": 22451 if plan.kind != "focus" else int(22451 + 40 * (plan.focus - 1)),
        "TCSTGT": fld.name if fld else "dome flat position",
        "OBJRA": round((fld.ra_deg if fld else p.ra_deg) / 15.0, 6),
        "OBJDEC": round(fld.dec_deg if fld else p.dec_deg, 8),
        "OBJECT": plan.object, "OBSERVER": OBSERVERS, "IMAGETYP": plan.imagetyp,
        "OBS_MODE": "IMAGING", "PROPID": PROPOSAL[0], "PROPTITL": PROPOSAL[1],
        "PINAME": PI_NAME, "DATE": written.strftime("%Y-%m-%dT%H:%M:%S"),
        "FILENAME": filename, "EXPTIME": float(plan.exptime),
        "DETWIN1": geo.detwin(), "DATAMIN": datamin, "DATAMAX": datamax,
        "CCDTEMP": obs.ccd_temp, "SHSTAT": "CLOSED" if plan.kind == "bias" else "OPEN",
        "DETXBIN": geo.binning, "DETYBIN": geo.binning, "AMPLMODE": "A",
        **_ANACHRONISMS,
    }
    profile = load_profile("alfosc")
    x0 = plan.window[0] if plan.window else 1
    y0 = plan.window[1] if plan.window else 1
    detector: dict[str, Any] = {
        "CRVAL1": float(x0), "CRVAL2": float(y0), "CRPIX1": 1.0, "CRPIX2": 1.0,
        "CDELT1": geo.binning, "CDELT2": geo.binning,
        "BIASSEC": (_DROP if plan.window
                    else binned_section(profile.detector["biassec"], geo.binning)),
        "RDNOISE": float(profile.detector["read_noise"]), "GAIN": float(profile.detector["gain"]),
        "EXTNAME": "im1", "CCDSUM": f"{geo.binning} {geo.binning}",
    }
    primary_cards, image_cards = template_cards()
    primary = _fill(primary_cards, values, skip=_STRUCTURAL)
    image = _fill(image_cards, detector, skip=_STRUCTURAL | (set() if mef else _EXTENSION_ONLY))
    if mef:
        return primary, image
    for card in image.cards:
        primary.append(card, end=True)
    return primary, None


def _fill(cards: tuple[fits.Card, ...], values: dict[str, Any], skip: set[str]) -> fits.Header:
    header = fits.Header()
    for card in cards:
        key = card.keyword
        if key in skip:
            continue
        if key in values:
            value = values[key]
            if value is _DROP:
                continue
            comment = card.comment
            if isinstance(value, tuple):
                value, comment = value
            header.append(fits.Card(key, value, comment), end=True)
        else:
            header.append(fits.Card.fromstring(card.image), end=True)
    return header
