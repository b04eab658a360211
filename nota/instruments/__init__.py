"""Instrument profiles: what nota knows about a camera, read from a TOML file.

The profile, not the code, says where a camera writes its filter, what kind of frame a
file is, its sections, gain and saturation. ``load_profile("alfosc")`` reads
``alfosc.toml`` beside this module; a new camera is a new file.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Mapping

from nota.errors import ProfileError

__all__ = [
    "Filter",
    "KindRule",
    "Profile",
    "available_profiles",
    "load_profile",
    "profile_named",
    "read_filter_table",
    "profile_for_header",
]


@dataclass(frozen=True)
class Filter:
    """One row of an observatory's filter table."""

    id: int
    name: str
    short_name: str
    centre_nm: float | None
    fwhm_nm: float | None
    peak_transmission: float | None
    comment: str = ""


@dataclass(frozen=True)
class KindRule:
    """One rule deciding a frame's kind; the first rule whose conditions all hold wins."""

    kind: str
    rule: str
    imagetyp: str | None = None
    object: str | None = None
    window: bool | None = None
    standard: bool | None = None
    exptime_min: float | None = None
    exptime_max: float | None = None


@dataclass(frozen=True)
class Profile:
    """An instrument profile (see ``alfosc.toml`` for what each part means)."""

    key: str
    name: str
    telescope: str
    match: Mapping[str, str]
    site: Mapping[str, Any]
    detector: Mapping[str, Any]
    keywords: Mapping[str, tuple[str, ...]]
    required_keywords: tuple[str, ...]
    filter_wheels: tuple[str, ...]
    filter_wheel_names: tuple[str, ...]
    empty_filter_ids: frozenset[int]
    filters: Mapping[int, Filter]
    kinds: tuple[KindRule, ...]
    standards: Mapping[str, str] = field(default_factory=dict)
    qc: Mapping[str, float] = field(default_factory=dict)
    groups: Mapping[str, Any] = field(default_factory=dict)
    reduce: Mapping[str, Any] = field(default_factory=dict)
    photometry: Mapping[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """Full unbinned readout as (NAXIS1, NAXIS2)."""
        n1, n2 = self.detector["shape"]
        return int(n1), int(n2)

    @property
    def night_turnover_hour(self) -> float:
        return float(self.site.get("night_turnover_hour", 12))

    @property
    def longitude(self) -> float:
        return float(self.site.get("longitude", 0.0))

    def matches(self, header: Mapping[str, Any]) -> bool:
        """True when a header belongs to this instrument."""
        for keyword, pattern in self.match.items():
            value = header.get(keyword)
            if isinstance(value, str) and re.search(pattern, value.strip()):
                return True
        return False


@functools.cache
def available_profiles() -> tuple[str, ...]:
    """Names of the profiles shipped with nota."""
    return tuple(sorted(
        p.name.removesuffix(".toml")
        for p in resources.files(__name__).iterdir()
        if p.name.endswith(".toml")
    ))


@functools.cache
def load_profile(key: str = "alfosc") -> Profile:
    """Read a shipped instrument profile by name (``alfosc``)."""
    try:
        text = resources.files(__name__).joinpath(f"{key}.toml").read_text()
    except FileNotFoundError:
        raise ProfileError(
            f"no instrument profile {key!r}; known: {', '.join(available_profiles())}"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"instrument profile {key}.toml: {exc}") from exc
    return _profile_from_dict(key, raw)


@functools.cache
def profile_named(name: str) -> Profile:
    """The shipped profile of an instrument by its name (``ALFOSC``, as the archive stores it).

    The one way to go from a frame's ``instrument`` to its profile; resolved once per name.
    """
    for key in available_profiles():
        profile = load_profile(key)
        if profile.name == name:
            return profile
    known = ", ".join(load_profile(k).name for k in available_profiles())
    raise ProfileError(f"no instrument profile for {name!r} (known: {known})")


def _profile_from_dict(key: str, raw: dict[str, Any]) -> Profile:
    try:
        instrument = raw["instrument"]
        keywords = dict(raw["keywords"])
        required = tuple(keywords.pop("required", ()))
        filters = raw.get("filters", {})
        table = filters.get("table")
        return Profile(
            key=key,
            name=instrument["name"],
            telescope=instrument.get("telescope", ""),
            match=dict(instrument.get("match", {})),
            site=dict(raw.get("site", {})),
            detector=dict(raw["detector"]),
            keywords={k: tuple(v) for k, v in keywords.items()},
            required_keywords=required,
            filter_wheels=tuple(filters.get("wheels", ())),
            filter_wheel_names=tuple(filters.get("wheel_names", ())),
            empty_filter_ids=frozenset(int(i) for i in filters.get("empty_ids", ())),
            filters=read_filter_table(table) if table else {},
            kinds=tuple(KindRule(**rule) for rule in raw.get("kinds", ())),
            standards=dict(raw.get("standards", {})),
            qc=dict(raw.get("qc", {})),
            groups=dict(raw.get("groups", {})),
            reduce=dict(raw.get("reduce", {})),
            photometry=dict(raw.get("photometry", {})),
        )
    except (KeyError, TypeError) as exc:
        raise ProfileError(f"instrument profile {key}.toml: missing or malformed {exc}") from exc


def _number(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


@functools.cache
def read_filter_table(name: str = "alfosc_filters.dat") -> dict[int, Filter]:
    """Read a pipe-separated NOT-style filter table shipped in ``nota/data``."""
    text = resources.files("nota").joinpath("data", name).read_text()
    table: dict[int, Filter] = {}
    for line in text.splitlines()[1:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or not cells[0].isdigit():
            continue
        table[int(cells[0])] = Filter(
            id=int(cells[0]),
            name=cells[1],
            short_name=cells[2],
            centre_nm=_number(cells[3]),
            fwhm_nm=_number(cells[4]),
            peak_transmission=_number(cells[5]),
            comment=cells[6] if len(cells) > 6 else "",
        )
    return table


def profile_for_header(header: Mapping[str, Any]) -> Profile | None:
    """The shipped profile a header belongs to, or None for an unknown instrument."""
    for key in available_profiles():
        profile = load_profile(key)
        if profile.matches(header):
            return profile
    return None
