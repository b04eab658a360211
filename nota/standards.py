"""Spectrophotometric standard stars: the Oke (1990) table and their CALSPEC spectra.

Shared by the simulator (which gives each standard its true magnitude) and the photometry
step (which fits zero points against the same magnitudes).
"""

from __future__ import annotations

import functools
import gzip
import io
import logging
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np

from nota.instruments import Filter, Profile, load_profile
from nota.passbands import ab_magnitude, passband_for_filter

__all__ = [
    "CALSPEC_FILES",
    "StandardStar",
    "canonical_name",
    "catalogue_colour",
    "catalogue_magnitudes",
    "load_calspec",
    "read_oke_table",
    "find_filter",
    "standard_for_object",
    "synthetic_magnitudes",
]

log = logging.getLogger(__name__)

MAGNITUDE_SYSTEM = "AB"

# Canonical name (as in the instrument profile's [standards]) -> CALSPEC file in nota/data.
CALSPEC_FILES = {
    "HZ 44": "hz44_stis_006.fits.gz",
    "BD+75 325": "bd_75d325_stis_006.fits.gz",
    "Feige 34": "feige34_stis_006.fits.gz",
}


@dataclass(frozen=True)
class StandardStar:
    """One row of the Oke (1990) table; magnitudes are V (Johnson) and AB at 5460 Å."""

    name: str
    ra_deg: float
    dec_deg: float
    sptype: str
    v_mag: float | None
    ab_5460: float | None


def canonical_name(name: str) -> str:
    """'BD+75° 325', 'BD+75d325' and 'bd+75 325' all become 'BD+75 325'; 'HZ44' 'HZ 44'."""
    text = name.strip().replace("°", " ")
    text = re.sub(r"(?i)^bd\s*([+-])\s*(\d+)\s*d?\s*(\d+)$", r"BD\1\2 \3", text)
    text = re.sub(r"(?i)^(hz|feige|grw|g|gd|ltt|hd|sa)\s*(\d)", lambda m: m[1] + " " + m[2], text)
    text = re.sub(r"\s+", " ", text)
    for known in CALSPEC_FILES:
        if known.lower() == text.lower():
            return known
    return text


def _sexagesimal(text: str, hours: bool) -> float:
    sign = -1.0 if text.strip().startswith("-") else 1.0
    d, m, s = (abs(float(p)) for p in text.split(":"))
    value = sign * (d + m / 60 + s / 3600)
    return value * 15.0 if hours else value


@functools.cache
def read_oke_table() -> dict[str, StandardStar]:
    """The Oke (1990) standards shipped in ``nota/data``, by canonical name."""
    text = resources.files("nota").joinpath("data", "oke1990_standards.txt").read_text()
    stars: dict[str, StandardStar] = {}
    pattern = re.compile(
        r"^\d+\s+(?P<name>.+?)\s+(?P<ra>\d\d:\d\d:\d\d\.?\d*)\s+(?P<dec>[+-]\d\d:\d\d:\d\d)"
        r"\s+(?P<sp>\S+)\s+(?P<v>-|[\d.]+)\s+(?P<ab>[\d.]+)"
    )
    for line in text.splitlines():
        match = pattern.match(line.strip())
        if not match:
            continue
        name = canonical_name(match["name"])
        stars[name] = StandardStar(
            name=name,
            ra_deg=_sexagesimal(match["ra"], hours=True),
            dec_deg=_sexagesimal(match["dec"], hours=False),
            sptype=match["sp"],
            v_mag=None if match["v"] == "-" else float(match["v"]),
            ab_5460=float(match["ab"]),
        )
    return stars


@functools.cache
def load_calspec(name: str) -> tuple[np.ndarray, np.ndarray]:
    """CALSPEC spectrum of a standard: wavelength (Å) and flux (erg/s/cm²/Å)."""
    from astropy.io import fits

    key = canonical_name(name)
    if key not in CALSPEC_FILES:
        raise KeyError(f"no CALSPEC spectrum shipped for {name!r}")
    raw = resources.files("nota").joinpath("data", "calspec", CALSPEC_FILES[key]).read_bytes()
    with fits.open(io.BytesIO(gzip.decompress(raw))) as hdul:
        table = hdul[1].data
        wavelength = np.array(table["WAVELENGTH"], dtype=float)
        flux = np.array(table["FLUX"], dtype=float)
    good = np.isfinite(flux) & (flux > 0)
    return wavelength[good], flux[good]


