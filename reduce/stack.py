"""Combining a series of exposures of one field: align on the stars, then clip and average.

The lecture's first way of removing cosmic rays: three or more exposures of the same
object, filter and night, aligned, and a pixel that is high in one of them only is a hit.
With three frames a clipping on the frames' own scatter cannot work (one outlier among
three is never more than 1.15 standard deviations from their mean), so a value is
rejected on the noise each frame carries in its uncertainty plane, as IRAF imcombine's
``ccdclip``, with a fractional term for what alignment and seeing change in star cores.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from nota.errors import NotaError
from nota.reduce.airmass import effective_airmass
from nota.reduce.combine import nanmedian0

__all__ = ["StackParameters", "align_series", "series_transforms", "stack_series"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackParameters:
    """How a series is combined.

    A rate is rejected when it lies more than ``high`` (above) or ``low`` (below) noise
    units from the median rate of its pixel; a noise unit is the frame's uncertainty and
    ``relative`` times the median above the sky in quadrature (imcombine's ``snoise``), so star cores
    that differ by seeing and interpolation are not clipped.
    """

    high: float = 4.0
    low: float = 5.0
    relative: float = 0.1
    order: int = 1  # bilinear: no ringing around hits, flux kept
    min_frames: int = 2  # fewer usable values than this cannot reject a hit: masked


def _filled(ccd: CCDData) -> np.ndarray:
    data = np.asarray(ccd.data, dtype=np.float64)
    bad = ~np.isfinite(data)
    if ccd.mask is not None:
        bad |= np.asarray(ccd.mask, bool)
    if bad.any():
        data = np.where(bad, np.median(data[~bad]), data)
    return data


def series_transforms(frames: Sequence[CCDData], reference: int = 0,
                      filled: Sequence[np.ndarray] | None = None) -> list:
    """The similarity transform taking each frame's pixels onto the reference frame's.

    astroalign matches triangles of detected stars, so offsets, rotation and scale need
    no WCS. Raises NotaError when a frame shares too few stars with the reference.
    ``filled``: the frames' data with bad pixels filled (``_filled``), when already made.
    """
    import astroalign
    from skimage.transform import SimilarityTransform

    filled = [_filled(f) for f in frames] if filled is None else filled
    target = filled[reference]
    reference_stars = _centroids(frames[reference], target)
    out = []
    for i, ccd in enumerate(frames):
        if i == reference:
            out.append(SimilarityTransform())
            continue
        try:
            transform, _ = astroalign.find_transform(filled[i], target)
        except (astroalign.MaxIterError, ValueError):
            # Cosmic rays outnumbering the stars (long narrow-band exposures not yet
            # cleaned) leave no matching triangles: a 3x3 median removes single-pixel
            # hits and keeps the stars, which is all the triangles need.
            try:
                transform, _ = astroalign.find_transform(_smoothed(filled[i]), _smoothed(target))
            except (astroalign.MaxIterError, ValueError) as exc:
                raise NotaError(f"frame {i} of the series cannot be aligned: {exc}") from exc
        out.append(_refine(transform, _centroids(ccd, filled[i]), reference_stars))
    return out


def _smoothed(data: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.median_filter(data, size=3)


def _centroids(ccd: CCDData, data: np.ndarray, snr: float = 10.0, half: int = 2) -> np.ndarray:
    """(x, y) of bright peaks: first moments of a 5x5 box above the local sky.

    The first moment of a pixel-integrated symmetric profile is its centre whatever the
    sampling, which a peak fit of an undersampled star is not.
    """
    from scipy import ndimage

    sky = np.median(data)
    sigma = (np.full(data.shape, 1.4826 * np.median(np.abs(data - sky)))
             if ccd.uncertainty is None else np.asarray(ccd.uncertainty.array, np.float64))
    bad = np.zeros(data.shape, bool) if ccd.mask is None else ndimage.binary_dilation(
        np.asarray(ccd.mask, bool), iterations=half + 1)
    peaks = (data == ndimage.maximum_filter(data, size=2 * half + 1)) & ~bad
    peaks &= data - sky > snr * sigma
    e = 2 * half + 1
    peaks[:e], peaks[-e:], peaks[:, :e], peaks[:, -e:] = False, False, False, False
    grid = np.arange(-half, half + 1)
    out = []
    for y, x in zip(*np.nonzero(peaks)):
        ring = data[y - e:y + e + 1, x - e:x + e + 1]
        box = np.clip(data[y - half:y + half + 1, x - half:x + half + 1] - np.median(ring), 0, None)
        total = box.sum()
        out.append((x + (box.sum(0) * grid).sum() / total, y + (box.sum(1) * grid).sum() / total))
    return np.array(out).reshape(-1, 2)


def _refine(transform, source: np.ndarray, target: np.ndarray, radius: float = 1.0):
    """The transform fitted again on every star the two frames share, not astroalign's 50.

    Sources without a counterpart within ``radius`` px (cosmic rays) drop out, and pairs
    off by more than 3 robust sigma are clipped twice. Too few pairs: astroalign's stands.
    """
    from scipy.spatial import cKDTree
    from skimage.transform import SimilarityTransform

    if len(source) < 6 or len(target) < 6:
        return transform
    dist, idx = cKDTree(target).query(transform(source), distance_upper_bound=radius)
    ok = np.isfinite(dist)
    src, dst = source[ok], target[idx[ok]]
    best = transform
    for _ in range(3):
        if len(src) < 6:
            break
        if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
            fitted = SimilarityTransform.from_estimate(src, dst)
            if not fitted:
                break
        else:
            fitted = SimilarityTransform()
            if not fitted.estimate(src, dst):
                break
        best = fitted
        res = np.hypot(*(fitted(src) - dst).T)
        keep = res <= max(3 * 1.4826 * np.median(res), 0.05)
        if keep.all():
            break
        src, dst = src[keep], dst[keep]
    return best


def _warp(image: np.ndarray, transform, shape, order: int, cval: float) -> np.ndarray:
    from skimage.transform import warp

    return warp(image, inverse_map=transform.inverse, output_shape=shape, order=order,
                mode="constant", cval=cval, preserve_range=True)


def align_series(frames: Sequence[CCDData], reference: int = 0,
                 params: StackParameters | None = None) -> list[CCDData]:
    """Each frame resampled onto the reference frame's pixels, uncertainty and mask too.

    Variance is resampled like the data (an upper bound: interpolation averages noise);
    a pixel touched by a masked one or by the outside of the frame is masked.
    """
    params = params or StackParameters()
    if not frames:
        raise NotaError("no frames to align")
    shape = frames[reference].shape
    if any(f.shape != shape for f in frames):
        raise NotaError("the frames of a series must have one shape")
    filled = [_filled(f) for f in frames]
    out = []
    for ccd, data, transform in zip(frames, filled, series_transforms(frames, reference, filled)):
        mask = np.zeros(shape, bool) if ccd.mask is None else np.asarray(ccd.mask, bool)
        mask = mask | ~np.isfinite(ccd.data)
        moved = _warp(data, transform, shape, params.order, np.nan)
        touched = _warp(mask.astype(np.float64), transform, shape, params.order, 1.0) > 0
        touched |= ~np.isfinite(moved)
        sigma = None
        if ccd.uncertainty is not None:
            var = np.asarray(ccd.uncertainty.array, np.float64) ** 2
            sigma = np.sqrt(np.clip(_warp(var, transform, shape, params.order, 0.0), 0, None))
            sigma = StdDevUncertainty(sigma.astype(np.float32), copy=False)
        meta = ccd.meta.copy() if isinstance(ccd.meta, fits.Header) else fits.Header(ccd.meta)
        dy, dx = transform.translation[1], transform.translation[0]
        meta.add_history(f"nota: aligned to series frame {reference}: shift x {dx:.3f} y {dy:.3f} "
                         f"rot {np.degrees(transform.rotation):.4f} deg scale {transform.scale:.5f}")
        out.append(CCDData(np.where(touched, 0, moved).astype(np.float32), unit=ccd.unit,
                           uncertainty=sigma, mask=touched, meta=meta,
                           wcs=frames[reference].wcs, copy=False))
    return out


def stack_series(frames: Sequence[CCDData], exptimes: Sequence[float], airmasses: Sequence[float],
                 params: StackParameters | None = None,
                 names: Sequence[str] | None = None) -> tuple[CCDData, dict]:
    """Combine aligned frames into counts for the whole series; return it and its metadata.

    Each frame becomes a rate (counts / its exposure time) and is brought to the series'
    mean sky level, hits are rejected on the noise, the rest averaged and multiplied by the summed exposure time: the stack reads as one
    exposure of EXPTIME = sum of exposure times, whatever the individual lengths. AIRMASS
    is the exposure-weighted mean of the given (mid-exposure) airmasses. Pixels where
    every frame was rejected or masked are masked, with the median rate there, and so are
    pixels fewer than ``min_frames`` frames cover (a hit there cannot be told).

    Example
    -------
    >>> stack, info = stack_series(align_series(frames), [300, 300, 300], [1.10, 1.10, 1.10])
    """
    params = params or StackParameters()
    n = len(frames)
    if n < 2 or len(exptimes) != n or len(airmasses) != n:
        raise NotaError("a stack needs two or more frames, each with its exposure time and airmass")
    t = np.asarray(exptimes, dtype=np.float64)
    if (t <= 0).any():
        raise NotaError(f"exposure times must be positive: {list(exptimes)}")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames):
        raise NotaError("the frames of a series must have one shape")

    rate = np.stack([np.asarray(f.data, np.float64) / ti for f, ti in zip(frames, t)])
    sigma = np.stack([
        (np.full(shape, np.nan) if f.uncertainty is None
         else np.asarray(f.uncertainty.array, np.float64)) / ti for f, ti in zip(frames, t)])
    bad = np.stack([np.zeros(shape, bool) if f.mask is None else np.asarray(f.mask, bool)
                    for f in frames]) | ~np.isfinite(rate)
    if np.isnan(sigma).any():  # no uncertainty plane: the series' own scatter
        scatter = 1.4826 * nanmedian0(np.abs(rate - nanmedian0(rate)))
        sigma = np.where(np.isnan(sigma), scatter, sigma)

    # The sky changes through a series (moon, twilight, airmass): compare and average the
    # frames with their sky offsets removed, then add the mean offset back, so a pixel
    # that lost a frame to a hit is not biased by the other frames' skies.
    offsets = np.array([np.median(r[~b]) for r, b in zip(rate, bad)])
    offsets -= offsets.mean()
    rate = rate - offsets[:, None, None]
    valid = np.where(bad, np.nan, rate)
    with warnings.catch_warnings():  # pixels no frame covers stay NaN, and are masked
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = nanmedian0(valid)
        # Two values have their mean as median, which a hit drags half-way: hits are
        # positive, so judge both against the lower one.
        pair = (~bad).sum(axis=0) == 2
        centre = np.where(pair, np.nanmin(valid, axis=0), centre)
    # The relative term is for sources: on the sky level it would hide every hit.
    excess = np.clip(centre - np.nanmedian(centre), 0, None)
    scale = np.sqrt(sigma**2 + (params.relative * excess) ** 2)
    dev = (rate - centre) / np.where(scale > 0, scale, np.inf)
    rejected = (dev > params.high) | (dev < -params.low)
    use = ~bad & ~rejected & np.isfinite(centre)
    used = use.sum(axis=0)
    none = used == 0
    thin = (~bad).sum(axis=0) < params.min_frames  # the edges only one offset frame covers
    total = float(t.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_rate = np.where(use, rate, 0).sum(0) / used
        mean_sigma = np.sqrt(np.where(use, sigma**2, 0).sum(0)) / used
    data = np.where(none, np.nan_to_num(centre), mean_rate) * total
    unc = np.where(none, 0.0, mean_sigma) * total

    airmass = effective_airmass(t, airmasses)
    inputs = list(names) if names is not None else [
        str(f.meta.get("FILENAME", f"frame {i}")) for i, f in enumerate(frames)]
    info = {
        "exptime": total, "airmass": airmass, "ncombine": n, "inputs": inputs,
        "sky_offsets": [float(o) for o in offsets],
        "rejected_pixels": int((rejected & ~bad).sum()), "all_rejected_pixels": int(none.sum()),
        "thin_pixels": int((thin & ~none).sum()),
    }
    ref = frames[0].meta
    meta = ref.copy() if isinstance(ref, fits.Header) else fits.Header(ref)
    meta["EXPTIME"] = (total, "s, sum of the combined exposures")
    meta["AIRMASS"] = (round(airmass, 5), "exposure-weighted mean mid-exposure airmass")
    meta["NCOMBINE"] = (n, "frames combined")
    meta.add_history(f"nota: stack of {n} frames, rates clipped at +{params.high}/-{params.low} "
                     f"sigma (relative {params.relative}), mean x total EXPTIME {total:g} s")
    for name, ti, x in zip(inputs, t, airmasses):
        meta.add_history(f"nota: input {name} EXPTIME {ti:g} AIRMASS {x:.4f}")
    log.debug("stacked %d frames: %d values rejected, %d pixels with none left",
              n, info["rejected_pixels"], info["all_rejected_pixels"])
    return CCDData(data.astype(np.float32), unit=frames[0].unit,
                   uncertainty=StdDevUncertainty(unc.astype(np.float32), copy=False),
                   mask=none | thin, meta=meta, wcs=frames[0].wcs, copy=False), info
