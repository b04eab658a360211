"""Reading a profile's TOML and checking it before any frame is read with it.

A profile is the user's description of their camera, so a typo must not pass silently: an
unknown key, a bad regular expression, a section outside the detector or a kind rule that
can never match each become one line ``FILE: KEY: PROBLEM``. The [qc], [groups],
[photometry] and [reduce.*] tables are checked by the dataclasses that read them.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nota.errors import NotaError, ProfileError
from nota.instruments.profile import KINDS
from nota.sections import parse_section

__all__ = ["check_profile", "parse_profile_text", "filter_table_path", "speclite_known"]

Problems = Iterator[tuple[str, str]]  # (key below the checked one, or "", problem)
Checker = Callable[[Any], Problems]


def _text(value: Any) -> Problems:
    if not isinstance(value, str):
        yield "", f"{value!r} is not text"


def _number(value: Any) -> Problems:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        yield "", f"{value!r} is not a number"


def _integer(value: Any) -> Problems:
    if isinstance(value, bool) or not isinstance(value, int):
        yield "", f"{value!r} is not an integer"


def _boolean(value: Any) -> Problems:
    if not isinstance(value, bool):
        yield "", f"{value!r} is not true or false"


def _texts(value: Any) -> Problems:
    """A keyword list: a text or a list of texts."""
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        yield "", f"{value!r} is not a list of keywords"


def _integers(value: Any) -> Problems:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        yield "", f"{value!r} is not a list of integers"


def _regex(value: Any) -> Problems:
    if not isinstance(value, str):
        yield "", f"{value!r} is not a regular expression (text)"
        return
    try:
        re.compile(value)
    except re.error as exc:
        yield "", f"bad regular expression {value!r}: {exc}"


def _regex_table(value: Any) -> Problems:
    """keyword (or name) = regular expression."""
    if not isinstance(value, dict):
        yield "", f"{value!r} is not a table of regular expressions"
        return
    for name, pattern in value.items():
        for _, problem in _regex(pattern):
            yield name, problem


def _one_of(*allowed: str) -> Checker:
    def check(value: Any) -> Problems:
        if value not in allowed:
            yield "", f"{value!r} is not one of {', '.join(allowed)}"
    return check


def _section(value: Any) -> Problems:
    try:
        parse_section(value)
    except NotaError as exc:
        yield "", str(exc)


def _shape(value: Any) -> Problems:
    if value == "header":
        return
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        yield "", f"{value!r} is not [NAXIS1, NAXIS2] (unbinned pixels) or \"header\""


def _table_of_tables(value: Any) -> Problems:
    if not isinstance(value, dict):
        yield "", "is not a table"
        return
    for name, inner in value.items():
        if not isinstance(inner, dict):
            yield name, "[reduce] holds only tables, one per step ([reduce.STEP])"


def _any_table(value: Any) -> Problems:
    if not isinstance(value, dict):
        yield "", "is not a table"


def speclite_known(name: str) -> bool:
    """Whether speclite ships a curve of that name (looked up without importing speclite)."""
    spec = importlib.util.find_spec("speclite")
    folders = spec.submodule_search_locations if spec else None
    return bool(folders) and (Path(list(folders)[0]) / "data" / "filters" / f"{name}.ecsv").is_file()


def _passbands(value: Any) -> Problems:
    """filter = "speclite-name" or { centre_nm, fwhm_nm [, peak_transmission] }."""
    if not isinstance(value, dict):
        yield "", f"{value!r} is not a table of passbands"
        return
    for name, spec in value.items():
        if isinstance(spec, str):
            if not speclite_known(spec):
                yield name, f"{spec!r} is not a speclite filter (e.g. bessell-V, sdss2010-g, panstarrs-r)"
        elif isinstance(spec, dict):
            yield from ((f"{name}.{k}", p) for k, p in _table(spec, TOP_HAT, required=("centre_nm", "fwhm_nm")))
        else:
            yield name, f"{spec!r} is neither a speclite name nor {{ centre_nm, fwhm_nm }}"


def _aliases(value: Any) -> Problems:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        yield "", f"{value!r} is not a table of name = canonical name"


INSTRUMENT = {"name": _text, "telescope": _text, "description": _text, "match": _regex_table,
              "fallback": _regex_table}
SITE = {"name": _text, "latitude": _number, "longitude": _number, "elevation": _number,
        "night_turnover_hour": _number}
DETECTOR = {"shape": _shape, "bitpix": _integer, "saturation": _number, "gain": _number,
            "read_noise": _number, "gain_unit": _one_of("e/adu", "adu/e"), "read_noise_unit": _one_of("e", "adu"),
            "pixel_scale": _number, "typical_seeing": _number, "biassec": _section, "datasec": _section,
            "trimsec": _section}
KEYWORDS = {name: _texts for name in (
    "object", "imagetyp", "exptime", "date_obs", "time_obs", "airmass", "ra", "dec", "naxis1", "naxis2",
    "xbin", "ybin", "binning", "gain", "read_noise", "filename", "ccd_temp", "site_latitude",
    "site_longitude", "pixel_size", "focal_length", "required")}
FILTERS = {"wheels": _texts, "wheel_names": _texts, "empty_ids": _integers, "table": _text, "keyword": _texts,
           "empty_names": _texts, "aliases": _aliases, "passbands": _passbands}
KIND = {"kind": _one_of(*KINDS), "rule": _text, "imagetyp": _regex, "object": _regex, "window": _boolean,
        "standard": _boolean, "exptime_min": _number, "exptime_max": _number, "header": _regex_table}
TOP_HAT = {"centre_nm": _number, "fwhm_nm": _number, "peak_transmission": _number}
TOP = {"instrument": _any_table, "site": _any_table, "detector": _any_table, "keywords": _any_table,
       "filters": _any_table, "kinds": lambda v: iter(()), "standards": _regex_table, "qc": _any_table,
       "groups": _any_table, "reduce": _table_of_tables, "photometry": _any_table}


def _table(table: Any, schema: dict[str, Checker], required: tuple[str, ...] = (),
           unknown: str = "key") -> Problems:
    """Unknown keys, missing required ones, and each known key's own check."""
    if not isinstance(table, dict):
        yield "", "is not a table"
        return
    for name in required:
        if name not in table:
            yield name, "missing"
    for name, value in table.items():
        if name not in schema:
            yield name, f"unknown {unknown} (known: {', '.join(schema)})"
            continue
        for below, problem in schema[name](value):
            yield (f"{name}.{below}" if below else name), problem


