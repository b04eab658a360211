"""A night's photometric calibration: zero point and extinction per filter from standards.

The lecture's last step ("determinación de las constantes instrumentales y coeficientes de
extinción para cada noche"): for every standard-star frame of one filter,

    m_catalogue - m_instrumental = ZP - k X

with X the airmass (mid-exposure when known), fitted by weighted least squares. With too
few standards or too small an airmass range the slope is not measured but taken from the
site's mean extinction curve, and only ZP is fitted. Pure functions: the caller measures
the frames (``nota.reduce.photometry``) and looks up the catalogue magnitudes
(``nota.standards``).
"""

from __future__ import annotations

import functools
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from nota.errors import CalibrationError
from nota.passbands import Passband

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CalibrationError",
    "FitOptions",
    "StandardObservation",
    "ZeroPointFit",
    "extinction_curve",
    "extinction_from_curve",
    "fit_zero_point",
    "plot_fit_png",
]

log = logging.getLogger(__name__)

METHOD_FREE = "zero point and extinction fitted"
METHOD_FIXED = "zero point fitted, extinction fixed"


@dataclass(frozen=True)
class StandardObservation:
    """One standard star on one frame, measured and looked up."""

    frame: str
    star: str
    airmass: float
    m_instrumental: float         # -2.5 log10(ADU/s)
    m_instrumental_err: float
    m_catalogue: float
    m_catalogue_err: float = 0.0

    @property
    def delta(self) -> float:
        """m_catalogue - m_instrumental: what ZP - k X must equal."""
        return self.m_catalogue - self.m_instrumental

    @property
    def label(self) -> str:
        return f"{self.star} {self.frame}"


@dataclass(frozen=True)
class FitOptions:
    """How a zero point is fitted; the defaults follow the photometry brief.

    ``error_floor`` is added in quadrature to each point's error: a bright standard's photon
    error (a few mmag) is smaller than what flat-fielding and aperture losses leave, and
    without a floor one star would decide the fit alone.
    """

    clip_sigma: float = 3.0
    max_iterations: int = 10
    min_standards: int = 3            # observations needed to fit k
    min_airmass_range: float = 0.2    # max(X) - min(X) needed to fit k
    error_floor: float = 0.01         # mag
    fallback_k_err: float = 0.02      # mag/airmass: night-to-night scatter about the mean curve


@dataclass(frozen=True)
class ZeroPointFit:
    """ZP and k of one filter on one night, with what went into them.

    ``method`` says whether k was fitted or fixed (and why); ``cov_zp_k`` lets a user
    propagate the calibration error to any airmass (see ``magnitude_error``).
    """

    filter: str
    zp: float
    zp_err: float
    k: float
    k_err: float
    cov_zp_k: float
    rms: float                        # of the residuals of the points used, mag
    chi2_reduced: float
    n_used: int
    n_rejected: int
    used: tuple[str, ...]
    rejected: tuple[str, ...]
    airmass_range: tuple[float, float]
    method: str
    colour_term: float | None = None  # not fitted yet: needs standards of several colours
    residuals: tuple[float, ...] = field(default=(), repr=False)   # in the order of ``used``

    @property
    def k_fitted(self) -> bool:
        return self.method.startswith(METHOD_FREE)

    def magnitude(self, m_instrumental: float, airmass: float) -> float:
        """Calibrated magnitude of a source measured at ``airmass``."""
        return m_instrumental + self.zp - self.k * airmass

    def magnitude_error(self, airmass: float) -> float:
        """Error the calibration adds to a magnitude at ``airmass`` (ZP and k correlated)."""
        var = self.zp_err**2 + (airmass * self.k_err) ** 2 - 2 * airmass * self.cov_zp_k
        return math.sqrt(max(var, 0.0))


def extinction_curve(name: str = "lapalma_extinction.dat") -> tuple[np.ndarray, np.ndarray]:
    """A site's mean extinction curve shipped in ``nota/data``: wavelength (Å), mag/airmass."""
    return _read_curve(name)


@functools.cache
def _read_curve(name: str) -> tuple[np.ndarray, np.ndarray]:
    text = resources.files("nota").joinpath("data", name).read_text()
    table = np.loadtxt(io.StringIO(text), comments="#", usecols=(0, 1), ndmin=2)
    return table[:, 0], table[:, 1]


