"""Pixel synthesis: light on the detector, then the detector's noise, cosmic rays and ADC.

Pure array functions of their arguments (the caller supplies the random generator), all
in float32. Signals are in ADU: what a noiseless, bias-free, flat-fielded CCD would read.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from nota.simulate.sky import Galaxy

__all__ = [
    "CosmicHits",
    "MOFFAT_BETA",
    "add_galaxy",
    "add_stars",
    "cosmic_rays",
    "digitise",
    "dome_lamp",
    "photon_noise",
    "twilight_gradient",
]

log = logging.getLogger(__name__)

MOFFAT_BETA = 4.0
SATURATION = 65535
POISSON_BELOW_E = 30.0          # exact Poisson under this many electrons, Gaussian above
COSMIC_RATE = 0.30              # hits per second on the full unbinned detector
COSMIC_DARK_S = 15.0            # what a zero-second frame collects while it is read out


def _moffat_alpha(fwhm: float, beta: float = MOFFAT_BETA) -> float:
    return fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))


def _stamp_radius(flux: float, fwhm: float, beta: float = MOFFAT_BETA) -> int:
    """Half-size where the profile falls below 0.02 ADU: faint stars small, bright ones wide."""
    alpha = _moffat_alpha(fwhm, beta)
    peak = flux * (beta - 1) / (math.pi * alpha**2)
    reach = alpha * math.sqrt(max((peak / 0.02) ** (1.0 / beta) - 1.0, 0.0))
    return int(min(max(4.0 * fwhm, reach, 3.0), 400.0)) + 1


def add_stars(img: np.ndarray, x: np.ndarray, y: np.ndarray, flux: np.ndarray,
              fwhm: float) -> None:
    """Add Moffat stars in place at 0-based positions (x, y), total ``flux`` ADU each.

    Each stamp is integrated over its pixels by sub-sampling (needed when a binned pixel is
    as wide as the seeing) and normalised to 1, so a star's counts sum to its flux unless it
    falls off the edge.
    """
    ny, nx = img.shape
    alpha = _moffat_alpha(fwhm)
    sub = int(np.clip(math.ceil(4.0 / fwhm), 1, 5))
    offsets = (np.arange(sub, dtype=np.float32) + 0.5) / sub - 0.5
    for xi, yi, fi in zip(x, y, flux):
        if fi <= 0:
            continue
        r = _stamp_radius(float(fi), fwhm)
        cx, cy = int(round(xi)), int(round(yi))
        if cx + r < 0 or cy + r < 0 or cx - r >= nx or cy - r >= ny:
            continue
        gx = (np.arange(cx - r, cx + r + 1, dtype=np.float32)[:, None] + offsets[None, :]
              - np.float32(xi)).ravel()
        gy = (np.arange(cy - r, cy + r + 1, dtype=np.float32)[:, None] + offsets[None, :]
              - np.float32(yi)).ravel()
        r2 = (gy[:, None] ** 2 + gx[None, :] ** 2) / np.float32(alpha**2)
        prof = (1.0 + r2) ** np.float32(-MOFFAT_BETA)
        n = 2 * r + 1
        stamp = prof.reshape(n, sub, n, sub).sum(axis=(1, 3))
        stamp *= np.float32(fi / stamp.sum())
        y0, y1, x0, x1 = cy - r, cy + r + 1, cx - r, cx + r + 1
        sy0, sx0 = max(0, -y0), max(0, -x0)
        sy1, sx1 = n - max(0, y1 - ny), n - max(0, x1 - nx)
        img[max(y0, 0):min(y1, ny), max(x0, 0):min(x1, nx)] += stamp[sy0:sy1, sx0:sx1]


@dataclass(frozen=True)
class GalaxyImage:
    """Where a galaxy lands on a frame and how bright it is there."""

    x: float               # 0-based pixel of the nucleus
    y: float
    scale_px: float        # disc scale length in pixels
    pa_rad: float          # major axis angle from +y towards -x (north through east)
    flux: float            # continuum ADU in this exposure
    knot_flux: float       # ADU per Hα knot (0 off the line)
    knots: tuple[tuple[float, float], ...]   # knot offsets along/across the major axis, in
                                              # scale lengths


def add_galaxy(img: np.ndarray, gal: Galaxy, image: GalaxyImage, fwhm: float) -> None:
    """Add an exponential disc, a seeing-softened bulge and Gaussian Hα knots in place."""
    ny, nx = img.shape
    h = image.scale_px
    half = int(min(7.0 * h, 2000))
    x0, x1 = max(int(image.x) - half, 0), min(int(image.x) + half + 1, nx)
    y0, y1 = max(int(image.y) - half, 0), min(int(image.y) + half + 1, ny)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx - np.float32(image.x), yy - np.float32(image.y)
    c, s = math.cos(image.pa_rad), math.sin(image.pa_rad)
    major = dy * np.float32(c) - dx * np.float32(s)
    minor = dy * np.float32(s) + dx * np.float32(c)
    r_ell = np.sqrt(major**2 + (minor / np.float32(gal.axis_ratio)) ** 2)
    disc = np.exp(-r_ell / np.float32(h))
    # Area of the disc and bulge profiles integrated to infinity (so truncation shows as a
    # small loss, as on a real frame).
    disc *= np.float32((1 - gal.bulge_fraction) * image.flux
                       / (2 * math.pi * h * h * gal.axis_ratio))
    soft = max(fwhm / 2.355, 0.5)
    rb = 0.08 * h
    r_b = np.sqrt(dx**2 + dy**2 + np.float32(soft**2))
    bulge = np.exp(-(r_b / np.float32(rb)) ** 0.5 * np.float32(7.67))
    bulge *= np.float32(gal.bulge_fraction * image.flux / float(bulge.sum() or 1.0))
    img[y0:y1, x0:x1] += disc + bulge
    if image.knot_flux > 0 and image.knots:
        sig = max(math.hypot(fwhm / 2.355, 0.8 * fwhm / 2.355), 0.6)
        kx = [image.x + (-a * s + b * c * gal.axis_ratio) * h for a, b in image.knots]
        ky = [image.y + (a * c + b * s * gal.axis_ratio) * h for a, b in image.knots]
        add_stars(img, np.array(kx), np.array(ky),
                  np.full(len(kx), image.knot_flux), 2.355 * sig)


def twilight_gradient(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Twilight sky across the field: a plane of 0.5-1 % end to end, in a random direction."""
    ny, nx = shape
    amplitude = float(rng.uniform(0.005, 0.01))
    angle = float(rng.uniform(0, 2 * math.pi))
    x = (np.arange(nx, dtype=np.float32) / nx - 0.5) * np.float32(amplitude * math.cos(angle))
    y = (np.arange(ny, dtype=np.float32) / ny - 0.5) * np.float32(amplitude * math.sin(angle))
    return (1.0 + x[None, :] + y[:, None]).astype(np.float32), {
        "amplitude": round(amplitude, 5), "angle_deg": round(math.degrees(angle), 2)}


