"""Atmospheric extinction from a site's mean curve: k through a passband when it cannot be fitted."""

from __future__ import annotations

import functools
import io
from importlib import resources

import numpy as np

from nota.passbands import Passband

__all__ = ["extinction_curve", "extinction_from_curve"]


def extinction_curve(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A site's mean extinction curve shipped in ``nota/data``: wavelength (Å), mag/airmass."""
    return _read_curve(name)


@functools.cache
def _read_curve(name: str) -> tuple[np.ndarray, np.ndarray]:
    text = resources.files("nota").joinpath("data", name).read_text()
    table = np.loadtxt(io.StringIO(text), comments="#", usecols=(0, 1), ndmin=2)
    return table[:, 0], table[:, 1]


def extinction_from_curve(passband: Passband, name: str) -> float:
    """Mean extinction through a passband, weighted by photons (T(λ) λ), in mag/airmass.

    For a narrow band this is the curve at the band's centre; for a broad band it leans
    towards where the band transmits most. ``name`` is a curve shipped in ``nota/data``, such
    as King (1985)'s La Palma curve, ``lapalma_extinction.dat``.
    """
    w_curve, k_curve = extinction_curve(name)
    w, t = passband.wavelength, passband.response
    grid = np.union1d(w, w_curve[(w_curve > w[0]) & (w_curve < w[-1])])
    weight = np.interp(grid, w, t, left=0.0, right=0.0) * grid
    k = np.interp(grid, w_curve, k_curve)
    return float(np.trapezoid(k * weight, grid) / np.trapezoid(weight, grid))
