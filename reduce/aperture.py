"""Aperture photometry of stars on reduced frames: recentre, FWHM, aperture, local sky.

What the lecture's photometric calibration needs from each standard-star frame: the star's
counts per second in ADU (and their error) in an aperture large enough that seeing changes
through the night do not change the fraction of light it holds. Pure functions of a
``CCDData`` (data, uncertainty and mask travel together); nothing here reads files.

Positions are 0-based pixel coordinates of the frame given (numpy / photutils convention).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from astropy.nddata import CCDData
from astropy.stats import sigma_clipped_stats

from nota.errors import PhotometryError

__all__ = [
    "PhotometryError",
    "PhotometryParameters",
    "StarMeasurement",
    "measure_star",
    "measure_stars",
]

log = logging.getLogger(__name__)

MAG_PER_LN = 2.5 / math.log(10.0)   # 1.0857: d(mag) = MAG_PER_LN * d(flux)/flux
MEDIAN_EFFICIENCY = math.sqrt(math.pi / 2.0)   # error of a median / error of a mean


@dataclass(frozen=True)
class PhotometryParameters:
    """How a star is measured; sizes in units of the FWHM, with floors in pixels.

    The aperture radius of 3 FWHM holds 99.8 % of a Moffat beta=4 star (1 - (1 + (r/a)^2)^-3
    with a = 1.15 FWHM) and 97-98 % of a beta=2.5 one, so seeing changes between standards
    and science move the enclosed fraction by well under 1 %. On 4x4-binned ALFOSC frames
    the FWHM is only 1-1.5 pixels, so a floor of 4 pixels keeps the aperture from being a
    handful of pixels whose partial coverage dominates the sum.
    """

    aperture_fwhm: float = 3.0           # aperture radius / FWHM
    min_aperture_px: float = 4.0
    annulus_fwhm: tuple[float, float] = (5.0, 8.0)   # sky annulus radii / FWHM
    min_annulus_gap_px: float = 3.0      # inner sky radius at least aperture + this
    min_sky_pixels: int = 200            # outer radius grown until the annulus holds this many
    sky_clip_sigma: float = 3.0
    search_box_fwhm: float = 3.0         # half-size of the box searched for the peak
    min_search_box_px: float = 3.0
    centroid_box_fwhm: float = 1.5       # half-size of the centroiding box
    min_centroid_box_px: float = 2.0
    initial_fwhm_px: float = 3.0         # first guess when no FWHM is given
    fwhm_limits_px: tuple[float, float] = (0.5, 30.0)   # fitted FWHMs outside are not trusted
    core_fwhm: float = 0.5               # a masked pixel this close to the centre: not measurable


@dataclass(frozen=True)
class StarMeasurement:
    """One star on one frame. Fluxes in ADU (the frame's units), magnitudes instrumental.

    ``mag = -2.5 log10(flux / exptime)``; ``flags`` lists why a value may be off:
    ``core_masked`` (saturated or unusable pixels at the centre: not usable), ``masked``
    (masked aperture pixels replaced by their mirror image through the centre),
    ``edge`` (aperture or annulus leaves the frame), ``fwhm_not_fitted``, ``faint``
    (flux not positive).
    """

    x: float
    y: float
    x_guess: float
    y_guess: float
    fwhm: float                   # measured here (Gaussian fit), pixels
    aperture_radius: float
    annulus: tuple[float, float]
    flux: float
    flux_err: float
    sky: float                    # per pixel
    sky_std: float
    n_sky: int
    area: float                   # aperture area in pixels
    peak: float                   # highest sky-subtracted pixel
    exptime: float
    mag: float
    mag_err: float
    n_masked: int
    flags: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        """Good enough for a zero point: core intact and a positive flux."""
        return not {"core_masked", "faint"} & set(self.flags) and math.isfinite(self.mag)


@dataclass(frozen=True)
class _Frame:
    data: np.ndarray
    sigma: np.ndarray | None
    bad: np.ndarray
    exptime: float


def _frame(ccd: CCDData, exptime: float | None) -> _Frame:
    if not isinstance(ccd, CCDData):
        raise TypeError(f"expected a CCDData, not {type(ccd).__name__}")
    data = np.asarray(ccd.data, dtype=np.float64)
    bad = ~np.isfinite(data)
    if ccd.mask is not None:
        bad |= np.asarray(ccd.mask, dtype=bool)
    sigma = None
    if ccd.uncertainty is not None:
        from astropy.nddata import StdDevUncertainty

        sigma = np.asarray(ccd.uncertainty.represent_as(StdDevUncertainty).array,
                           dtype=np.float64)
        bad |= ~np.isfinite(sigma)
    if exptime is None:
        exptime = ccd.header.get("EXPTIME") if ccd.header is not None else None
    if exptime is None or not float(exptime) > 0:
        raise PhotometryError(f"frame has no positive exposure time (EXPTIME {exptime!r})")
    return _Frame(data, sigma, bad, float(exptime))


def _box(shape: tuple[int, int], x: float, y: float, half: float) -> tuple[slice, slice]:
    h = math.ceil(half)
    cx, cy = round(x), round(y)
    ny, nx = shape
    return slice(max(cy - h, 0), min(cy + h + 1, ny)), slice(max(cx - h, 0), min(cx + h + 1, nx))


def _radii(fwhm: float, p: PhotometryParameters) -> tuple[float, float, float]:
    r_ap = max(p.aperture_fwhm * fwhm, p.min_aperture_px)
    r_in = max(p.annulus_fwhm[0] * fwhm, r_ap + p.min_annulus_gap_px)
    r_out = max(p.annulus_fwhm[1] * fwhm, math.sqrt(r_in**2 + p.min_sky_pixels / math.pi))
    return r_ap, r_in, r_out


def _local_sky(f: _Frame, x: float, y: float, r_in: float, r_out: float,
               clip: float) -> tuple[float, float, int, bool]:
    """Sigma-clipped median and standard deviation of the annulus, and its pixel count.

    The median of a clipped annulus ignores neighbouring stars, cosmic rays and the
    star's own faint wings, which a mean would not.
    """
    rows, cols = _box(f.data.shape, x, y, r_out + 1)
    yy, xx = np.mgrid[rows, cols]
    r2 = (xx - x) ** 2 + (yy - y) ** 2
    ring = (r2 >= r_in**2) & (r2 <= r_out**2)
    edge = ring.sum() < 0.95 * math.pi * (r_out**2 - r_in**2)
    values = f.data[rows, cols][ring & ~f.bad[rows, cols]]
    if values.size < 10:
        raise PhotometryError(f"no sky around ({x:.1f}, {y:.1f}): {values.size} annulus pixels")
    _, median, std = sigma_clipped_stats(values, sigma=clip, maxiters=10)
    return float(median), float(std), int(values.size), edge


def _peak_near(f: _Frame, x: float, y: float, half: float, sky: float) -> tuple[float, float]:
    """The brightest unmasked pixel within ``half`` pixels (guesses may be a few px off)."""
    rows, cols = _box(f.data.shape, x, y, half)
    cut = np.where(f.bad[rows, cols], -np.inf, f.data[rows, cols] - sky)
    if not np.isfinite(cut).any():
        return x, y
    iy, ix = np.unravel_index(int(np.argmax(cut)), cut.shape)
    return float(cols.start + ix), float(rows.start + iy)


def _centroid(f: _Frame, x: float, y: float, half: float, sky: float) -> tuple[float, float]:
    """Centre of light of the sky-subtracted pixels in a small box, iterated twice.

    Centre of mass rather than a fitted Gaussian: at 1-1.5 px FWHM (4x4 binning) a fit has
    too few pixels, and for a bright, symmetric star both agree to a few hundredths of a pixel.
    """
    from photutils.centroids import centroid_com

    for _ in range(3):
        rows, cols = _box(f.data.shape, x, y, half)
        cut = f.data[rows, cols] - sky
        mask = f.bad[rows, cols] | (cut < 0)
        if mask.all():
            break
        cx, cy = centroid_com(np.where(mask, 0.0, cut), mask=mask)
        if not (np.isfinite(cx) and np.isfinite(cy)):
            break
        nx, ny = float(cols.start + cx), float(rows.start + cy)
        moved = math.hypot(nx - x, ny - y)
        x, y = nx, ny
        if moved < 0.01:
            break
    return x, y


def _fit_fwhm(f: _Frame, x: float, y: float, guess: float, sky: float,
              p: PhotometryParameters) -> float | None:
    """FWHM of a circular Gaussian integrated over pixels (photutils ``fit_fwhm``).

    Integrating over pixels matters when the star is barely wider than one pixel.
    """
    from photutils.psf import fit_fwhm

    half = max(2.0 * guess, 3.0)
    rows, cols = _box(f.data.shape, x, y, half)
    cut = f.data[rows, cols] - sky
    error = None if f.sigma is None else np.where(f.bad[rows, cols], 1.0, f.sigma[rows, cols])
    if error is not None:
        error = np.maximum(error, 1e-6)
    shape = tuple(n if n % 2 else n - 1 for n in cut.shape)   # fit_fwhm wants odd sizes
    try:
        value = float(fit_fwhm(cut, xypos=[(x - cols.start, y - rows.start)], fwhm=guess,
                               fit_shape=shape, mask=f.bad[rows, cols], error=error)[0])
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:   # a failed fit
        log.debug("FWHM fit at (%.1f, %.1f) failed: %s", x, y, exc)
        return None
    low, high = p.fwhm_limits_px
    return value if low <= value <= high else None


def _fill_masked(f: _Frame, x: float, y: float, radius: float, core_radius: float,
                 sky: float) -> tuple[np.ndarray, np.ndarray | None, tuple[slice, slice], int, bool]:
    """The aperture's cut-out with masked pixels replaced by their mirror through the centre.

    A star is point-symmetric, so the pixel opposite a masked one (cosmic ray, bad column)
    is the best estimate of what it would have read; with no good mirror the pixel reads
    sky. Returns the cut-out, its sigma, the slices, the number of masked pixels touching
    the aperture and whether the core is lost: a masked pixel at the centre, or one without
    a good mirror within twice ``core_radius`` (the reduction masks saturated pixels, and
    those sit at the peak in a symmetric blob no mirror can replace).
    """
    rows, cols = _box(f.data.shape, x, y, radius + 1.5)
    data = f.data[rows, cols].copy()
    sigma = None if f.sigma is None else f.sigma[rows, cols].copy()
    bad = f.bad[rows, cols]
    yy, xx = np.mgrid[rows, cols]
    r = np.hypot(xx - x, yy - y)
    touching = bad & (r <= radius + 0.75)
    core = bool((touching & (r <= core_radius)).any())
    for iy, ix in zip(*np.nonzero(touching)):
        my = round(2 * y - yy[iy, ix]) - rows.start
        mx = round(2 * x - xx[iy, ix]) - cols.start
        if 0 <= my < data.shape[0] and 0 <= mx < data.shape[1] and not bad[my, mx]:
            data[iy, ix] = f.data[rows, cols][my, mx]
            if sigma is not None:
                sigma[iy, ix] = f.sigma[rows, cols][my, mx]
        else:
            core = core or r[iy, ix] <= 2 * core_radius
            data[iy, ix] = sky
            if sigma is not None:
                sigma[iy, ix] = 0.0
    return data, sigma, (rows, cols), int(touching.sum()), core


def measure_star(ccd: CCDData, x: float, y: float, *, fwhm: float | None = None,
                 exptime: float | None = None,
                 params: PhotometryParameters = PhotometryParameters()) -> StarMeasurement:
    """Aperture photometry of one star near (x, y), 0-based pixels of ``ccd``.

    Steps: brightest pixel near the guess, centre of light, local sky (clipped median of an
    annulus), FWHM (Gaussian fit), then the sum in a circle of ``aperture_fwhm`` x FWHM
    minus sky. ``fwhm`` fixes the aperture size (use one value for all stars of a frame);
    the measured FWHM is reported either way.

    The flux error adds the frame's per-pixel uncertainty (photon and read noise, as the
    reduction propagated it) over the aperture to the error of the sky level times the
    aperture area; without an uncertainty array the annulus scatter stands in for it.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.nddata import CCDData
    >>> yy, xx = np.mgrid[:64, :64]
    >>> star = 1000 * np.exp(-((xx - 30.3)**2 + (yy - 31.6)**2) / (2 * 1.5**2)) / (2*np.pi*1.5**2)
    >>> ccd = CCDData(star + 10.0, unit="adu", meta={"EXPTIME": 10.0})
    >>> m = measure_star(ccd, 30, 32)
    >>> round(m.x, 1), round(m.y, 1), round(m.flux), round(m.mag, 3)
    (30.3, 31.6, 1000, -5.0)
    """
    f = _frame(ccd, exptime)
    ny, nx = f.data.shape
    if not (0 <= x < nx and 0 <= y < ny):
        raise PhotometryError(f"position ({x:.1f}, {y:.1f}) is off the {nx}x{ny} frame")
    flags: list[str] = []
    guess = fwhm or params.initial_fwhm_px
    _, r_in, r_out = _radii(guess, params)
    sky, sky_std, n_sky, edge = _local_sky(f, x, y, r_in, r_out, params.sky_clip_sigma)
    search = max(params.search_box_fwhm * guess, params.min_search_box_px)
    px, py = _peak_near(f, x, y, search, sky)
    cx, cy = _centroid(f, px, py, max(params.centroid_box_fwhm * guess,
                                      params.min_centroid_box_px), sky)
    measured = _fit_fwhm(f, cx, cy, guess, sky, params)
    if measured is None:
        flags.append("fwhm_not_fitted")
    use = fwhm or measured or guess
    if fwhm is None and measured is not None:
        # Recentre with a box matched to the measured size; the guess may have been far off.
        cx, cy = _centroid(f, cx, cy, max(params.centroid_box_fwhm * measured,
                                          params.min_centroid_box_px), sky)
    r_ap, r_in, r_out = _radii(use, params)
    sky, sky_std, n_sky, edge = _local_sky(f, cx, cy, r_in, r_out, params.sky_clip_sigma)
    core_radius = max(params.core_fwhm * use, 1.0)
    data, sigma, (rows, cols), n_masked, core = _fill_masked(f, cx, cy, r_ap, core_radius, sky)
    flux, flux_var, area, peak, ap_edge = _aperture_sum(data, sigma, rows, cols, cx, cy, r_ap,
                                                        sky)
    if sigma is None:
        flux_var += area * sky_std**2
    sky_err = MEDIAN_EFFICIENCY * sky_std / math.sqrt(n_sky)
    flux_err = math.sqrt(max(flux_var, 0.0) + (area * sky_err) ** 2)
    if edge or ap_edge:
        flags.append("edge")
    if n_masked:
        flags.append("masked")
    if core:
        flags.append("core_masked")
    if flux > 0:
        mag = -2.5 * math.log10(flux / f.exptime)
        mag_err = MAG_PER_LN * flux_err / flux
    else:
        flags.append("faint")
        mag = mag_err = math.nan
    return StarMeasurement(
        x=cx, y=cy, x_guess=float(x), y_guess=float(y),
        fwhm=float(measured) if measured is not None else math.nan,
        aperture_radius=r_ap, annulus=(r_in, r_out), flux=flux, flux_err=flux_err,
        sky=sky, sky_std=sky_std, n_sky=n_sky, area=area, peak=peak, exptime=f.exptime,
        mag=mag, mag_err=mag_err, n_masked=n_masked, flags=tuple(flags),
    )


def _aperture_sum(data: np.ndarray, sigma: np.ndarray | None, rows: slice, cols: slice,
                  x: float, y: float, radius: float, sky: float
                  ) -> tuple[float, float, float, float, bool]:
    """Exact-overlap circular sum minus sky: (flux, variance, area, peak, off the edge)."""
    from photutils.aperture import CircularAperture

    aperture = CircularAperture((x - cols.start, y - rows.start), r=radius)
    weights = aperture.to_mask(method="exact").to_image(data.shape)
    if weights is None:
        raise PhotometryError(f"aperture at ({x:.1f}, {y:.1f}) is off the frame")
    area = float(weights.sum())
    full = math.pi * radius**2
    edge = area < 0.999 * full
    flux = float((weights * data).sum() - sky * area)
    variance = 0.0 if sigma is None else float((weights * sigma**2).sum())
    inside = weights > 0
    peak = float((data[inside] - sky).max()) if inside.any() else math.nan
    return flux, variance, area, peak, edge


def measure_stars(ccd: CCDData, positions: Iterable[tuple[float, float]], *,
                  fwhm: float | None = None, exptime: float | None = None,
                  params: PhotometryParameters = PhotometryParameters()
                  ) -> list[StarMeasurement]:
    """Measure several stars of one frame with one aperture size.

    Without ``fwhm`` the frame's FWHM is the median of the stars' fitted values, so every
    star on the frame loses the same (small) fraction of its light outside the aperture.
    """
    points = [(float(x), float(y)) for x, y in positions]
    if not points:
        return []
    if fwhm is None:
        first = [measure_star(ccd, x, y, exptime=exptime, params=params) for x, y in points]
        fitted = [m.fwhm for m in first if math.isfinite(m.fwhm) and m.usable]
        if not fitted:
            return first
        fwhm = float(np.median(fitted))
    return [measure_star(ccd, x, y, fwhm=fwhm, exptime=exptime, params=params)
            for x, y in points]