def dome_lamp(shape: tuple[int, int], variant: int) -> np.ndarray:
    """The dome screen's illumination: a few % tilt and a central hot spot, unlike the sky."""
    ny, nx = shape
    x = np.arange(nx, dtype=np.float32) / nx - 0.5
    y = np.arange(ny, dtype=np.float32) / ny - 0.5
    tilt = (0.03 + 0.004 * variant) * x[None, :] - 0.02 * y[:, None]
    spot = 0.04 * np.exp(-((x[None, :] + 0.1) ** 2 + (y[:, None] - 0.05) ** 2) / 0.08)
    centre = np.float32(0.04 * math.exp(-(0.01 + 0.0025) / 0.08))   # 1 at the field centre
    return (1.0 + tilt + spot - centre).astype(np.float32)


def photon_noise(signal: np.ndarray, gain: float, read_noise_adu: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Shot noise plus read noise in ADU: one Gaussian draw where counts are large, exact
    Poisson where a pixel collects fewer than ~30 electrons."""
    z = rng.standard_normal(signal.shape, dtype=np.float32)
    sig = np.maximum(signal, 0, dtype=np.float32)
    out = sig + np.sqrt(sig / np.float32(gain) + np.float32(read_noise_adu**2)) * z
    few = (sig > 0) & (sig * np.float32(gain) < POISSON_BELOW_E)
    if few.any():
        counts = rng.poisson(sig[few] * gain).astype(np.float32)
        out[few] = counts / np.float32(gain) + np.float32(read_noise_adu) * z[few]
    return out


@dataclass(frozen=True)
class CosmicHits:
    """Cosmic-ray charge: flat indices into the readout, ADU added, and how many tracks."""

    index: np.ndarray
    adu: np.ndarray
    n_tracks: int


def cosmic_rays(shape: tuple[int, int], binning: int, area_fraction: float,
                exptime: float, rng: np.random.Generator) -> CosmicHits:
    """Short straight tracks with lognormal charge (median ~550 ADU, a few up to >10 kADU)."""
    ny, nx = shape
    n = int(rng.poisson(COSMIC_RATE * area_fraction * (exptime + COSMIC_DARK_S)))
    if n == 0:
        return CosmicHits(np.zeros(0, np.int64), np.zeros(0, np.float32), 0)
    xs = rng.uniform(0, nx * binning, n)
    ys = rng.uniform(0, ny * binning, n)
    lengths = np.minimum(rng.exponential(3.0, n) + 0.5, 20.0)
    angles = rng.uniform(0, math.pi, n)
    energy = np.minimum(rng.lognormal(math.log(550.0), 0.9, n), 30000.0)
    idx_parts, adu_parts = [], []
    for i in range(n):
        steps = max(int(lengths[i] * 2), 1)
        t = np.linspace(0.0, lengths[i], steps)
        px = ((xs[i] + t * math.cos(angles[i])) // binning).astype(np.int64)
        py = ((ys[i] + t * math.sin(angles[i])) // binning).astype(np.int64)
        ok = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
        share = rng.uniform(0.7, 1.3, steps)
        share *= energy[i] / share.sum()
        idx_parts.append(py[ok] * nx + px[ok])
        adu_parts.append(share[ok])
    index = np.concatenate(idx_parts)
    adu = np.concatenate(adu_parts).astype(np.float32)
    unique, inverse = np.unique(index, return_inverse=True)
    summed = np.zeros(unique.size, np.float32)
    np.add.at(summed, inverse, adu)
    return CosmicHits(unique, summed, n)


def digitise(values: np.ndarray, bias: np.ndarray | float) -> np.ndarray:
    """What the ADC writes: bias added, rounded, clipped to the 16-bit range."""
    out = values + bias
    np.rint(out, out=out)
    np.clip(out, 0, SATURATION, out=out)
    return out.astype(np.uint16)
