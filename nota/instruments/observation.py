"""Frames: what a raw file is, in the terms users select on.

ALFOSC writes its filter as wheel ids, its frame type only for biases, and the observers'
words in OBJECT; a MaxIm or N.I.N.A. camera writes IMAGETYP, FILTER by name and its site
and temperature. The instrument profile says how to read each; these pure functions turn
a header into the normalised row of the ``observations`` table behind the ``frames`` view.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, NamedTuple

from nota.instruments.profile import KindRule, Profile, header_value, searcher, value_text
from nota.instruments.values import angle, binning, number, parse_date_obs, positive, temperature

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
ARCSEC_PER_RADIAN_OVER_1000 = 206.265  # arcsec per (µm of pixel / mm of focal length)


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
        value = header_value(header, keyword)
        if value is not None and value != "":
            return value
    return None


def _first_known(header: Mapping[str, Any], keywords: tuple[str, ...], read: Callable[[Any], Any]) -> Any:
    """The first keyword's value that ``read`` can make sense of: an 'unset' CCD-TEMP gives
    way to SET-TEMP, a GAIN of 0 to the next keyword."""
    for keyword in keywords:
        value = read(header_value(header, keyword))
        if value is not None:
            return value
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.strip() if isinstance(value, str) else str(value)


def filter_in_beam(header: Mapping[str, Any], profile: Profile) -> tuple[str | None, str | None]:
    """(filter name, wheel ids) from the wheels in the beam, else from the filter-name
    keyword (``[filters] keyword``, aliases resolved); (None, None) when all are open."""
    names, ids = _wheels(header, profile)
    if ids:
        return "+".join(names), "/".join(ids)
    written = _first(header, profile.filter_keywords)
    return profile.canonical_filter(written), None


def _wheels(header: Mapping[str, Any], profile: Profile) -> tuple[list[str], list[str]]:
    names, ids = [], []
    padded = profile.filter_wheel_names + (None,) * len(profile.filter_wheels)
    for wheel, name_key in zip(profile.filter_wheels, padded):
        value = number(header.get(wheel))
        if value is None or int(value) in profile.empty_filter_ids:
            continue
        fid = int(value)
        ids.append(str(fid))
        known = profile.filters.get(fid)
        if known is not None:
            names.append(known.short_name)
        else:
            written = header.get(name_key) if name_key else None
            names.append(written.strip() if isinstance(written, str) and written.strip() else f"#{fid}")
    return names, ids


def _standard_name(obj: str | None, profile: Profile) -> str | None:
    if not obj:
        return None
    for name, pattern in profile.standards.items():
        if searcher(pattern)(obj.strip()):
            return name
    return None


def classify_kind(facts: Mapping[str, Any], profile: Profile) -> tuple[str, str]:
    """(kind, rule text): the first of the profile's kind rules that the frame meets.

    ``facts`` holds object, imagetyp, exptime, window and the merged ``header`` (for rules
    on any keyword). The answer is remembered by the facts the rules read: the frames of a
    night repeat them, and trying a dozen rules was a sixth of reading a frame at ingest."""
    rules = _kind_rules(profile)
    header = facts.get("header") or {}
    key = (facts.get("imagetyp"), facts.get("object"), facts.get("exptime"), facts.get("window", False),
           *[_rule_text(header, keyword) for keyword in rules.keywords])
    answer = rules.answers.get(key)
    if answer is None:
        answer = next(((rule.kind, rule.rule) for rule in profile.kinds if _meets(rule, facts, profile)),
                      ("unknown", "no rule of the profile matched"))
        if len(rules.answers) >= _KIND_ANSWERS_MAX:
            rules.answers.clear()
        rules.answers[key] = answer
    return answer


class _KindRules(NamedTuple):
    """A profile's kind rules (and standards, which a rule may ask about), the header
    keywords they read, and the answers given so far."""

    kinds: tuple[KindRule, ...]
    standards: Mapping[str, str]
    keywords: tuple[str, ...]
    answers: dict[tuple, tuple[str, str]]


_KIND_RULES: dict[int, _KindRules] = {}
_KIND_ANSWERS_MAX = 4096


def _kind_rules(profile: Profile) -> _KindRules:
    found = _KIND_RULES.get(id(profile.kinds))
    if found is None or found.kinds is not profile.kinds or found.standards is not profile.standards:
        keywords = tuple(sorted({keyword for rule in profile.kinds for keyword, _ in rule.header}))
        found = _KIND_RULES[id(profile.kinds)] = _KindRules(profile.kinds, profile.standards, keywords, {})
    return found


def _rule_text(header: Mapping[str, Any], keyword: str) -> str | None:
    value = header_value(header, keyword)
    return None if value is None else value_text(value)


def _header_holds(rule: KindRule, header: Mapping[str, Any]) -> bool:
    """Every ``header`` condition: the keyword present and its value's text matching."""
    for keyword, pattern in rule.header:
        value = header_value(header, keyword)
        if value is None or not searcher(pattern)(value_text(value)):
            return False
    return True