def extinction_from_curve(passband: Passband, name: str = "lapalma_extinction.dat") -> float:
    """Mean extinction through a passband, weighted by photons (T(λ) λ), in mag/airmass.

    For a narrow band this is the curve at the band's centre; for a broad band it leans
    towards where the band transmits most (King 1985's La Palma curve by default).
    """
    w_curve, k_curve = extinction_curve(name)
    w, t = passband.wavelength, passband.response
    grid = np.union1d(w, w_curve[(w_curve > w[0]) & (w_curve < w[-1])])
    weight = np.interp(grid, w, t, left=0.0, right=0.0) * grid
    k = np.interp(grid, w_curve, k_curve)
    return float(np.trapezoid(k * weight, grid) / np.trapezoid(weight, grid))


def _weighted_fit(x: np.ndarray, y: np.ndarray, sigma: np.ndarray,
                  fixed_k: float | None, k_err: float) -> tuple[float, float, np.ndarray]:
    """(zp, k, covariance 2x2) of y = zp - k x; with ``fixed_k``, only zp."""
    w = 1.0 / sigma**2
    if fixed_k is None:
        design = np.column_stack([np.ones_like(x), -x])
        normal = design.T @ (design * w[:, None])
        cov = np.linalg.inv(normal)
        zp, k = cov @ (design.T @ (w * y))
        return float(zp), float(k), cov
    zp = float(np.sum(w * (y + fixed_k * x)) / np.sum(w))
    mean_x = float(np.sum(w * x) / np.sum(w))
    var_mean = 1.0 / float(np.sum(w))
    # zp = <y> + k <x>: an error in the assumed k moves zp by <x> times as much.
    cov = np.array([[var_mean + (mean_x * k_err) ** 2, mean_x * k_err**2],
                    [mean_x * k_err**2, k_err**2]])
    return zp, fixed_k, cov


def _can_fit_k(x: np.ndarray, options: FitOptions) -> str | None:
    """None when the points can measure k, else the reason they cannot."""
    if x.size < options.min_standards:
        return f"{x.size} standard observation(s), fewer than {options.min_standards}"
    spread = float(x.max() - x.min())
    if spread < options.min_airmass_range:
        return f"airmass range {spread:.2f}, less than {options.min_airmass_range}"
    return None


def fit_zero_point(observations: Sequence[StandardObservation], *, filter_name: str = "",
                   fallback_k: float | None = None, options: FitOptions = FitOptions()
                   ) -> ZeroPointFit:
    """Fit ``m_catalogue - m_instrumental = ZP - k X`` for one filter of one night.

    Weighted least squares (weights 1/σ², σ² = photometric error² + catalogue error² +
    ``error_floor``²) with iterative clipping: points further than ``clip_sigma`` times
    the larger of their error and the robust scatter (1.4826 MAD) of the residuals are
    dropped, the fit redone, until nothing changes. A clipped point may come back when the
    fit moves. k is fitted only from at least ``min_standards`` observations spanning
    ``min_airmass_range``; otherwise (also when clipping leaves too few) k is
    ``fallback_k`` (e.g. ``extinction_from_curve``) and ``method`` says why. Parameter
    errors are scaled up by sqrt(reduced chi²) when the scatter exceeds the errors.

    Examples
    --------
    >>> obs = [StandardObservation(f"f{i}", "HZ 44", x, -(20.0 - 0.1 * x), 0.005, 0.0)
    ...        for i, x in enumerate((1.0, 1.5, 2.0))]
    >>> fit = fit_zero_point(obs, filter_name="R")
    >>> round(fit.zp, 3), round(fit.k, 3), fit.method
    (20.0, 0.1, 'zero point and extinction fitted')
    """
    points = [o for o in observations
              if all(math.isfinite(v) for v in (o.airmass, o.delta, o.m_instrumental_err))]
    if not points:
        raise CalibrationError(f"no usable standard observations for filter {filter_name!r}")
    x = np.array([o.airmass for o in points])
    y = np.array([o.delta for o in points])
    sigma = np.sqrt(np.array([o.m_instrumental_err**2 + o.m_catalogue_err**2 for o in points])
                    + options.error_floor**2)
    keep = np.ones(x.size, dtype=bool)
    for _ in range(options.max_iterations):
        why_fixed = _can_fit_k(x[keep], options)
        fixed = None if why_fixed is None else _fallback(fallback_k, filter_name, why_fixed)
        zp, k, _ = _weighted_fit(x[keep], y[keep], sigma[keep], fixed, options.fallback_k_err)
        resid = y - (zp - k * x)
        scatter = 1.4826 * float(np.median(np.abs(resid[keep] - np.median(resid[keep]))))
        new_keep = np.abs(resid) <= options.clip_sigma * np.maximum(sigma, scatter)
        if not new_keep.any() or np.array_equal(new_keep, keep):
            break
        if (fallback_k is None and why_fixed is None
                and _can_fit_k(x[new_keep], options) is not None):
            break   # clipping would leave k unmeasurable and there is nothing to fall back on
        keep = new_keep
    why_fixed = _can_fit_k(x[keep], options)
    fixed = None if why_fixed is None else _fallback(fallback_k, filter_name, why_fixed)
    zp, k, cov = _weighted_fit(x[keep], y[keep], sigma[keep], fixed, options.fallback_k_err)
    resid = y - (zp - k * x)
    n_free = 2 if fixed is None else 1
    dof = int(keep.sum()) - n_free
    chi2 = float(np.sum((resid[keep] / sigma[keep]) ** 2) / dof) if dof > 0 else math.nan
    scale = max(chi2, 1.0) if math.isfinite(chi2) else 1.0
    if fixed is None:
        cov = cov * scale
    else:   # only the statistical part of zp's variance scales with the scatter
        stat = cov[0, 0] - (cov[0, 1] ** 2 / cov[1, 1] if cov[1, 1] > 0 else 0.0)
        cov = cov.copy()
        cov[0, 0] += stat * (scale - 1.0)
    method = METHOD_FREE if fixed is None else (
        f"{METHOD_FIXED} at {fixed:.4f} mag/airmass ({why_fixed})")
    used = tuple(p.label for p, ok in zip(points, keep) if ok)
    rejected = tuple(p.label for p, ok in zip(points, keep) if not ok)
    if rejected:
        log.info("filter %s: rejected %s", filter_name, ", ".join(rejected))
    return ZeroPointFit(
        filter=filter_name, zp=zp, zp_err=math.sqrt(cov[0, 0]), k=k,
        k_err=math.sqrt(cov[1, 1]), cov_zp_k=float(cov[0, 1]),
        rms=float(np.sqrt(np.mean(resid[keep] ** 2))), chi2_reduced=chi2,
        n_used=int(keep.sum()), n_rejected=int((~keep).sum()), used=used, rejected=rejected,
        airmass_range=(float(x[keep].min()), float(x[keep].max())), method=method,
        residuals=tuple(float(r) for r in resid[keep]),
    )


