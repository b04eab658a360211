"""The star test: whether a group of sharp pixels is a star or a cosmic ray, by its profile.

ALFOSC binned 4x4 undersamples the seeing, so L.A.Cosmic takes the cores of stars for
cosmic rays (``nota.reduce.cosmics``). Each group is fitted, on the 5x5 box around its
brightest pixel, with pixel-integrated Moffat profiles over a grid of widths and sub-pixel
centres (amplitude and constant by weighted least squares, all boxes at once as matrix
products): a group that fits the frame's seeing about as well as anything sharper is a star.
The seeing itself is the median best width of bright, well-fitted peaks.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from nota.reduce.cosmics import CosmicsParameters

# The profile grid of the star test: FWHM in px and sub-pixel centres of a 5x5 box.
_FWHM_GRID = np.round(np.arange(0.5, 3.01, 0.05), 3)
_OFFSETS = np.linspace(-0.5, 0.5, 7)
_HALF = 2


@lru_cache(maxsize=4)
def _templates(beta: float) -> np.ndarray:
    """Pixel-integrated Moffat profiles, (fwhm x centre, 25) normalised to unit sum."""
    nsub = 9
    sub = (np.arange(nsub) + 0.5) / nsub - 0.5
    grid = np.arange(-_HALF, _HALF + 1)
    n = grid.size
    out = np.empty((_FWHM_GRID.size, _OFFSETS.size ** 2, n * n))
    for a, fwhm in enumerate(_FWHM_GRID):
        alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
        k = 0
        for dy in _OFFSETS:
            yy = (grid[:, None] + sub[None, :] - dy).ravel()
            for dx in _OFFSETS:
                xx = (grid[:, None] + sub[None, :] - dx).ravel()
                prof = (1.0 + (yy[:, None] ** 2 + xx[None, :] ** 2) / alpha**2) ** -beta
                prof = prof.reshape(n, nsub, n, nsub).sum(axis=(1, 3)).ravel()
                out[a, k] = prof / prof.sum()
                k += 1
    return out.reshape(-1, n * n)


def _profile_chi2(boxes: np.ndarray, var: np.ndarray, beta: float) -> np.ndarray:
    """Best chi-square per FWHM of amplitude x profile + constant, for (n, 25) boxes at once
    (the weighted sums are matrix products with the templates); pixels of infinite variance
    weigh nothing, and a box with too few left fits nothing (inf). Returns (n, FWHMs)."""
    t = _templates(beta)
    w = 1.0 / var
    b = boxes - np.median(boxes, axis=1, keepdims=True)  # the constant absorbs it: less cancellation
    wb = w * b
    stt, st, stb = w @ (t * t).T, w @ t.T, wb @ t.T
    s1, sb, sbb = w.sum(1)[:, None], wb.sum(1)[:, None], (wb * b).sum(1)[:, None]
    det = stt * s1 - st * st
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        amp = (stb * s1 - st * sb) / det
        level = (stt * sb - st * stb) / det
        chi2 = (sbb - 2 * amp * stb - 2 * level * sb + amp * amp * stt
                + 2 * amp * level * st + level * level * s1)
    chi2 = np.where((amp > 0) & np.isfinite(chi2), np.maximum(chi2, 0), np.inf)
    return chi2.reshape(len(boxes), _FWHM_GRID.size, -1).min(-1)


def _finite(data: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-finite pixels (a dead column divided through a flat, say) as the median with
    infinite variance: they then weigh nothing and compare as nothing, without warnings."""
    bad = ~(np.isfinite(data) & np.isfinite(var))
    if not bad.any():
        return data, var
    fill = np.median(data[~bad]) if not bad.all() else 0.0
    return np.where(bad, fill, data), np.where(bad, np.inf, var)


def _reflect(i: np.ndarray, n: int) -> np.ndarray:
    """Indices reflected into 0..n-1 as numpy's 'reflect' pads (-1 is 1, n is n - 2)."""
    i = np.abs(i)
    return np.where(i > n - 1, 2 * (n - 1) - i, i)


def _window(centres: np.ndarray, n: int, half: int) -> np.ndarray:
    """Indices of the (len, 2 half + 1) windows around ``centres``, mirrored at the edges."""
    return _reflect(centres[:, None] + np.arange(-half, half + 1), n)