def synthetic_magnitudes(name: str, filters: list[Filter]) -> dict[str, float]:
    """AB magnitudes of a standard through each filter, keyed by the filter's short name."""
    wavelength, flux = load_calspec(name)
    return {
        f.short_name: round(ab_magnitude(wavelength, flux, passband_for_filter(f)), 4)
        for f in filters
    }


def find_filter(filter_id_or_name: int | str, profile: Profile | None = None) -> Filter:
    """A filter of the profile from its wheel id (78, "78", "#78") or its name.

    Names match a table filter's short name ('R', 'NII_658') or full name, then the
    profile's named passbands ('V', 'Halpha') directly or through its aliases ('Ha'),
    case-insensitively; the archive's ``frames.filter`` column holds these names.
    """
    profile = profile or load_profile("alfosc")
    filters = profile.filters
    if isinstance(filter_id_or_name, int) and not isinstance(filter_id_or_name, bool):
        if filter_id_or_name in filters:
            return filters[filter_id_or_name]
        raise KeyError(f"no filter with id {filter_id_or_name} in the filter table")
    text = str(filter_id_or_name).strip()
    digits = text.lstrip("#")
    if digits.isdigit() and int(digits) in filters:
        return filters[int(digits)]
    for filt in filters.values():
        if text.lower() in (filt.short_name.strip().lower(), filt.name.strip().lower()):
            return filt
    named = _named_filter(text, profile)
    if named is not None:
        return named
    raise KeyError(f"no filter {filter_id_or_name!r} in the filter table or the passbands of {profile.key}")


def _named_filter(text: str, profile: Profile) -> Filter | None:
    """A filter of ``[filters] passbands``: by its canonical name, an alias, or either
    case-insensitively when only one name fits."""
    canonical = profile.canonical_filter(text)
    if canonical in profile.named_filters:
        return profile.named_filters[canonical]
    folded = [f for name, f in profile.named_filters.items() if name.lower() == text.lower()]
    return folded[0] if len(folded) == 1 else None


@functools.cache
def _catalogue_magnitude(name: str, filt: Filter) -> float:
    wavelength, flux = load_calspec(name)
    return ab_magnitude(wavelength, flux, passband_for_filter(filt))


def catalogue_magnitudes(name: str, filter_id_or_name: int | str, profile: Profile | None = None) -> tuple[float, str]:
    """(magnitude, system) of a CALSPEC standard through a NOT filter.

    The magnitude is synthetic AB: the CALSPEC spectrum integrated through the filter's
    passband (Bessell for B/V/R, a top-hat for narrow bands), exactly what the simulator
    gives its standards, so zero points come out in AB for every filter, narrow bands
    included (Oke's table has no narrow-band magnitudes).

    Examples
    --------
    >>> mag, system = catalogue_magnitudes("HZ44", "R")
    >>> system, round(mag, 2)
    ('AB', 11.98)
    """
    filt = find_filter(filter_id_or_name, profile)
    return round(_catalogue_magnitude(canonical_name(name), filt), 4), MAGNITUDE_SYSTEM


def catalogue_colour(name: str, colour_index: str, profile: Profile | None = None) -> float:
    """A CALSPEC standard's colour ('B-V': B minus V) from its synthetic AB magnitudes.

    Known in every filter of the table whichever filters a night observed, which is what
    lets a colour term be fitted from the standards alone. The index names two filters
    of the table joined by '-' (short names, ids or '#78').

    Examples
    --------
    >>> round(catalogue_colour("HZ 44", "B-V"), 2)
    -0.39
    """
    for at in [i for i, ch in enumerate(colour_index) if ch == "-"]:
        try:
            first, second = find_filter(colour_index[:at], profile), find_filter(colour_index[at + 1:], profile)
        except KeyError:
            continue
        key = canonical_name(name)
        return round(_catalogue_magnitude(key, first) - _catalogue_magnitude(key, second), 4)
    raise KeyError(f"colour index {colour_index!r} does not name two filters of the table")


def standard_for_object(obj: str | None, profile: Profile | None = None) -> str | None:
    """Canonical name of the standard an OBJECT text names ('HZ44 R' -> 'HZ 44'), or None.

    Uses the instrument profile's ``[standards]`` patterns, as ingest does to call a frame
    a standard, so both agree on which star a frame shows.
    """
    if not obj:
        return None
    for name, pattern in (profile or load_profile("alfosc")).standards.items():
        if re.search(pattern, obj.strip(), re.IGNORECASE):
            return name
    return None