def _sections_inside(detector: dict[str, Any]) -> Problems:
    shape = detector.get("shape")
    if not isinstance(shape, list) or list(_shape(shape)):
        return
    for name in ("biassec", "datasec", "trimsec"):
        text = detector.get(name)
        if not isinstance(text, str) or list(_section(text)):
            continue
        x1, x2, y1, y2 = parse_section(text)
        if x2 > shape[0] or y2 > shape[1]:
            yield name, f"{text} lies outside the {shape[0]} x {shape[1]} detector (shape)"


def _kind_rules(raw: dict[str, Any]) -> Problems:
    """Each [[kinds]] table: its keys, and whether it can ever match."""
    rules = raw.get("kinds", [])
    if not isinstance(rules, list):
        yield "kinds", "is not an array of tables ([[kinds]])"
        return
    detector = raw.get("detector")
    has_shape = isinstance(detector, dict) and isinstance(detector.get("shape"), list)
    for number, rule in enumerate(rules, start=1):
        where = f"kinds[{number}]"
        found = list(_table(rule, KIND, required=("kind", "rule")))
        yield from ((f"{where}.{k}" if k else where, p) for k, p in found)
        if not isinstance(rule, dict):
            continue
        low, high = rule.get("exptime_min"), rule.get("exptime_max")
        if not list(_number(low)) and not list(_number(high)) and low > high:
            yield where, f"exptime_min {low} > exptime_max {high}: the rule can never match"
        if rule.get("header") == {}:
            yield f"{where}.header", "an empty table: the rule can never match (name a keyword or leave it out)"
        if rule.get("standard") is True and not raw.get("standards"):
            yield f"{where}.standard", "true, but [standards] names no star: the rule can never match"
        if rule.get("window") is True and not has_shape:
            yield f"{where}.window", "true, but [detector] shape is not given: the rule can never match"


def filter_table_path(name: str, folder: Path) -> Path | None:
    """A [filters] table: beside the profile, else shipped in nota/data; None when neither."""
    for candidate in (folder / name, Path(__file__).resolve().parent.parent / "data" / name):
        if candidate.is_file():
            return candidate
    return None


def check_profile(raw: dict[str, Any], folder: Path) -> list[tuple[str, str]]:
    """Every (key, problem) of a parsed profile; empty when it is sound."""
    problems = list(_table(raw, TOP, required=("instrument",), unknown="table"))
    schemas = {"instrument": INSTRUMENT, "site": SITE, "detector": DETECTOR, "keywords": KEYWORDS, "filters": FILTERS}
    for name, schema in schemas.items():
        if isinstance(raw.get(name), dict):
            required = ("name",) if name == "instrument" else ()
            problems += [(f"{name}.{k}", p) for k, p in _table(raw[name], schema, required)]
    if isinstance(raw.get("detector"), dict):
        problems += [(f"detector.{k}", p) for k, p in _sections_inside(raw["detector"])]
    table = raw.get("filters", {}).get("table") if isinstance(raw.get("filters"), dict) else None
    if isinstance(table, str) and filter_table_path(table, folder) is None:
        problems.append(("filters.table", f"no file {table!r} beside the profile or in nota/data"))
    problems += list(_kind_rules(raw))
    return problems


def parse_profile_text(text: str, file: str) -> dict[str, Any]:
    """The profile's TOML as a dict, checked; a ProfileError of one line per problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{file}: TOML: {exc}") from None
    problems = check_profile(raw, Path(file).parent)
    if problems:
        error = ProfileError("\n".join(f"{file}: {key}: {problem}" for key, problem in problems))
        error.problems = [f"{file}: {key}: {problem}" for key, problem in problems]
        raise error
    return raw
