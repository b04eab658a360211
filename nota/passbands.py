"""Passbands of a profile's filters and synthetic AB magnitudes through them.

The simulator gives the standard stars their true magnitudes with these functions and the
photometry step compares against the same numbers, so both sides agree on what "the
magnitude of HZ 44 in filter #78" means.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from nota.instruments import Filter

__all__ = ["Passband", "ab_magnitude", "named_passband", "passband_for_filter", "top_hat"]

log = logging.getLogger(__name__)

_C_ANGSTROM_PER_S = 2.99792458e18


@dataclass(frozen=True)
class Passband:
    """A photon-counting transmission curve: wavelength in Å, response (0..1)."""

    name: str
    wavelength: np.ndarray
    response: np.ndarray

    @property
    def pivot(self) -> float:
        """Pivot wavelength (Å): where the band's flux density in fnu and flam agree."""
        w, t = self.wavelength, self.response
        return float(np.sqrt(np.trapezoid(t * w, w) / np.trapezoid(t / w, w)))


def top_hat(name: str, centre_A: float, fwhm_A: float, peak: float = 1.0) -> Passband:
    """A narrow-band filter as a top-hat of its tabulated centre and FWHM.

    Why: the NOT table gives only centre, FWHM and peak; for continuum sources over a few nm
    the exact shape changes synthetic magnitudes by far less than the calibration error.
    """
    half = fwhm_A / 2.0
    edge = max(fwhm_A * 1e-3, 0.01)
    wavelength = np.array(
        [centre_A - half - edge, centre_A - half, centre_A + half, centre_A + half + edge]
    )
    response = np.array([0.0, peak, peak, 0.0])
    return Passband(name, wavelength, response)


@functools.cache
def named_passband(name: str) -> Passband:
    """A transmission curve speclite ships ('bessell-V', 'sdss2010-g', 'panstarrs-r')."""
    import speclite.filters  # imported here: loading speclite's curves is not free

    curve = speclite.filters.load_filter(name)
    return Passband(
        name,
        np.asarray(curve.wavelength, dtype=float),
        np.asarray(curve.response, dtype=float),
    )


def passband_for_filter(filt: Filter) -> Passband:
    """A filter's passband: the speclite curve its profile names (ALFOSC's B, V and R are
    Bessell's; a generic camera's V or g), else a top-hat of its centre and FWHM."""
    if filt.passband:
        return named_passband(filt.passband)
    if filt.centre_nm is None or filt.fwhm_nm is None:
        label = filt.name if filt.id is None else f"{filt.id} ({filt.name})"
        raise ValueError(f"filter {label} has no passband, centre or FWHM in its profile")
    peak = (filt.peak_transmission or 100.0) / 100.0
    return top_hat(filt.short_name.strip(), filt.centre_nm * 10.0, filt.fwhm_nm * 10.0, peak)


def ab_magnitude(wavelength_A: np.ndarray, flux_flam: np.ndarray, passband: Passband) -> float:
    """Synthetic AB magnitude of a spectrum (Å, erg/s/cm²/Å) through a photon-counting band.

    m_AB = -2.5 log10( ∫ f_λ T λ dλ / ∫ T c/λ dλ ) - 48.60

    Examples
    --------
    >>> import numpy as np
    >>> w = np.linspace(3000, 10000, 2000)
    >>> f = 3631e-23 * 2.99792458e18 / w**2          # a flat 0 AB spectrum
    >>> round(ab_magnitude(w, f, top_hat("x", 6580, 36)), 3)
    0.0
    """
    w = np.asarray(wavelength_A, dtype=float)
    f = np.asarray(flux_flam, dtype=float)
    lo, hi = passband.wavelength[0], passband.wavelength[-1]
    if w[0] > lo or w[-1] < hi:
        raise ValueError(f"spectrum {w[0]:.0f}-{w[-1]:.0f} Å does not cover {passband.name}")
    # Sample on the union of both grids inside the band so narrow top-hats are resolved.
    inside = w[(w > lo) & (w < hi)]
    grid = np.union1d(passband.wavelength, inside)
    t = np.interp(grid, passband.wavelength, passband.response, left=0.0, right=0.0)
    fg = np.interp(grid, w, f)
    numerator = np.trapezoid(fg * t * grid, grid)
    denominator = np.trapezoid(t * _C_ANGSTROM_PER_S / grid, grid)
    if numerator <= 0:
        raise ValueError(f"no positive flux through {passband.name}")
    return float(-2.5 * np.log10(numerator / denominator) - 48.60)
