"""A frame that does not solve on its own: its stars laid on a solved frame's WCS.

A short exposure shows a few stars, too few for astrometry.net's quads, yet enough to place
a WCS it is handed: another frame's solution, moved to this frame's pointing (``repointed``),
shifted until the reference stars fall on its stars (``find_offset``: a dither moves every
star alike), then refitted with as many parameters as its stars carry (``fit_matched``).
Pure functions of positions and WCSs, like the rest of ``nota.reduce``.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.wcs import WCS

from nota.reduce.astrometry import Sources

__all__ = ["shifted", "repointed", "find_offset", "fit_matched", "register"]


# A frame that does not solve on its own: its stars laid on a solved frame's WCS ----------------


def shifted(wcs: WCS, dx: float, dy: float) -> WCS:
    """The WCS of the same sky moved by (dx, dy) pixels on the detector (a dither, a re-pointing)."""
    return _moved(wcs, np.eye(2), np.array([dx, dy]))


def repointed(wcs: WCS, ra: float, dec: float, x: float, y: float) -> WCS:
    """The WCS of the same camera pointed elsewhere: (ra, dec) at pixel (x, y), 0-based.

    Moving the tangent point keeps the camera's scale and orientation on the sky at any
    distance, where a shift in one projection's pixels holds only over a few arcminutes.
    """
    old = wcs.celestial
    out = WCS(naxis=2)
    out.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    out.wcs.cunit = ["deg", "deg"]
    out.wcs.radesys = old.wcs.radesys or "ICRS"
    out.wcs.cd = old.pixel_scale_matrix
    out.wcs.crpix = [x + 1.0, y + 1.0]
    out.wcs.crval = [ra, dec]
    return out


def _moved(wcs: WCS, matrix: np.ndarray, offset: np.ndarray) -> WCS:
    """TAN WCS of a frame whose pixels are ``matrix @ p + offset`` of ``wcs``'s pixels p."""
    old = wcs.celestial
    out = WCS(naxis=2)
    out.wcs.ctype = list(old.wcs.ctype)
    out.wcs.cunit = list(old.wcs.cunit)
    out.wcs.crval = list(old.wcs.crval)
    out.wcs.radesys = old.wcs.radesys or "ICRS"
    out.wcs.cd = old.pixel_scale_matrix @ np.linalg.inv(matrix)
    out.wcs.crpix = matrix @ (old.wcs.crpix - 1.0) + offset + 1.0  # FITS pixels count from 1
    return out


def _pixels(wcs: WCS, ra: np.ndarray, dec: np.ndarray, shape: tuple[int, int], margin: float):
    """Reference stars through a WCS: pixel positions and sky indices of those on (or near) the frame."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, y = wcs.all_world2pix(ra, dec, 0)
    rows, cols = shape
    inside = (np.isfinite(x) & np.isfinite(y) & (x > -margin) & (y > -margin)
              & (x < cols - 1 + margin) & (y < rows - 1 + margin))
    return x[inside], y[inside], np.flatnonzero(inside)


def find_offset(sources: Sources, rx: np.ndarray, ry: np.ndarray, search_px: float,
                tol_px: float = 1.5) -> tuple[float, float, int] | None:
    """The detector shift that lays the most reference stars on the frame's stars, or None.

    Every star-minus-reference difference within the search is a candidate; the one most
    other differences agree with wins (a dither moves all stars alike), the smaller shift
    among equals. A shift only one star votes for, or one as good as another clearly
    different shift, is accepted only when it is much smaller than any other: else None.
    """
    from scipy.spatial import cKDTree

    if len(sources.x) == 0 or len(rx) == 0:
        return None
    dx = (sources.x[:, None] - rx[None, :]).ravel()
    dy = (sources.y[:, None] - ry[None, :]).ravel()
    near = np.hypot(dx, dy) <= search_px
    dx, dy = dx[near], dy[near]
    if dx.size == 0:
        return None
    points = np.column_stack([dx, dy])
    counts = np.array([len(n) for n in cKDTree(points).query_ball_point(points, tol_px)])
    size = np.hypot(dx, dy)
    best_count = counts.max()
    tied = np.flatnonzero(counts == best_count)
    best = tied[np.argmin(size[tied])]
    rivals = tied[np.hypot(dx[tied] - dx[best], dy[tied] - dy[best]) > 2 * tol_px]
    if rivals.size and size[rivals].min() < 2 * size[best] + 2 * tol_px:
        return None  # two different shifts explain the stars as well: no guess
    members = np.hypot(dx - dx[best], dy - dy[best]) <= tol_px
    return float(np.median(dx[members])), float(np.median(dy[members])), int(best_count)


def _transform(source: np.ndarray, reference: np.ndarray, scale_free: bool,
               weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, offset) of source ~ matrix @ reference + offset, least squares weighted by
    ``weight`` (the stars' signal-to-noise squared): a shift, a rotation (and a scale, when
    ``scale_free``) when the stars measure one. An inherited WCS keeps its solved frame's
    rotation unless the stars measure a different one at three sigma: a short baseline of
    faint stars measures rotation worse than the solved frame knew it."""
    w = np.ones(len(source)) if weight is None else np.clip(np.asarray(weight, float), 1e-12, None)
    w = w / w.sum()
    s = source[:, 0] + 1j * source[:, 1]
    r = reference[:, 0] + 1j * reference[:, 1]
    sc, rc = np.sum(w * s), np.sum(w * r)
    just_shift = np.eye(2), np.array([(sc - rc).real, (sc - rc).imag])
    if len(source) < 3:
        return just_shift
    spread = np.sum(w * np.abs(r - rc) ** 2)
    a = np.sum(w * (s - sc) * np.conj(r - rc)) / spread
    if not scale_free:
        a /= abs(a)
        misfit = np.sum(w * np.abs((s - sc) - a * (r - rc)) ** 2) * len(s) / max(1, 2 * len(s) - 3)
        sigma = max(0.05, float(np.sqrt(misfit)))  # px per star, as the fit's scatter says
        if abs(np.angle(a)) < 3.0 * sigma / np.sqrt(spread * len(s)):
            return just_shift
    b = sc - a * rc
    return np.array([[a.real, -a.imag], [a.imag, a.real]]), np.array([b.real, b.imag])


