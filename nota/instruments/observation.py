"""Frames: what a raw file is, in the terms users select on.

ALFOSC writes its filter as wheel ids, its frame type only for biases, and the observers'
words in OBJECT. The instrument profile says how to read that; these pure functions turn
a header into the normalised row of the ``observations`` table behind the ``frames`` view.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from nota.instruments import KindRule, Profile

__all__ = [
    "observation_row",
    "night_of",
    "mjd_of",
    "parse_date_obs",
    "filter_in_beam",
    "classify_kind",
    "missing_keywords",
]

MJD_EPOCH = datetime(1858, 11, 17, tzinfo=timezone.utc)


def parse_date_obs(value: Any) -> datetime | None:
    """A FITS DATE-OBS ('2008-04-12T20:31:31.94' or '2008-04-12') as an aware UTC datetime."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().rstrip("Z")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def mjd_of(moment: datetime) -> float:
    """Modified Julian date of a UTC moment."""
    return (moment - MJD_EPOCH) / timedelta(days=1)


def night_of(moment: datetime, longitude: float, turnover_hour: float = 12.0) -> str:
    """The local date on which the night containing ``moment`` began.

    Local mean solar time from the site's longitude: a frame taken before local noon
    belongs to the night that began the previous evening.
    """
    local = moment + timedelta(hours=longitude / 15.0) - timedelta(hours=turnover_hour)
    return local.date().isoformat()


def _first(header: Mapping[str, Any], keywords: tuple[str, ...]) -> Any:
    for keyword in keywords:
        value = header.get(keyword)
        if value is not None and value != "":
            return value
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def filter_in_beam(header: Mapping[str, Any], profile: Profile) -> tuple[str | None, str | None]:
    """(filter name, wheel ids) from the wheels in the beam; (None, None) when all are open."""
    names, ids = [], []
    for wheel, name_key in zip(
        profile.filter_wheels, profile.filter_wheel_names + (None,) * len(profile.filter_wheels)
    ):
        raw = header.get(wheel)
        number = _number(raw)
        if number is None or int(number) in profile.empty_filter_ids:
            continue
        fid = int(number)
        ids.append(str(fid))
        known = profile.filters.get(fid)
        if known is not None:
            names.append(known.short_name)
        else:
            written = header.get(name_key) if name_key else None
            names.append(written.strip() if isinstance(written, str) and written.strip() else f"#{fid}")
    if not ids:
        return None, None
    return "+".join(names), "/".join(ids)


def _is_window(naxis1: int | None, naxis2: int | None, xbin: int, ybin: int, profile: Profile) -> bool:
    if naxis1 is None or naxis2 is None:
        return False
    full1, full2 = profile.shape
    return naxis1 < math.floor(full1 / xbin) or naxis2 < math.floor(full2 / ybin)


def _standard_name(obj: str | None, profile: Profile) -> str | None:
    if not obj:
        return None
    for name, pattern in profile.standards.items():
        if re.search(pattern, obj.strip(), re.IGNORECASE):
            return name
    return None


def classify_kind(facts: Mapping[str, Any], profile: Profile) -> tuple[str, str]:
    """(kind, rule text): the first of the profile's kind rules that the frame meets."""
    for rule in profile.kinds:
        if _meets(rule, facts, profile):
            return rule.kind, rule.rule
    return "unknown", "no rule of the profile matched"


def _meets(rule: KindRule, facts: Mapping[str, Any], profile: Profile) -> bool:
    if rule.imagetyp is not None and not re.search(
        rule.imagetyp, facts.get("imagetyp") or "", re.IGNORECASE
    ):
        return False
    if rule.object is not None and not re.search(rule.object, facts.get("object") or "", re.IGNORECASE):
        return False
    if rule.window is not None and rule.window != facts.get("window", False):
        return False
    if rule.standard is not None and rule.standard != (
        _standard_name(facts.get("object"), profile) is not None
    ):
        return False
    exptime = facts.get("exptime")
    if rule.exptime_min is not None and (exptime is None or exptime < rule.exptime_min):
        return False
    if rule.exptime_max is not None and (exptime is None or exptime > rule.exptime_max):
        return False
    return True


def missing_keywords(header: Mapping[str, Any], profile: Profile) -> list[str]:
    """Required keywords (per the profile) absent from a header."""
    return [k for k in profile.required_keywords if header.get(k) in (None, "")]