def _fallback(fallback_k: float | None, filter_name: str, why: str) -> float:
    if fallback_k is None:
        raise CalibrationError(
            f"filter {filter_name!r}: cannot fit extinction ({why}) and no fallback k given")
    return float(fallback_k)


def plot_fit_png(fit: ZeroPointFit, observations: Sequence[StandardObservation]) -> bytes:
    """Residuals from the fit against airmass, used points with error bars, rejected as x.

    The picture an observer checks before trusting a night: a trend left in the residuals
    means a wrong k, one star off means a bad frame or a wrong identification.
    """
    figure = _figure()
    axes = figure.add_subplot(1, 1, 1)
    rejected = set(fit.rejected)
    for is_rejected, style in ((False, {"fmt": "o", "color": "tab:blue", "label": "used"}),
                               (True, {"fmt": "x", "color": "tab:red", "label": "rejected"})):
        chosen = [o for o in observations if (o.label in rejected) == is_rejected]
        if not chosen:
            continue
        x = np.array([o.airmass for o in chosen])
        r = np.array([o.delta - (fit.zp - fit.k * o.airmass) for o in chosen])
        e = np.array([o.m_instrumental_err for o in chosen])
        axes.errorbar(x, 1000 * r, yerr=1000 * e, capsize=2, linestyle="none", **style)
        for xi, ri, o in zip(x, r, chosen):
            axes.annotate(o.star, (xi, 1000 * ri), fontsize=7, xytext=(3, 3),
                          textcoords="offset points")
    axes.axhline(0.0, color="0.5", linewidth=0.8)
    axes.set_xlabel("airmass")
    axes.set_ylabel("residual (mmag)")
    axes.set_title(f"{fit.filter}: ZP {fit.zp:.3f} ± {fit.zp_err:.3f}, "
                   f"k {fit.k:.3f} ± {fit.k_err:.3f}, rms {1000 * fit.rms:.0f} mmag "
                   f"({'k fitted' if fit.k_fitted else 'k fixed'})", fontsize=9)
    axes.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _figure() -> Figure:
    """A figure on its own Agg canvas (no pyplot state: safe in threads and workers)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 4.0), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure
