"""The drafted profile as TOML: every key with a comment saying where its value came from.

A draft is a starting point the user edits, so each line says what the headers showed
("EGAIN in 120 of 120 frames", "a guess: set your camera's"). The text is read back
through the profile checker (``verified``) before ``draft_profile`` writes it, so a draft
is always a profile nota accepts.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from nota.errors import NotaError, ProfileError
from nota.instruments import Profile, load_profile_file, read_profile_text
from nota.instruments.search import SHIPPED
from nota.instruments.values import angle, number, positive
from nota.pipeline.profile_draft import (
    CONVENTIONS, DOME_OBJECT, Survey, detector_shape, frame_binning, gain_choice, is_grating, is_grism,
    is_spectroscopic_technique, median_or, type_word_kind,
)
from nota.sections import format_section, parse_section

__all__ = ["profile_text", "verified"]

Line = tuple[str, Any, str]  # key, value, comment


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _value(value: Any) -> str:
    """A TOML value: JSON's strings, numbers and arrays are TOML's; tables are inline."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _table(name: str, lines: list[Line], array: bool = False) -> str:
    head = f"[[{name}]]" if array else f"[{name}]"
    body = [f"# {_key(k)} = ...  # {c}" if v is None else f"{_key(k)} = {_value(v)}  # {c}" for k, v, c in lines]
    return "\n".join([head, *body]) + "\n"


def _exactly(values: list[str]) -> str:
    """A regular expression matching exactly these texts (rules match case-insensitively)."""
    unique = list(dict.fromkeys(v.strip() for v in values))
    seen: set[str] = set()
    kept = [v for v in unique if not (v.lower() in seen or seen.add(v.lower()))]
    return "^(" + "|".join(re.escape(v).replace("\\ ", " ") for v in kept) + ")$"


def _of(survey: Survey, keyword: str) -> str:
    return f"{keyword} in {survey.found.get(keyword, 0)} of {len(survey.frames)} frames"


def _generic() -> Profile:
    """nota's shipped generic profile: the convention's filter aliases, passbands, standards."""
    return load_profile_file(SHIPPED / "generic.toml")


# The tables --------------------------------------------------------------------------------


def _instrument(survey: Survey, key: str) -> list[Line]:
    names = [v for v, _ in survey.values.get("INSTRUME", Counter()).most_common()]
    lines: list[Line] = [("name", names[0] if names else key,
                          "INSTRUME as written: the archive's `instrument`" if names else "no INSTRUME: the file's name")]
    telescopes = survey.values.get("TELESCOP")
    if telescopes:
        lines.append(("telescope", telescopes.most_common(1)[0][0], "TELESCOP as written"))
    if names:
        lines.append(("match", {"INSTRUME": _exactly(names)}, "a frame is this camera's when INSTRUME is one of these"))
    else:
        types = {k: _exactly(list(survey.values[k])) for k in survey.keywords("imagetyp")}
        lines.append(("fallback", types or {"NAXIS": "."},
                      "no INSTRUME: a fallback profile, for frames with these frame types"))
    return lines


def _site(survey: Survey) -> list[Line]:
    observatory = survey.values.get("OBSERVAT") or survey.values.get("TELESCOP")
    lines: list[Line] = [("name", observatory.most_common(1)[0][0] if observatory else "unknown",
                          "OBSERVAT (else TELESCOP) as written" if observatory else "not in the headers: name it")]
    lat = [v for k in survey.keywords("site_latitude") for v in survey.numbers(k, angle)]
    lon = [v for k in survey.keywords("site_longitude") for v in survey.numbers(k, angle)]
    lines.append(("latitude", median_or(lat, None), "degrees north: the frames' median" if lat
                  else "degrees north: not in the headers, set your site's and uncomment"))
    lines.append(("longitude", median_or(lon, 0.0), "degrees east: the frames' median" if lon
                  else "degrees east: not in the headers (Greenwich: nights named by UT), set your site's"))
    elevation = survey.numbers("SITEELEV")
    if elevation:
        lines.append(("elevation", median_or(elevation, None), "metres: SITEELEV"))
    lines.append(("night_turnover_hour", 12, "local hour a night is named from (frames before noon: the night before)"))
    return lines