def observation_row(header: Mapping[str, Any], profile: Profile | None) -> dict[str, Any]:
    """The normalised facts of one frame, from its merged header (image HDU over primary)."""
    if profile is None:
        return _unknown_instrument_row(header)
    kw = profile.keywords
    obj = _first(header, kw.get("object", ("OBJECT",)))
    obj = obj.strip() if isinstance(obj, str) else (None if obj is None else str(obj))
    imagetyp = _first(header, kw.get("imagetyp", ("IMAGETYP",)))
    imagetyp = imagetyp.strip() if isinstance(imagetyp, str) else None
    exptime = _number(_first(header, kw.get("exptime", ("EXPTIME",))))
    naxis1 = _number(_first(header, kw.get("naxis1", ("NAXIS1",))))
    naxis2 = _number(_first(header, kw.get("naxis2", ("NAXIS2",))))
    naxis1 = int(naxis1) if naxis1 is not None else None
    naxis2 = int(naxis2) if naxis2 is not None else None
    xbin = int(_number(_first(header, kw.get("xbin", ()))) or 1)
    ybin = int(_number(_first(header, kw.get("ybin", ()))) or 1)
    date_raw = _first(header, kw.get("date_obs", ("DATE-OBS",)))
    moment = parse_date_obs(date_raw)
    filter_name, filter_ids = filter_in_beam(header, profile)
    facts = {
        "object": obj,
        "imagetyp": imagetyp,
        "exptime": exptime,
        "window": _is_window(naxis1, naxis2, xbin, ybin, profile),
    }
    kind, rule = classify_kind(facts, profile)
    return {
        "instrument": profile.name,
        "night": night_of(moment, profile.longitude, profile.night_turnover_hour) if moment else None,
        "kind": kind,
        "kind_rule": rule,
        "filter": filter_name,
        "filter_ids": filter_ids,
        "exptime": exptime,
        "date_obs": moment.isoformat(timespec="milliseconds").replace("+00:00", "") if moment else None,
        "mjd": round(mjd_of(moment), 8) if moment else None,
        "airmass": _number(_first(header, kw.get("airmass", ("AIRMASS",)))),
        "naxis1": naxis1,
        "naxis2": naxis2,
        "binning": f"{xbin}x{ybin}",
        "object": obj,
        "imagetyp": imagetyp,
        "ra": _number(_first(header, kw.get("ra", ()))),
        "dec": _number(_first(header, kw.get("dec", ()))),
        "gain": _number(_first(header, kw.get("gain", ()))) or profile.detector.get("gain"),
        "read_noise": _number(_first(header, kw.get("read_noise", ())))
        or profile.detector.get("read_noise"),
    }


def _unknown_instrument_row(header: Mapping[str, Any]) -> dict[str, Any]:
    """Frames of a camera nota has no profile for: indexed, with what FITS itself says."""
    moment = parse_date_obs(header.get("DATE-OBS"))
    instrument = header.get("INSTRUME")
    naxis1, naxis2 = _number(header.get("NAXIS1")), _number(header.get("NAXIS2"))
    filt = header.get("FILTER")
    obj = header.get("OBJECT")
    return {
        "instrument": instrument.strip() if isinstance(instrument, str) else None,
        "night": night_of(moment, 0.0) if moment else None,
        "kind": "unknown",
        "kind_rule": "no instrument profile for this file",
        "filter": filt.strip() if isinstance(filt, str) and filt.strip() else None,
        "filter_ids": None,
        "exptime": _number(header.get("EXPTIME")),
        "date_obs": moment.isoformat(timespec="milliseconds").replace("+00:00", "") if moment else None,
        "mjd": round(mjd_of(moment), 8) if moment else None,
        "airmass": _number(header.get("AIRMASS")),
        "naxis1": int(naxis1) if naxis1 is not None else None,
        "naxis2": int(naxis2) if naxis2 is not None else None,
        "binning": None,
        "object": obj.strip() if isinstance(obj, str) else None,
        "imagetyp": header.get("IMAGETYP") if isinstance(header.get("IMAGETYP"), str) else None,
        "ra": None,
        "dec": None,
        "gain": _number(header.get("GAIN")),
        "read_noise": _number(header.get("RDNOISE")),
    }
