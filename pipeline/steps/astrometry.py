"""Astrometry: each reduced frame solved with astrometry.net (a stage of ``reduced``).

The stars are found on the frame's signal-to-noise image (cosmic rays masked), ``solve-field``
is called with the header's pointing and the profile's pixel scale, and the TAN WCS is
refitted to every matched star of the catalogues the index files were built from.

A frame that does not solve on its own (a short standard exposure: a few stars) takes the
WCS of a frame that did. At plan time the frames of one pointing (same readout, kind and
sky position, each within an hour of the last) choose an anchor, the one most likely to
solve (most exposure times bandwidth); each night's pointing anchors have a night anchor
(a standard's, so standards never wait for science frames that wait for their photometry).
A frame's ``reduced`` task takes its anchors' tasks as optional needs. At make time a frame
that does not solve moves its anchor's WCS by the headers' pointing difference, finds the
shift that lays the reference stars on its own stars, and refits on those it matched; with
none it keeps the header's shift and says so. ``NOTAWCS`` and ``products.wcs_status`` say
which; a frame nothing anchors says why it was not solved.
"""

from __future__ import annotations

import functools
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nota.instruments import Profile

log = logging.getLogger(__name__)

NAME = "astrometry"
VERSION = 2  # 2: stars found on the S/N image, few-star refits, WCS inherited from an anchor

__all__ = ["NAME", "VERSION", "Params", "params_for", "anchors", "solve_wcs", "ANCHOR_ROLES"]

ANCHOR_ROLES = ("anchor", "night_anchor")  # the needs a frame inherits from, in the order tried
POINTING_GAP_S = 3600.0  # frames of one position further apart in time than this are two pointings
POINTING_RADIUS = 0.5  # of the field's larger side: frames this near on the sky share a pointing
BROAD_BAND_NM = 100.0  # the bandwidth of a filter the profile gives no width for


@dataclass(frozen=True)
class Params:
    """What solving a frame depends on: the index files (by name and size) and the scale."""

    index_dir: str
    index: tuple[tuple[str, int], ...]
    pixel_scale: float  # arcsec per (binned) pixel
    fwhm_px: float  # the star size source-finding starts from
    timeout: float = 5.0  # s, per solve-field run
    nsigma: float = 5.0  # detection threshold on the signal-to-noise image
    search_arcsec: float = 60.0  # how far an inherited WCS may be off once moved by the headers
    low_odds: float = 1e4  # solve-field's threshold for a second try on a few stars, checked on the catalogue


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


# Planning: who anchors whom --------------------------------------------------------------


def _bandwidth(profile: Profile, name: str | None) -> float:
    """A filter's width in nm (its table's FWHM, else its passband's equivalent width)."""
    from nota.passbands import passband_for_filter
    from nota.standards import find_filter

    if not name:
        return BROAD_BAND_NM
    try:
        filt = find_filter(name, profile)
        if filt.fwhm_nm:
            return float(filt.fwhm_nm)
        band = passband_for_filter(filt)
        return float(np.trapezoid(band.response, band.wavelength) / band.response.max()) / 10.0
    except (KeyError, ValueError, OSError):
        return BROAD_BAND_NM


def _separation_deg(a: dict, b: dict) -> float:
    ra1, dec1, ra2, dec2 = map(np.radians, (a["ra"], a["dec"], b["ra"], b["dec"]))
    cos = np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(ra1 - ra2)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def _pointings(frames: list[dict]) -> list[list[dict]]:
    """Frames of one readout and kind, near on the sky, each within an hour of the last."""
    series: dict[tuple, list[dict]] = defaultdict(list)
    for f in sorted(frames, key=lambda f: (f["mjd"], f["file_id"])):
        series[(f["night"], f["instrument"], f["binning"], f["naxis1"], f["naxis2"], f["kind"])].append(f)
    out = []
    for members in series.values():
        open_: list[list[dict]] = []
        for f in members:
            radius = POINTING_RADIUS * f["scale"] * max(f["naxis1"], f["naxis2"]) / 3600.0
            home = next((p for p in open_ if _separation_deg(p[0], f) <= radius
                         and (f["mjd"] - p[-1]["mjd"]) * 86400.0 <= POINTING_GAP_S), None)
            if home is None:
                open_.append([f])
            else:
                home.append(f)
        out += open_
    return out