def _saturation(survey: Survey) -> tuple[float, str]:
    for keyword in ("SATURATE", "DATAMAX"):
        values = survey.numbers(keyword, positive)
        if values:
            return min(values), f"ADU: the smallest {keyword} written"
    bitpix = [int(v) for f in survey.frames if (v := number(f.header.get("ZBITPIX", f.header.get("BITPIX"))))]
    bzero = [number(f.header.get("BZERO")) or 0 for f in survey.frames]
    if bitpix and Counter(bitpix).most_common(1)[0][0] == 16 and max(bzero) < 32768:
        return 32767, "ADU: signed 16-bit ceiling (BITPIX 16 without BZERO)"
    return 65535, "ADU: the 16-bit unsigned ceiling, a guess (set your camera's full well in ADU)"


def _sections(survey: Survey, shape: tuple[int, int] | None, notes: list[str]) -> list[Line]:
    """The frames' most common TRIMSEC/BIASSEC/DATASEC, unbinned; checked inside the detector."""
    lines: list[Line] = []
    for keyword in ("BIASSEC", "DATASEC", "TRIMSEC"):
        written = [(f.header[keyword], frame_binning(f)) for f in survey.frames if isinstance(f.header.get(keyword), str)]
        if not written:
            continue
        (text, (xbin, ybin)), count = Counter(written).most_common(1)[0]
        try:
            x1, x2, y1, y2 = parse_section(text)
        except NotaError:
            notes.append(f"{keyword} {text!r} is not a FITS section: left out")
            continue
        section = format_section((x1 - 1) * xbin + 1, x2 * xbin, (y1 - 1) * ybin + 1, y2 * ybin)
        if shape and (x2 * xbin > shape[0] or y2 * ybin > shape[1]):
            notes.append(f"{keyword} {text} lies outside the detector: left out")
            continue
        lines.append((keyword.lower(), section, f"{keyword} of {count} frames, unbinned: check it with "
                                                 "`nota profile sections` (headers are not always right)"))
    return lines


def _detector(survey: Survey, notes: list[str]) -> list[Line]:
    shape = detector_shape(survey.frames)
    binnings = Counter("{}x{}".format(*frame_binning(f)) for f in survey.frames)
    lines: list[Line] = []
    if shape:
        lines.append(("shape", list(shape), "unbinned NAXIS1 x NAXIS2: the largest frame times its binning "
                                            f"(binnings seen: {', '.join(binnings)}); smaller frames are windows"))
    lines.append(("saturation", *_saturation(survey)))
    gain_keyword, unit, why = gain_choice(survey)
    gains = survey.numbers(gain_keyword, positive) if gain_keyword else []
    if unit == "adu/e":
        gains = [1 / g for g in gains]
    lines.append(("gain", median_or(gains, 1.0), "e-/ADU when a frame has none: the frames' median" if gains
                  else "e-/ADU: a guess, set your camera's"))
    lines.append(("gain_unit", unit, why))
    noise_keywords = survey.keywords("read_noise")
    noise = survey.numbers(noise_keywords[0], positive) if noise_keywords else []
    lines.append(("read_noise", median_or(noise, 5.0), f"e- when a frame has none: {noise_keywords[0]}'s median"
                  if noise else "e-: no read-noise keyword, a guess, set your camera's"))
    lines.append(("typical_seeing", 2.5, "arcsec: where source finding starts, set your site's"))
    return lines + _sections(survey, shape, notes)


def _keywords(survey: Survey, gain_keyword: str | None) -> tuple[list[Line], list[str]]:
    """[keywords]: each fact read from the convention keywords the frames carry."""
    lines: list[Line] = []
    absent = []
    facts = ("object", "imagetyp", "exptime", "date_obs", "time_obs", "airmass", "ra", "dec", "xbin", "ybin",
             "binning", "ccd_temp", "read_noise", "site_latitude", "site_longitude", "pixel_size", "focal_length")
    for fact in facts:
        found = survey.keywords(fact)
        if found:
            lines.append((fact, found, ", ".join(_of(survey, k) for k in found)))
        else:
            absent.append(f"{fact} ({', '.join(CONVENTIONS[fact])})")
    if gain_keyword:
        lines.append(("gain", [gain_keyword], _of(survey, gain_keyword)))
    lines += [("naxis1", ["ZNAXIS1", "NAXIS1"], "the image's width (ZNAXIS1 when tile-compressed)"),
              ("naxis2", ["ZNAXIS2", "NAXIS2"], "the image's height")]
    required = [k for k in ("DATE-OBS", *survey.keywords("imagetyp")[:1]) if survey.found.get(k) == len(survey.frames)]
    if required:
        lines.append(("required", required, "every frame read had them: ingest warns when one lacks them"))
    return lines, absent