def _meets(rule: KindRule, facts: Mapping[str, Any], profile: Profile) -> bool:
    if rule.imagetyp is not None and not searcher(rule.imagetyp)(facts.get("imagetyp") or ""):
        return False
    if rule.object is not None and not searcher(rule.object)(facts.get("object") or ""):
        return False
    if rule.window is not None and rule.window != facts.get("window", False):
        return False
    if rule.standard is not None and rule.standard != (_standard_name(facts.get("object"), profile) is not None):
        return False
    exptime = facts.get("exptime")
    if rule.exptime_min is not None and (exptime is None or exptime < rule.exptime_min):
        return False
    if rule.exptime_max is not None and (exptime is None or exptime > rule.exptime_max):
        return False
    return _header_holds(rule, facts.get("header") or {})


def missing_keywords(header: Mapping[str, Any], profile: Profile) -> list[str]:
    """Required keywords (per the profile) absent from a header."""
    return [k for k in profile.required_keywords if header.get(k) in (None, "")]


def _binning(header: Mapping[str, Any], kw: Mapping[str, tuple[str, ...]]) -> tuple[int, int]:
    """XBINNING/YBINNING-style keywords, else one like BINNING = '2x2' or CCDSUM = '1 2'."""
    xbin, ybin = number(_first(header, kw.get("xbin", ()))), number(_first(header, kw.get("ybin", ())))
    if xbin is None and ybin is None:
        both = binning(_first(header, kw.get("binning", ())))
        if both is not None:
            return both
    return int(xbin or 1), int(ybin or xbin or 1)


def _gain_and_noise(header: Mapping[str, Any], profile: Profile) -> tuple[float | None, float | None]:
    """(e-/ADU, e-): the header's values in the profile's units converted, else the profile's."""
    kw, detector = profile.keywords, profile.detector
    gain = _first_known(header, kw.get("gain", ()), positive)
    if gain is not None and profile.gain_unit == "adu/e":
        gain = 1.0 / gain
    gain = gain if gain is not None else positive(detector.get("gain"))
    noise = _first_known(header, kw.get("read_noise", ()), positive)
    if noise is not None and profile.read_noise_unit == "adu":
        noise = noise * gain if gain is not None else None
    return gain, noise if noise is not None else positive(detector.get("read_noise"))


def _site(header: Mapping[str, Any], profile: Profile) -> tuple[float | None, float]:
    """(latitude, longitude east) in degrees: the frame's own where the camera writes them."""
    kw = profile.keywords
    latitude = _first_known(header, kw.get("site_latitude", ()), angle)
    longitude = _first_known(header, kw.get("site_longitude", ()), angle)
    return (latitude if latitude is not None else profile.latitude,
            longitude if longitude is not None else profile.longitude)


def _pixel_scale(header: Mapping[str, Any], profile: Profile, xbin: int) -> float | None:
    """Arcsec per binned pixel: the profile's unbinned scale times the binning, else
    206.265 x XPIXSZ (µm, binned, the SBIG/MaxIm convention) / FOCALLEN (mm)."""
    scale = positive(profile.detector.get("pixel_scale"))
    if scale is not None:
        return round(scale * xbin, 6)
    size = _first_known(header, profile.keywords.get("pixel_size", ()), positive)
    focal = _first_known(header, profile.keywords.get("focal_length", ()), positive)
    if size is None or focal is None:
        return None
    return round(ARCSEC_PER_RADIAN_OVER_1000 * size / focal, 6)