def anchors(frames: list[dict], profile_of) -> dict[int, dict[str, int]]:
    """For each frame that has anchors, role -> the anchor's file_id.

    ``frames`` are frame facts with the solver's ``scale``; ``profile_of(facts)`` their
    profile. The anchor of a pointing is the frame with the most exposure times bandwidth
    (the earliest among equals); each night and readout's night anchor is the best of its
    standards' pointing anchors (of all, on a night without standards).
    """
    usable = [f for f in frames if f.get("scale") and f.get("mjd") is not None and f.get("naxis1") and f.get("naxis2")
              and isinstance(f.get("ra"), (int, float)) and isinstance(f.get("dec"), (int, float))]
    for f in usable:
        f["score"] = float(f["exptime"] or 0.0) * _bandwidth(profile_of(f), f["filter"])
    best = lambda members: max(members, key=lambda f: (f["score"], -f["mjd"], -f["file_id"]))  # noqa: E731
    links: dict[int, dict[str, int]] = {}
    by_night: dict[tuple, list[dict]] = defaultdict(list)
    for pointing in _pointings(usable):
        anchor = best(pointing)
        for f in pointing:
            if f is not anchor:
                links[f["file_id"]] = {"anchor": anchor["file_id"]}
        by_night[(anchor["night"], anchor["instrument"], anchor["binning"], anchor["naxis1"],
                  anchor["naxis2"])].append(anchor)
    night_anchor_of = {}
    for where, pointing_anchors in by_night.items():
        standards = [a for a in pointing_anchors if a["kind"] == "standard"]
        night_anchor_of[where] = best(standards or pointing_anchors)
    for f in usable:
        night_anchor = night_anchor_of[(f["night"], f["instrument"], f["binning"], f["naxis1"], f["naxis2"])]
        if f is not night_anchor and links.get(f["file_id"], {}).get("anchor") != night_anchor["file_id"]:
            links.setdefault(f["file_id"], {})["night_anchor"] = night_anchor["file_id"]
    return links


# Making: solve, or inherit ---------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _reference_stars(index_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """RA and Dec of the catalogues the index files were built from (for the refit)."""
    from astropy.table import Table, vstack

    tables = [Table.read(p) for p in sorted(Path(index_dir).glob("*.cat.fits"))]
    if not tables:
        return np.array([]), np.array([])
    stars = vstack(tables)
    return np.asarray(stars["RA"], float), np.asarray(stars["DEC"], float)


def _pointing(header) -> tuple[float, float] | None:
    ra, dec = header.get("RA"), header.get("DEC")
    if isinstance(ra, (int, float)) and isinstance(dec, (int, float)):
        return float(ra), float(dec)
    return None


def _solve(ccd, header, params: Params, sources) -> tuple[object | None, str, int, float | None]:
    """(WCS or None, status, matched stars, rms in arcsec): never fatal."""
    from nota.reduce.astrometry import match_residuals, solve
    from nota.reduce.registration import fit_matched

    pointing = _pointing(header)
    if pointing is None:
        return None, "not solved: no RA/DEC in the header", 0, None
    where = dict(index_dir=Path(params.index_dir), ra=pointing[0], dec=pointing[1], scale=params.pixel_scale,
                 timeout=params.timeout)
    reference_ra, reference_dec = _reference_stars(params.index_dir)
    wcs = solve(sources, ccd.shape, **where)
    if wcs is None and reference_ra.size:
        # Five or six stars verify below astrometry.net's default odds: a second try at
        # lower odds, kept only when most of the stars then sit on catalogue stars.
        wcs = solve(sources, ccd.shape, odds_to_solve=params.low_odds, **where)
        if wcs is not None:
            wcs, _ = fit_matched(wcs, sources, reference_ra, reference_dec, ccd.shape)
            matched, _ = match_residuals(wcs, sources, reference_ra, reference_dec)
            if matched < max(5, len(sources.x) / 2):
                wcs = None
    if wcs is None:
        return None, f"not solved ({len(sources.x)} stars found)", 0, None
    if not reference_ra.size:
        return wcs, "solved", 0, None
    wcs, _ = fit_matched(wcs, sources, reference_ra, reference_dec, ccd.shape)
    matched, rms = match_residuals(wcs, sources, reference_ra, reference_dec)
    return wcs, "solved", matched, rms