def _filters(survey: Survey, generic: Profile) -> tuple[str, list[str]]:
    """[filters] and its aliases and passbands: the names seen, the convention's aliases
    (nota's generic profile) for those it knows, and passbands for the canonical names."""
    keywords = survey.keywords("filter")
    if not keywords:
        return "", []
    seen = Counter()
    for keyword in keywords:
        seen.update(survey.values[keyword])
    numeric = [v for v in seen if number(v) is not None]
    lines: list[Line] = [("keyword", keywords, "names seen: " + ", ".join(f"{v} ({n})" for v, n in seen.most_common(12))
                          + ("; numbers are a wheel code, not a name: see alfosc.toml's wheels" if numeric else "")),
                         ("empty_names", sorted(generic.empty_filter_names), "names that mean no filter in the beam")]
    aliases = {v: generic.filter_aliases[v.lower()] for v in seen
               if v.lower() in generic.filter_aliases and generic.filter_aliases[v.lower()] != v}
    canonical = {aliases.get(v, generic.filter_aliases.get(v.lower(), v)) for v in seen}
    text = _table("filters", lines)
    if aliases:
        text += "\n" + _table("filters.aliases", [(k, v, "written name -> the name frames.filter holds")
                                                  for k, v in aliases.items()])
    bands = [(n, f.passband or {"centre_nm": f.centre_nm, "fwhm_nm": f.fwhm_nm},
              "speclite curve" if f.passband else "top-hat of a typical amateur filter: set yours")
             for n, f in generic.named_filters.items() if n in canonical]
    if bands:
        text += "\n" + _table("filters.passbands", bands)
    return text, sorted(canonical)


def _values_by_kind(survey: Survey) -> dict[str, list[str]]:
    """Frame-type value texts grouped by the kind their words suggest."""
    grouped: dict[str, list[str]] = {}
    for keyword in survey.keywords("imagetyp"):
        for value in survey.values[keyword]:
            grouped.setdefault(type_word_kind(value) or "none", []).append(value)
    return grouped


def _rule(kind: str, rule: str, **conditions: Any) -> list[Line]:
    comments = {"imagetyp": "the frame type (first of [keywords] imagetyp) is exactly one of these",
                "object": "and OBJECT says so", "standard": "and OBJECT names a star of [standards]",
                "header": "keyword as written = regular expression on its value"}
    return [("kind", kind, "what the frame is"), ("rule", rule, "shown wherever the frame's kind is")] + [
        (k, v, comments[k]) for k, v in conditions.items()]


def _spectrum_rules(survey: Survey) -> list[list[Line]]:
    rules = []
    techniques = [v for k in survey.keywords("technique") for v in survey.values[k] if is_spectroscopic_technique(v)]
    if techniques:
        rules.append(_rule("spectrum", "DPR TECH says a spectroscopic technique",
                           header={"HIERARCH ESO DPR TECH": _exactly(techniques)}))
    for keyword in survey.keywords("filter"):
        grisms = [v for v in survey.values[keyword] if is_grism(v)]
        if grisms:
            rules.append(_rule("spectrum", f"{keyword} names a grism or grating (a spectrum)",
                               header={keyword: _exactly(grisms)}))
    gratings = [v for v in survey.values.get("GRATING", {}) if is_grating(v)]
    if gratings:
        rules.append(_rule("spectrum", "GRATING names a grating in the beam", header={"GRATING": _exactly(gratings)}))
    return rules


def _says(keyword: str, what: str, values: list[str]) -> str:
    return f"{keyword} says {what} ({', '.join(values)})"


