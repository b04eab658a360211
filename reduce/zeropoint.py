"""A night's photometric calibration: zero point, extinction and colour term per filter.

The lecture's last step ("determinación de las constantes instrumentales y coeficientes de
extinción para cada noche"): for every standard-star frame of one filter,

    m_catalogue - m_instrumental = ZP - k X + c C

with X the airmass (mid-exposure when known) and C the star's catalogue colour in the
filter's colour index (e.g. B-V), fitted by weighted least squares. With too few standards
or too small an airmass range the slope k is not measured but taken from the site's mean
extinction curve; with too few stars or too small a colour range c is not fitted (or a
given value is used). Pure functions: the caller measures the frames
(``nota.reduce.aperture``) and looks up the catalogue magnitudes and colours
(``nota.standards``).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from nota.errors import CalibrationError
from nota.reduce.extinction import extinction_curve, extinction_from_curve

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
COLOUR_FITTED = "colour term fitted"
ZP, K, C = 0, 1, 2   # columns of the design matrix: 1, -X, colour


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
    colour: float | None = None   # catalogue colour in the filter's colour index (e.g. B-V)

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
    min_colour_stars: int = 3         # different stars needed to fit the colour term
    min_colour_range: float = 0.3     # mag of colour between the bluest and reddest of them


@dataclass(frozen=True)
class ZeroPointFit:
    """ZP, k and the colour term of one filter on one night, with what went into them.

    ``method`` says whether k was fitted or fixed and whether the colour term was fitted,
    given or left out (and why); the covariances let a user propagate the calibration error
    to any airmass and colour (see ``magnitude_error``). ZP is for a star of colour 0 in
    ``colour_index``; ``colour_term`` is None when it was left out.
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
    colour_term: float | None = None  # mag per mag of colour; None: not fitted (method says why)
    colour_term_err: float | None = None
    colour_index: str | None = None   # e.g. 'B-V'
    cov_zp_c: float = 0.0
    cov_k_c: float = 0.0
    residuals: tuple[float, ...] = field(default=(), repr=False)   # in the order of ``used``

    @property
    def k_fitted(self) -> bool:
        return self.method.startswith(METHOD_FREE)

    @property
    def colour_fitted(self) -> bool:
        return COLOUR_FITTED in self.method

    def magnitude(self, m_instrumental: float, airmass: float, colour: float = 0.0) -> float:
        """Calibrated magnitude of a source measured at ``airmass``, of catalogue ``colour``."""
        return m_instrumental + self.zp - self.k * airmass + (self.colour_term or 0.0) * colour

    def magnitude_error(self, airmass: float, colour: float = 0.0) -> float:
        """Error the calibration adds to a magnitude at ``airmass`` and ``colour`` (correlated)."""
        c_err = self.colour_term_err or 0.0
        var = (self.zp_err**2 + (airmass * self.k_err) ** 2 + (colour * c_err) ** 2
               - 2 * airmass * self.cov_zp_k + 2 * colour * self.cov_zp_c
               - 2 * airmass * colour * self.cov_k_c)
        return math.sqrt(max(var, 0.0))