def _boxes(data: np.ndarray, var: np.ndarray, ys: np.ndarray, xs: np.ndarray, floor: float):
    """The 5x5 boxes centred on (ys, xs), (n, 25), and their variance with the profile error."""
    yy, xx = _window(ys, data.shape[0], _HALF)[:, :, None], _window(xs, data.shape[1], _HALF)[:, None, :]
    box = data[yy, xx].reshape(len(ys), -1).astype(np.float64)
    excess = np.clip(box - np.median(box, axis=1, keepdims=True), 0, None)
    return box, var[yy, xx].reshape(len(ys), -1).astype(np.float64) + (floor * excess) ** 2


def _fwhm(data: np.ndarray, var: np.ndarray, unusable: np.ndarray, beta: float, snr: float,
          floor: float, level: float | None = None) -> float | None:
    bad = ndimage.binary_dilation(unusable, iterations=3) if unusable.any() else unusable
    level = np.median(data) if level is None else level
    peaks = (data == ndimage.maximum_filter(data, size=5)) & ~bad
    peaks &= (data - np.float32(level)) > np.float32(snr) * np.sqrt(var)
    peaks[:_HALF + 1], peaks[-_HALF - 1:], peaks[:, :_HALF + 1], peaks[:, -_HALF - 1:] = False, False, False, False
    ys, xs = np.nonzero(peaks)
    if not ys.size:
        return None
    box, v = _boxes(data, var, ys, xs, floor)
    chi2 = _profile_chi2(box, v, beta)
    best = np.argmin(chi2, axis=1)
    good = chi2[np.arange(ys.size), best] / (box.shape[1] - 3) < 5.0
    widths = _FWHM_GRID[best][good & (_FWHM_GRID[best] > 0.7)]
    return float(np.median(widths)) if widths.size else None


def _star_like(d: np.ndarray, v: np.ndarray, flagged: np.ndarray, fwhm: float | None,
               params: CosmicsParameters, fits: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """``star_like_groups`` on finite data; ``fits`` keeps the profile fits by
    pixel between calls on the same data: the groups L.A.Cosmic flags mostly peak where the
    candidates did, and a box's fit depends on the box alone."""
    labels, n = ndimage.label(flagged, structure=np.ones((3, 3), bool))
    if n == 0:
        return np.zeros(flagged.shape, bool)
    ys, xs = np.nonzero(labels)
    first = np.lexsort((-d[ys, xs], group := labels[ys, xs]))  # by group, brightest first
    first = first[np.r_[True, group[first][1:] != group[first][:-1]]]
    ys, xs = ys[first], xs[first]
    if fwhm is None:  # no seeing measured: anything from 0.9 px up counts as a star
        seeing = _FWHM_GRID >= 0.9
    else:
        tol = params.fwhm_tolerance
        seeing = (_FWHM_GRID >= fwhm * (1 - tol)) & (_FWHM_GRID <= fwhm * (1 + tol))
    sharper = _FWHM_GRID < _FWHM_GRID[seeing].min()
    chi2 = _fits_at(d, v, ys, xs, params, {} if fits is None else fits)
    with np.errstate(invalid="ignore"):  # inf - inf: nothing fits, so no star
        star = np.concatenate([[False], chi2[:, seeing].min(1) - chi2[:, sharper].min(1) < params.star_margin])
    return star[labels]


def _fits_at(d: np.ndarray, v: np.ndarray, ys: np.ndarray, xs: np.ndarray, params: CosmicsParameters,
             fits: dict[int, np.ndarray]) -> np.ndarray:
    """The profile chi-squares (per FWHM) of the boxes centred on (ys, xs), those in ``fits``
    (by flat pixel index) reused and the others fitted and added."""
    keys = (ys * d.shape[1] + xs).tolist()
    new = np.array([k not in fits for k in keys], bool)
    if new.any():
        box, bv = _boxes(d, v, ys[new], xs[new], params.model_floor)
        fits.update(zip((k for k, n in zip(keys, new) if n), _profile_chi2(box, bv, params.psf_beta)))
    return np.array([fits[k] for k in keys]).reshape(len(keys), _FWHM_GRID.size)