def _kinds(survey: Survey, has_standards: bool) -> tuple[str, list[str]]:
    """[[kinds]] in the order ``suggest_kind`` decides; the values that suggest nothing, noted."""
    by = _values_by_kind(survey)
    kw = (survey.keywords("imagetyp") or ["IMAGETYP"])[0]
    rules: list[list[Line]] = []
    for kind in ("bias", "dark", "arc"):
        if by.get(kind):
            rules.append(_rule(kind, _says(kw, kind, by[kind]), imagetyp=_exactly(by[kind])))
    rules += _spectrum_rules(survey)
    if by.get("dome_flat"):
        rules.append(_rule("dome_flat", _says(kw, "dome flat", by["dome_flat"]), imagetyp=_exactly(by["dome_flat"])))
    if by.get("flat"):
        rules.append(_rule("dome_flat", f"{kw} says flat and OBJECT says dome or panel",
                           imagetyp=_exactly(by["flat"]), object=DOME_OBJECT))
    if by.get("flat") or by.get("sky_flat"):
        flats = by.get("sky_flat", []) + by.get("flat", [])
        rules.append(_rule("sky_flat", _says(kw, "flat", flats) + ": twilight", imagetyp=_exactly(flats)))
    for kind in ("focus", "ignored", "standard"):
        if by.get(kind):
            rules.append(_rule(kind, _says(kw, kind, by[kind]), imagetyp=_exactly(by[kind])))
    if by.get("science"):
        if has_standards:
            rules.append(_rule("standard", "a light frame whose OBJECT names a standard star",
                               imagetyp=_exactly(by["science"]), standard=True))
        rules.append(_rule("science", _says(kw, "light", by["science"]), imagetyp=_exactly(by["science"])))
    text = "\n".join(_table("kinds", r, array=True) for r in rules)
    return text, [f"{kw} = {v!r} suggests no kind: add a [[kinds]] rule" for v in by.get("none", [])]


def _photometry(generic: Profile, canonical: list[str]) -> str:
    colours = {n: c for n, c in generic.photometry.get("colour_index", {}).items() if n in canonical}
    if not colours:
        return ""
    return _table("photometry", [("colour_index", colours, "filter -> colour index of its colour term")])


def _header(survey: Survey, key: str) -> str:
    software = [v for k in CONVENTIONS["software"] for v in survey.values.get(k, {})]
    return "\n".join([
        f"# Instrument profile {key!r}, drafted by `nota profile draft` on {date.today().isoformat()} from "
        f"{len(survey.frames)} frame(s)" + (f" written by {', '.join(software[:3])}" if software else "") + ".",
        "# A starting point: check every value, then see how it reads a night and where the light falls:",
        f"#   nota profile check {key}.toml NIGHT_DIR",
        f"#   nota profile sections {key}.toml FLAT.fits BIAS.fits --out sections.png",
        "# Every key is described in nota's alfosc.toml (the worked example) and the README.", ""])


def profile_text(survey: Survey, key: str) -> tuple[str, dict[str, str], list[str]]:
    """(the TOML text, the standards it names, notes for the user) of a drafted profile."""
    generic, notes = _generic(), []
    gain_keyword = gain_choice(survey)[0]
    keyword_lines, absent = _keywords(survey, gain_keyword)
    if absent:
        notes.append("not in the headers: " + "; ".join(absent))
    filters, canonical = _filters(survey, generic)
    standards = dict(generic.standards) if survey.keywords("object") else {}
    kinds, unmatched = _kinds(survey, bool(standards))
    notes += unmatched
    parts = [_header(survey, key), _table("instrument", _instrument(survey, key)), _table("site", _site(survey)),
             _table("detector", _detector(survey, notes)), _table("keywords", keyword_lines), filters,
             "# The first rule whose conditions all hold gives the frame's kind.\n" + kinds if kinds else "",
             _table("standards", [(n, p, "OBJECT pattern of a star nota has a CALSPEC spectrum of")
                                  for n, p in standards.items()]) if standards else "",
             _photometry(generic, canonical)]
    return "\n".join(p for p in parts if p), standards, notes


def verified(text: str, out: Path) -> None:
    """Read the draft back through the profile checker: a draft nota refuses is nota's bug."""
    try:
        read_profile_text(text, str(Path(out).absolute()))
    except ProfileError as exc:
        raise NotaError(f"the drafted profile does not pass its own check (a bug): {exc}") from None