def fit_matched(wcs: WCS, sources: Sources, ra: np.ndarray, dec: np.ndarray, shape: tuple[int, int], *,
                scale_free: bool = True, radius_px: float = 2.0, full_fit_from: int = 10,
                iterations: int = 4) -> tuple[WCS, int]:
    """Refit a WCS to the reference stars its frame's stars fall on: (WCS, stars matched).

    As many parameters as the stars can carry: a shift for one or two, rotation (and scale)
    for a few, the whole TAN projection from ``full_fit_from`` stars on: a handful of stars
    near the centre pin a shift well and a full fit badly.
    """
    from astropy.coordinates import SkyCoord
    from astropy.wcs.utils import fit_wcs_from_points
    import astropy.units as u

    matched = 0
    for _ in range(iterations):
        rx, ry, index = _pixels(wcs, ra, dec, shape, radius_px)
        if not rx.size or not len(sources.x):
            break
        distance = np.hypot(sources.x[:, None] - rx[None, :], sources.y[:, None] - ry[None, :])
        nearest = distance.argmin(axis=1)
        good = distance[np.arange(len(sources.x)), nearest] < radius_px
        matched = int(good.sum())
        if matched == 0:
            break
        if matched >= full_fit_from:
            sky = SkyCoord(ra[index[nearest[good]]] * u.deg, dec[index[nearest[good]]] * u.deg)
            wcs = fit_wcs_from_points((sources.x[good], sources.y[good]), sky, projection="TAN")
        else:
            source = np.column_stack([sources.x[good], sources.y[good]])
            reference = np.column_stack([rx[nearest[good]], ry[nearest[good]]])
            wcs = _moved(wcs, *_transform(source, reference, scale_free, sources.flux[good] ** 2))
        residual = distance[np.arange(len(sources.x)), nearest][good]
        radius_px = max(0.7, min(radius_px, 5 * float(np.sqrt(np.mean(residual ** 2)))))
    return wcs, matched


def register(wcs: WCS, sources: Sources, ra: np.ndarray, dec: np.ndarray, shape: tuple[int, int], *,
             search_arcsec: float = 60.0) -> tuple[WCS, int] | None:
    """Another frame's WCS laid on this frame's stars: found shift, then refit (rotation and
    shift; the scale is the solved frame's). None when no shift is found."""
    from astropy.wcs.utils import proj_plane_pixel_scales

    scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial))) * 3600.0
    search_px = search_arcsec / scale
    rx, ry, _ = _pixels(wcs, ra, dec, shape, search_px)
    offset = find_offset(sources, rx, ry, search_px, tol_px=max(1.5, 1.0 / scale))
    if offset is None:
        return None
    wcs = shifted(wcs, offset[0], offset[1])
    fitted, matched = fit_matched(wcs, sources, ra, dec, shape, scale_free=False)
    return (fitted, matched) if matched else None
