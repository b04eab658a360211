"""Astrometry: each reduced frame solved with astrometry.net (a stage of ``reduced``).

The stars are found on the frame, ``solve-field`` is called with the header's pointing
and the profile's pixel scale, and the TAN WCS is refitted to every matched star of the
catalogues the index files were built from. A frame that does not solve is kept and says
why (``NOTAWCS``, ``products.wcs_status``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nota.instruments import Profile

NAME = "astrometry"
VERSION = 1

__all__ = ["NAME", "VERSION", "Params", "params_for", "solve_wcs"]


@dataclass(frozen=True)
class Params:
    """What solving a frame depends on: the index files (by name and size) and the scale."""

    index_dir: str
    index: tuple[tuple[str, int], ...]
    pixel_scale: float  # arcsec per (binned) pixel
    fwhm_px: float  # the star size source-finding starts from
    timeout: float = 5.0  # s, per solve-field run


def params_for(profile: Profile, options, facts: dict) -> Params | None:
    """None when no index files are at hand: frames are then not solved."""
    if not options.index_dir:
        return None
    folder = Path(options.index_dir)
    index = tuple(sorted((p.name, p.stat().st_size) for p in folder.glob("index-*.fits"))) if folder.is_dir() else ()
    if not index:
        return None
    scale = facts.get("pixel_scale")  # arcsec per binned pixel, from the header's optics or the profile
    if not scale and profile.detector.get("pixel_scale"):  # an archive read before scales were stored
        scale = float(profile.detector["pixel_scale"]) * int((facts.get("binning") or "1x1").split("x")[0])
    if not scale:
        return None  # no scale to solve with: the frame is not solved
    return Params(str(folder.absolute()), index, float(scale), float(profile.detector.get("typical_seeing", 1.0)) / float(scale))


@functools.lru_cache(maxsize=2)
def _reference_stars(index_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """RA and Dec of the catalogues the index files were built from (for the refit)."""
    from astropy.table import Table, vstack

    tables = [Table.read(p) for p in sorted(Path(index_dir).glob("*.cat.fits"))]
    if not tables:
        return np.array([]), np.array([])
    stars = vstack(tables)
    return np.asarray(stars["RA"], float), np.asarray(stars["DEC"], float)


def _solve(ccd, header, params: Params) -> tuple[object | None, str, int, float | None]:
    """(WCS or None, status, matched stars, rms in arcsec): never fatal."""
    from nota.reduce.astrometry import extract_sources, match_residuals, refine, solve

    ra, dec = header.get("RA"), header.get("DEC")
    if not isinstance(ra, (int, float)) or not isinstance(dec, (int, float)):
        return None, "not solved: no RA/DEC in the header", 0, None
    sources = extract_sources(ccd.data, params.fwhm_px, mask=ccd.mask)
    wcs = solve(sources, ccd.shape, index_dir=Path(params.index_dir), ra=float(ra), dec=float(dec),
                scale=params.pixel_scale, timeout=params.timeout)
    if wcs is None:
        return None, f"not solved ({len(sources.x)} stars found)", 0, None
    reference_ra, reference_dec = _reference_stars(params.index_dir)
    if not reference_ra.size:
        return wcs, "solved", 0, None
    wcs = refine(wcs, sources, reference_ra, reference_dec)
    matched, rms = match_residuals(wcs, sources, reference_ra, reference_dec)
    return wcs, "solved", matched, rms


def solve_wcs(frame) -> None:
    """The frame's stage: solve, write the WCS into the header, keep the figures."""
    params: Params | None = frame.params.astrometry
    if params is None:
        return
    wcs, status, matched, rms = _solve(frame.ccd, frame.header, params)
    if wcs is not None:
        frame.header.update(wcs.to_header(relax=True))
        rms_text = "no reference catalogue to measure it" if rms is None else f"{rms:.3f} arcsec"
        frame.history.append(f"nota: WCS from astrometry.net, {matched} stars, rms {rms_text}")
    frame.header["NOTAWCS"] = (status, "nota astrometry")
    frame.figures.update(wcs_status=status, wcs_matched=matched, wcs_rms_arcsec=rms)
