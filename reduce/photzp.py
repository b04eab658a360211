"""PHOTZP: a frame's photometric zero point from its night's solution in its filter.

The night's fit is m_AB = -2.5 log10(ADU/s) + ZP - k X (+ c C, for C = 0); a product
holds ADU over EXPTIME, so PHOTZP = ZP - k X + 2.5 log10(EXPTIME) and
m_AB = -2.5 log10(ADU) + PHOTZP (ESO's convention for the PHOTZP card).
"""

from __future__ import annotations

import math

__all__ = ["photzp"]


def photzp(zp: float, k: float, airmass: float, exptime: float, *, zp_err: float = 0.0, k_err: float = 0.0,
           cov_zp_k: float = 0.0) -> tuple[float, float]:
    """(PHOTZP, its error) for a frame at ``airmass`` exposed ``exptime`` seconds.

    Example
    -------
    >>> round(photzp(25.0, 0.1, 1.5, 100.0)[0], 3)
    29.85
    """
    value = zp - k * airmass + 2.5 * math.log10(exptime)
    var = zp_err**2 + (airmass * k_err) ** 2 - 2 * airmass * cov_zp_k
    return value, math.sqrt(max(var, 0.0))
