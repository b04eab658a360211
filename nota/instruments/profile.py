"""What a profile is once read: a camera's facts as frozen dataclasses.

Reading and checking the TOML is ``nota.instruments.validate``'s work, finding the file
``nota.instruments.search``'s; this module only holds what they produce, so everything that
uses a profile (ingest, QC, the pipeline, photometry) depends on these types alone.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from nota.sections import binned, format_section

__all__ = ["KINDS", "NON_IMAGING_KINDS", "Filter", "KindRule", "Profile", "read_filter_table", "parse_filter_table"]

# Every kind a rule may give; `unknown` is what a frame no rule matched gets.
KINDS = ("bias", "dark", "dome_flat", "sky_flat", "standard", "science", "focus", "spectrum", "arc", "ignored")
# Kinds that keep a frame out of imaging reduction (with `unknown`).
NON_IMAGING_KINDS = ("spectrum", "arc", "ignored", "unknown")
# Filter names that mean "nothing in the beam" unless a profile says otherwise.
DEFAULT_EMPTY_NAMES = frozenset({"", "open", "none", "empty", "no filter"})


@dataclass(frozen=True)
class Filter:
    """One filter a profile knows: a row of an observatory's table or a named passband.

    ``passband`` is a speclite curve name ('bessell-V', 'sdss2010-g'); without one the
    filter is a top-hat of ``centre_nm`` and ``fwhm_nm``. Named filters have no ``id``.
    """

    id: int | None
    name: str
    short_name: str
    centre_nm: float | None
    fwhm_nm: float | None
    peak_transmission: float | None
    comment: str = ""
    passband: str | None = None


@dataclass(frozen=True)
class KindRule:
    """One rule deciding a frame's kind; the first rule whose conditions all hold wins.

    ``header`` holds (keyword, regular expression) pairs tested against the value's text.
    """

    kind: str
    rule: str
    imagetyp: str | None = None
    object: str | None = None
    window: bool | None = None
    standard: bool | None = None
    exptime_min: float | None = None
    exptime_max: float | None = None
    header: tuple[tuple[str, str], ...] = ()


@functools.lru_cache(maxsize=1024)
def searcher(pattern: str, ignore_case: bool = True) -> Callable[[str], "re.Match[str] | None"]:
    """A profile pattern's compiled ``search``: rules are tried on every frame of an ingest,
    and ``re.search`` with a pattern text looks it up in re's cache (and its flags) each time."""
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0).search


def value_text(value: Any) -> str:
    """A header value as rules see it: logicals T/F, numbers as str() writes them, text stripped."""
    if isinstance(value, bool):
        return "T" if value else "F"
    return str(value).strip()


def header_value(header: Mapping[str, Any], keyword: str) -> Any:
    """A keyword's value; ``HIERARCH ESO X`` is also found as ``ESO X`` (astropy's spelling)."""
    if keyword in header:
        return header[keyword]
    if keyword.upper().startswith("HIERARCH "):
        return header.get(keyword[9:].strip())
    return None


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
    fallback: Mapping[str, str] = field(default_factory=dict)
    filter_keywords: tuple[str, ...] = ()
    filter_aliases: Mapping[str, str] = field(default_factory=dict)  # lower-case name -> canonical
    named_filters: Mapping[str, Filter] = field(default_factory=dict)  # canonical name -> filter
    empty_filter_names: frozenset[str] = DEFAULT_EMPTY_NAMES
    source: str = ""
    digest: str = ""
    text: str = field(default="", repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int] | None:
        """Full unbinned readout as (NAXIS1, NAXIS2); None when the profile serves any size."""
        shape = self.detector.get("shape")
        if not isinstance(shape, (list, tuple)):
            return None
        return int(shape[0]), int(shape[1])

    @property
    def night_turnover_hour(self) -> float:
        return float(self.site.get("night_turnover_hour", 12))

    @property
    def longitude(self) -> float:
        return float(self.site.get("longitude", 0.0))

    @property
    def latitude(self) -> float | None:
        value = self.site.get("latitude")
        return None if value is None else float(value)

    @property
    def selections_dir(self) -> Path | None:
        """``KEY/selections/`` beside the profile's file (it may not exist)."""
        return Path(self.source).parent / self.key / "selections" if self.source else None

    @property
    def gain_unit(self) -> str:
        return str(self.detector.get("gain_unit", "e/adu"))

    @property
    def read_noise_unit(self) -> str:
        return str(self.detector.get("read_noise_unit", "e"))

    @property
    def is_fallback(self) -> bool:
        """A profile without ``match`` serves frames no specific profile claims."""
        return not self.match

    def matches(self, header: Mapping[str, Any]) -> bool:
        """True when a header belongs to this instrument (one ``match`` value matches)."""
        for keyword, pattern in self.match.items():
            value = header.get(keyword)
            if isinstance(value, str) and searcher(pattern, False)(value.strip()):
                return True
        return False

    def accepts(self, header: Mapping[str, Any]) -> bool:
        """As a fallback: True when one ``fallback`` value matches (case-insensitive), or
        always when the profile names no ``fallback``."""
        if not self.fallback:
            return True
        for keyword, pattern in self.fallback.items():
            value = header_value(header, keyword)
            if value is not None and searcher(pattern)(value_text(value)):
                return True
        return False

    def canonical_filter(self, written: Any) -> str | None:
        """A filter name as the profile spells it: aliases (case-insensitive) resolved,
        None for the names that mean an empty beam, other names kept as written."""
        if written is None:
            return None
        text = value_text(written)
        if text.lower() in self.empty_filter_names:
            return None
        return self.filter_aliases.get(text.lower(), text)

    def trimsec_for(self, xbin: int, ybin: int, naxis1: int | None = None,
                    naxis2: int | None = None) -> str | None:
        """The useful section of a binned readout: the profile's trimsec, or the whole frame
        when it names none (a CMOS sensor without overscan); None when the size is unknown."""
        trimsec = self.detector.get("trimsec")
        if trimsec:
            return binned(trimsec, xbin, ybin)
        if naxis1 and naxis2:
            return format_section(1, int(naxis1), 1, int(naxis2))
        return None

    def biassec_for(self, xbin: int, ybin: int) -> str | None:
        """The overscan of a binned readout, or None for a sensor without one."""
        biassec = self.detector.get("biassec")
        return binned(biassec, xbin, ybin) if biassec else None

    def is_window(self, naxis1: int | None, naxis2: int | None, xbin: int, ybin: int) -> bool:
        """True when a readout is smaller than the full (binned) detector."""
        shape = self.shape
        if shape is None or naxis1 is None or naxis2 is None:
            return False
        return naxis1 < math.floor(shape[0] / xbin) or naxis2 < math.floor(shape[1] / ybin)


def _number(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def parse_filter_table(text: str) -> dict[int, Filter]:
    """A pipe-separated NOT-style filter table: id | name | short | centre | fwhm | peak | comment."""
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


@functools.cache
def read_filter_table(name: str = "alfosc_filters.dat") -> dict[int, Filter]:
    """Read a filter table shipped in ``nota/data`` (or a file at that path)."""
    path = Path(name)
    if path.is_absolute():
        return parse_filter_table(path.read_text())
    from importlib import resources  # a table shipped with nota: rarely, and it costs an ingest's start

    return parse_filter_table(resources.files("nota").joinpath("data", name).read_text())