def _int(value: Any) -> int | None:
    result = number(value)
    return int(result) if result is not None else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "") if moment else None


def observation_row(header: Mapping[str, Any], profile: Profile | None) -> dict[str, Any]:
    """The normalised facts of one frame, from its merged header (image HDU over primary)."""
    if profile is None:
        return _unknown_instrument_row(header)
    kw = profile.keywords
    obj = _text(_first(header, kw.get("object", ("OBJECT",))))
    imagetyp = _first(header, kw.get("imagetyp", ("IMAGETYP",)))
    imagetyp = imagetyp.strip() if isinstance(imagetyp, str) else None
    exptime = number(_first(header, kw.get("exptime", ("EXPTIME",))))
    naxis1 = _int(_first(header, kw.get("naxis1", ("NAXIS1",))))
    naxis2 = _int(_first(header, kw.get("naxis2", ("NAXIS2",))))
    xbin, ybin = _binning(header, kw)
    moment = parse_date_obs(_first(header, kw.get("date_obs", ("DATE-OBS",))), _first(header, kw.get("time_obs", ())))
    filter_name, filter_ids = filter_in_beam(header, profile)
    facts = {"object": obj, "imagetyp": imagetyp, "exptime": exptime, "header": header,
             "window": profile.is_window(naxis1, naxis2, xbin, ybin)}
    kind, rule = classify_kind(facts, profile)
    latitude, longitude = _site(header, profile)
    gain, read_noise = _gain_and_noise(header, profile)
    return {
        "instrument": profile.name,
        "night": night_of(moment, longitude, profile.night_turnover_hour) if moment else None,
        "kind": kind,
        "kind_rule": rule,
        "filter": filter_name,
        "filter_ids": filter_ids,
        "exptime": exptime,
        "date_obs": _iso(moment),
        "mjd": round(mjd_of(moment), 8) if moment else None,
        "airmass": number(_first(header, kw.get("airmass", ("AIRMASS",)))),
        "naxis1": naxis1,
        "naxis2": naxis2,
        "binning": f"{xbin}x{ybin}",
        "object": obj,
        "imagetyp": imagetyp,
        "ra": angle(_first(header, kw.get("ra", ())), hours=True),
        "dec": angle(_first(header, kw.get("dec", ()))),
        "gain": gain,
        "read_noise": read_noise,
        "ccd_temp": _first_known(header, kw.get("ccd_temp", ()), temperature),
        "site_latitude": latitude,
        "site_longitude": longitude,
        "pixel_scale": _pixel_scale(header, profile, xbin),
    }


def _unknown_instrument_row(header: Mapping[str, Any]) -> dict[str, Any]:
    """Frames of a camera nota has no profile for: indexed, with what FITS itself says."""
    moment = parse_date_obs(header.get("DATE-OBS"))
    filt, instrument = header.get("FILTER"), header.get("INSTRUME")
    return {
        "instrument": instrument.strip() if isinstance(instrument, str) else None,
        "night": night_of(moment, 0.0) if moment else None,
        "kind": "unknown",
        "kind_rule": "no instrument profile for this file",
        "filter": filt.strip() if isinstance(filt, str) and filt.strip() else None,
        "filter_ids": None,
        "exptime": number(header.get("EXPTIME")),
        "date_obs": _iso(moment),
        "mjd": round(mjd_of(moment), 8) if moment else None,
        "airmass": number(header.get("AIRMASS")),
        "naxis1": _int(header.get("NAXIS1")),
        "naxis2": _int(header.get("NAXIS2")),
        "binning": None,
        "object": _text(header.get("OBJECT")),
        "imagetyp": header.get("IMAGETYP") if isinstance(header.get("IMAGETYP"), str) else None,
        "ra": None,
        "dec": None,
        "gain": number(header.get("GAIN")),
        "read_noise": number(header.get("RDNOISE")),
        "ccd_temp": None,
        "site_latitude": None,
        "site_longitude": None,
        "pixel_scale": None,
    }