def _anchor_wcs(path: str):
    """(WCS, header) of an anchor's product when it has one, else None."""
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning
    import warnings

    header = fits.getheader(path)
    if not str(header.get("NOTAWCS", "")).startswith(("solved", "inherited")):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header)
    return (wcs.celestial, header) if wcs.has_celestial else None


def _inherit(frame, params: Params, sources) -> tuple[object | None, str | None, int, float | None]:
    """The first anchor's WCS laid on this frame's stars: (WCS, status, matched, rms)."""
    from nota.reduce.astrometry import match_residuals
    from nota.reduce.registration import register, repointed

    reference_ra, reference_dec = _reference_stars(params.index_dir)
    for role in ANCHOR_ROLES:
        path = frame.inputs.get(role)
        found = _anchor_wcs(path) if path else None
        if found is None:
            continue
        wcs, header = found
        name = os.path.basename(path)
        mine, theirs = _pointing(frame.header), _pointing(header)
        moved = wcs
        if mine is not None and theirs is not None:  # its pointing where the anchor's fell on the detector
            x, y = wcs.all_world2pix([[*theirs]], 0)[0]
            moved = repointed(wcs, *mine, x, y)
        laid = register(moved, sources, reference_ra, reference_dec, frame.ccd.shape,
                        search_arcsec=params.search_arcsec) if reference_ra.size else None
        if laid is not None:
            fitted, _ = laid
            matched, rms = match_residuals(fitted, sources, reference_ra, reference_dec)
            stars = "star" if matched == 1 else "stars"
            return fitted, f"inherited from {name}, refined on {matched} {stars}", matched, rms
        if mine is not None and theirs is not None:
            return moved, f"inherited from {name}, moved by the headers' pointing (no star matched)", 0, None
    return None, None, 0, None


def solve_wcs(frame) -> None:
    """The frame's stage: solve (or inherit), write the WCS into the header, keep the figures."""
    from nota.reduce.astrometry import extract_sources

    params: Params | None = frame.params.astrometry
    if params is None:
        return
    ccd = frame.ccd
    error = None if ccd.uncertainty is None else ccd.uncertainty.array
    sources = extract_sources(ccd.data, params.fwhm_px, mask=ccd.mask, error=error, nsigma=params.nsigma)
    wcs, status, matched, rms = _solve(ccd, frame.header, params, sources)
    if wcs is None:
        inherited, how, n, spread = _inherit(frame, params, sources)
        if inherited is not None:
            wcs, status, matched, rms = inherited, how, n, spread
    if wcs is not None:
        frame.header.update(wcs.to_header(relax=True))
        rms_text = "no reference catalogue to measure it" if rms is None else f"{rms:.3f} arcsec"
        how = "from astrometry.net" if status == "solved" else status
        frame.history.append(f"nota: WCS {how}, {matched} stars, rms {rms_text}")
    # A long status (an anchor's name) takes the card's comment room: it goes without one.
    frame.header["NOTAWCS"] = (status, "nota astrometry") if len(status) <= 47 else status
    frame.figures.update(wcs_status=status, wcs_matched=matched, wcs_rms_arcsec=rms)