def _weighted_fit(design: np.ndarray, y: np.ndarray, sigma: np.ndarray,
                  fixed: dict[int, tuple[float, float]]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parameters of ``y = design @ p`` by weighted least squares; their statistical and
    systematic covariances.

    The parameters in ``fixed`` ({column: (value, error)}) are not fitted but subtracted
    from y, and their errors reach the fitted ones through the fit (J cov J^T): an error in
    an assumed k moves ZP by the standards' mean airmass times as much.
    """
    n = design.shape[1]
    held = sorted(fixed)
    free = [j for j in range(n) if j not in fixed]
    value = np.array([fixed[j][0] for j in held])
    error = np.array([fixed[j][1] for j in held])
    weighted = design[:, free] / sigma[:, None] ** 2
    cov_free = np.linalg.inv(design[:, free].T @ weighted)
    solve = cov_free @ weighted.T                  # fitted parameters = solve @ data
    params = np.empty(n)
    params[held] = value
    params[free] = solve @ (y - design[:, held] @ value)
    stat = np.zeros((n, n))
    stat[np.ix_(free, free)] = cov_free
    jacobian = np.zeros((n, len(held)))
    jacobian[held, np.arange(len(held))] = 1.0
    jacobian[free] = -solve @ design[:, held]
    return params, stat, jacobian @ np.diag(error**2) @ jacobian.T


def _can_fit_k(x: np.ndarray, options: FitOptions) -> str | None:
    """None when the points can measure k, else the reason they cannot."""
    if x.size < options.min_standards:
        return f"{x.size} standard observation(s), fewer than {options.min_standards}"
    spread = float(x.max() - x.min())
    if spread < options.min_airmass_range:
        return f"airmass range {spread:.2f}, less than {options.min_airmass_range}"
    return None


def _can_fit_colour(colour: np.ndarray, stars: np.ndarray, index: str,
                    options: FitOptions) -> str | None:
    """None when the points' stars can measure the colour term, else why not.

    Stars, not observations, count: ten frames of two stars give two colours.
    """
    unknown = sorted(set(stars[np.isnan(colour)]))
    if unknown:
        return f"no catalogue {index} for {', '.join(unknown)}"
    n_stars = len(set(stars))
    if n_stars < options.min_colour_stars:
        return f"{n_stars} standard star(s), fewer than {options.min_colour_stars}"
    spread = float(colour.max() - colour.min())
    if spread < options.min_colour_range:
        return f"standards span {spread:.2f} mag in {index} (< {options.min_colour_range})"
    return None


@dataclass(frozen=True)
class _Model:
    """What one set of points can measure: the parameters held fixed and the method text."""

    fixed: dict[int, tuple[float, float]]   # column -> (value, error)
    method: str
    uses_colour: bool


def _choose_model(x: np.ndarray, colour: np.ndarray, stars: np.ndarray, *, filter_name: str,
                  fallback_k: float | None, colour_index: str | None,
                  colour_term: tuple[float, float] | None, options: FitOptions) -> _Model:
    fixed: dict[int, tuple[float, float]] = {}
    why_k = _can_fit_k(x, options)
    if why_k is None:
        method = METHOD_FREE
    else:
        k = _fallback(fallback_k, filter_name, why_k)
        fixed[K] = (k, options.fallback_k_err)
        method = f"{METHOD_FIXED} at {k:.4f} mag/airmass ({why_k})"
    if colour_index is None:
        why_c = f"no colour index for {filter_name or 'this filter'}"
    elif colour_term is not None:
        fixed[C] = colour_term
        return _Model(fixed, f"{method}; colour term fixed at {colour_term[0]:.3f} in "
                             f"{colour_index}, as given", True)
    else:
        why_c = _can_fit_colour(colour, stars, colour_index, options)
        if why_c is None:
            return _Model(fixed, f"{method}; {COLOUR_FITTED} in {colour_index}", True)
    fixed[C] = (0.0, 0.0)
    return _Model(fixed, f"{method}; colour term not fitted: {why_c}", False)


def fit_zero_point(observations: Sequence[StandardObservation], *, filter_name: str = "",
                   fallback_k: float | None = None, colour_index: str | None = None,
                   colour_term: tuple[float, float] | None = None,
                   options: FitOptions = FitOptions()) -> ZeroPointFit:
    """Fit ``m_catalogue - m_instrumental = ZP - k X + c C`` for one filter of one night.

    Weighted least squares (weights 1/σ², σ² = photometric error² + catalogue error² +
    ``error_floor``²) with iterative clipping: points further than ``clip_sigma`` times
    the larger of their error and the robust scatter (1.4826 MAD) of the residuals are
    dropped, the fit redone, until nothing changes. A clipped point may come back when the
    fit moves. k is fitted only from at least ``min_standards`` observations spanning
    ``min_airmass_range``; otherwise (also when clipping leaves too few) k is
    ``fallback_k`` (e.g. ``extinction_from_curve``) and ``method`` says why. The colour
    term c multiplies each observation's ``colour`` (in ``colour_index``) and is fitted
    only from at least ``min_colour_stars`` stars spanning ``min_colour_range``; a given
    ``colour_term`` (value, error) is used instead of fitting, and without either c is
    left out (None) and ``method`` says why. Parameter errors are scaled up by
    sqrt(reduced chi²) when the scatter exceeds the errors.

    Examples
    --------
    >>> obs = [StandardObservation(f"f{i}", "HZ 44", x, -(20.0 - 0.1 * x), 0.005, 0.0)
    ...        for i, x in enumerate((1.0, 1.5, 2.0))]
    >>> fit = fit_zero_point(obs, filter_name="R")
    >>> round(fit.zp, 3), round(fit.k, 3), fit.method
    (20.0, 0.1, 'zero point and extinction fitted; colour term not fitted: no colour index for R')
    """
    points = [o for o in observations
              if all(math.isfinite(v) for v in (o.airmass, o.delta, o.m_instrumental_err))]
    if not points:
        raise CalibrationError(f"no usable standard observations for filter {filter_name!r}")
    x = np.array([o.airmass for o in points])
    y = np.array([o.delta for o in points])
    sigma = np.sqrt(np.array([o.m_instrumental_err**2 + o.m_catalogue_err**2 for o in points])
                    + options.error_floor**2)
    colour = np.array([math.nan if o.colour is None else o.colour for o in points])
    stars = np.array([o.star for o in points])
    if colour_index is not None and colour_term is not None and np.isnan(colour).any():
        raise CalibrationError(f"filter {filter_name!r}: a colour term is given but some "
                               f"standards have no catalogue {colour_index}")
    design = np.column_stack([np.ones_like(x), -x, np.nan_to_num(colour)])

    def model(keep: np.ndarray) -> _Model:
        return _choose_model(x[keep], colour[keep], stars[keep], filter_name=filter_name,
                             fallback_k=fallback_k, colour_index=colour_index,
                             colour_term=colour_term, options=options)

    keep = np.ones(x.size, dtype=bool)
    for _ in range(options.max_iterations):
        chosen = model(keep)
        params, _, _ = _weighted_fit(design[keep], y[keep], sigma[keep], chosen.fixed)
        resid = y - design @ params
        scatter = 1.4826 * float(np.median(np.abs(resid[keep] - np.median(resid[keep]))))
        new_keep = np.abs(resid) <= options.clip_sigma * np.maximum(sigma, scatter)
        if not new_keep.any() or np.array_equal(new_keep, keep):
            break
        if (fallback_k is None and K not in chosen.fixed
                and _can_fit_k(x[new_keep], options) is not None):
            break   # clipping would leave k unmeasurable and there is nothing to fall back on
        keep = new_keep
    chosen = model(keep)
    params, stat, syst = _weighted_fit(design[keep], y[keep], sigma[keep], chosen.fixed)
    resid = y - design @ params
    dof = int(keep.sum()) - (design.shape[1] - len(chosen.fixed))
    chi2 = float(np.sum((resid[keep] / sigma[keep]) ** 2) / dof) if dof > 0 else math.nan
    scale = max(chi2, 1.0) if math.isfinite(chi2) else 1.0
    cov = stat * scale + syst   # only the statistical part grows with the scatter
    used = tuple(p.label for p, ok in zip(points, keep) if ok)
    rejected = tuple(p.label for p, ok in zip(points, keep) if not ok)
    if rejected:
        log.info("filter %s: rejected %s", filter_name, ", ".join(rejected))
    return ZeroPointFit(
        filter=filter_name, zp=float(params[ZP]), zp_err=math.sqrt(cov[ZP, ZP]),
        k=float(params[K]), k_err=math.sqrt(cov[K, K]), cov_zp_k=float(cov[ZP, K]),
        rms=float(np.sqrt(np.mean(resid[keep] ** 2))), chi2_reduced=chi2,
        n_used=int(keep.sum()), n_rejected=int((~keep).sum()), used=used, rejected=rejected,
        airmass_range=(float(x[keep].min()), float(x[keep].max())), method=chosen.method,
        colour_term=float(params[C]) if chosen.uses_colour else None,
        colour_term_err=math.sqrt(cov[C, C]) if chosen.uses_colour else None,
        colour_index=colour_index, cov_zp_c=float(cov[ZP, C]), cov_k_c=float(cov[K, C]),
        residuals=tuple(float(r) for r in resid[keep]),
    )


def _fallback(fallback_k: float | None, filter_name: str, why: str) -> float:
    if fallback_k is None:
        raise CalibrationError(
            f"filter {filter_name!r}: cannot fit extinction ({why}) and no fallback k given")
    return float(fallback_k)


def plot_fit_png(fit: ZeroPointFit, observations: Sequence[StandardObservation]) -> bytes:
    """Residuals from the fit against airmass (and colour, when the colour term was fitted),
    used points with error bars, rejected as x.

    The picture an observer checks before trusting a night: a trend left in the residuals
    means a wrong k (or c), one star off means a bad frame or a wrong identification.
    """
    figure = _figure()
    against = [("airmass", lambda o: o.airmass)]
    if fit.colour_fitted:
        against.append((f"catalogue colour {fit.colour_index} (mag)", lambda o: o.colour))
    panels = figure.subplots(1, len(against), sharey=True, squeeze=False)[0]
    rejected = set(fit.rejected)
    for axes, (xlabel, abscissa) in zip(panels, against):
        for is_rejected, style in ((False, {"fmt": "o", "color": "tab:blue", "label": "used"}),
                                   (True, {"fmt": "x", "color": "tab:red", "label": "rejected"})):
            chosen = [o for o in observations if (o.label in rejected) == is_rejected]
            if not chosen:
                continue
            x = np.array([abscissa(o) for o in chosen], dtype=float)
            r = np.array([o.m_catalogue - fit.magnitude(o.m_instrumental, o.airmass, o.colour or 0.0)
                          for o in chosen])
            e = np.array([o.m_instrumental_err for o in chosen])
            axes.errorbar(x, 1000 * r, yerr=1000 * e, capsize=2, linestyle="none", **style)
            for xi, ri, o in zip(x, r, chosen):
                axes.annotate(o.star, (xi, 1000 * ri), fontsize=7, xytext=(3, 3),
                              textcoords="offset points")
        axes.axhline(0.0, color="0.5", linewidth=0.8)
        axes.set_xlabel(xlabel)
    panels[0].set_ylabel("residual (mmag)")
    panels[0].legend(fontsize=8)
    colour = (f", c {fit.colour_term:.3f} ± {fit.colour_term_err:.3f} ({fit.colour_index})"
              if fit.colour_term is not None else "")
    figure.suptitle(f"{fit.filter}: ZP {fit.zp:.3f} ± {fit.zp_err:.3f}, "
                    f"k {fit.k:.3f} ± {fit.k_err:.3f}{colour}, rms {1000 * fit.rms:.0f} mmag "
                    f"({'k fitted' if fit.k_fitted else 'k fixed'})", fontsize=9)
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
