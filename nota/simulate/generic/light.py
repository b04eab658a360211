"""Light on the small observatory's sensor: where a frame points, its sky, stars and galaxy.

Why a description first and pixels second: the truth row of a light holds every number
the pixels were made from (rounded as stored), and ``light_signal`` makes the pixels from
that row alone, so a test rebuilds the noiseless sky + stars exactly from ``truth.json``.
Signals are electrons before the flat response.
"""

from __future__ import annotations

import logging
import math
import zlib
from datetime import timedelta
from typing import Any

import numpy as np
from scipy import signal as sps

from nota.simulate import physics
from nota.simulate.generic.camera import Sensor
from nota.simulate.generic.plan import SITE, TARGETS, Exposure
from nota.simulate.sky import (
    Galaxy,
    Pointing,
    airmass,
    alt_az,
    local_sidereal_time,
    make_wcs,
    offset_position,
    world_to_pixel,
)

__all__ = ["CATALOGUE_BAND", "describe_light", "light_signal"]

log = logging.getLogger(__name__)

# e-/s from a star of magnitude 0 is 10**(0.4 * ZERO_POINT): a 0.36 m aperture, CMOS QE.
ZERO_POINT = {"V": 21.4, "R": 21.3, "Ha": 17.5, "Grism": 21.6}
EXTINCTION = {"V": 0.22, "R": 0.15, "Ha": 0.14, "Grism": 0.18}
SKY_MU = {"V": 19.6, "R": 19.0, "Ha": 19.0, "Grism": 19.3}     # mag/arcsec^2, suburban Madrid
CATALOGUE_BAND = {"V": "V", "R": "R", "Ha": "NII_658", "Grism": "R"}
GALAXY_COLOUR = {"V": 0.6, "R": 0.0, "Ha": 0.05, "Grism": 0.3}   # galaxy mag - its R mag
ROTATION_DEG = 0.8           # the camera's turn from north-up, east-left
GRISM = {"order0": 0.15, "order1": 0.60, "start_px": 200.0, "length_px": 600.0}


def _flux(mag: np.ndarray | float, band: str, x_mid: float, exptime: float) -> np.ndarray:
    return 10 ** (-0.4 * (np.asarray(mag) - ZERO_POINT[band] + EXTINCTION[band] * x_mid)) * exptime


def _pointing(exp: Exposure, rng: np.random.Generator) -> tuple[Pointing, float, float]:
    """Where the mount says and where it really points (20" rms), and the airmasses."""
    fld = TARGETS[exp.field or ""]
    ra, dec = offset_position(fld.ra_deg, fld.dec_deg, *exp.offset)
    jitter = rng.normal(0.0, 20.0, 2)
    true_ra, true_dec = offset_position(ra, dec, float(jitter[0]), float(jitter[1]))
    pointing = Pointing(ra, dec, true_ra, true_dec, ROTATION_DEG + float(rng.normal(0, 0.02)))
    mid = exp.start + timedelta(seconds=exp.exptime / 2)
    alt, _ = alt_az(ra, dec, local_sidereal_time(exp.start, SITE["longitude"]), SITE["latitude"])
    alt_mid, _ = alt_az(ra, dec, local_sidereal_time(mid, SITE["longitude"]), SITE["latitude"])
    return pointing, alt, alt_mid


def _stars(exp: Exposure, catalogue: tuple[dict[str, Any], ...], wcs: Any, shape: tuple[int, int],
           x_mid: float, margin: float) -> list[dict[str, Any]]:
    """Catalogue stars on or near the frame: id, 1-based x, y, magnitude and electrons."""
    band = exp.filter or "R"
    ra = np.array([s["ra"] for s in catalogue])
    dec = np.array([s["dec"] for s in catalogue])
    mags = np.array([s[CATALOGUE_BAND[band]] for s in catalogue])
    x1, y1 = world_to_pixel(wcs, ra, dec)
    electrons = _flux(mags, band, x_mid, exp.exptime)
    ny, nx = shape
    left = margin + (GRISM["start_px"] + GRISM["length_px"] if band == "Grism" else 0.0)
    near = (x1 > -left) & (x1 < nx + margin) & (y1 > -margin) & (y1 < ny + margin)
    return [{"id": catalogue[i]["id"], "x": round(float(x1[i]), 4), "y": round(float(y1[i]), 4),
             "mag": float(mags[i]), "electrons": round(float(electrons[i]), 3)}
            for i in np.flatnonzero(near)]


def _galaxy(exp: Exposure, wcs: Any, scale: float, x_mid: float, seed: int) -> dict | None:
    fld = TARGETS[exp.field or ""]
    gal, band = fld.galaxy, exp.filter or "R"
    if gal is None or band == "Grism":
        return None
    flux = float(_flux(gal.r_mag + GALAXY_COLOUR[band], band, x_mid, exp.exptime))
    knot = float(_flux(gal.knot_mag, band, x_mid, exp.exptime)) if band == "Ha" else 0.0
    rng = np.random.default_rng([seed, 9, zlib.crc32(fld.key.encode())])
    knots = [[round(float(a), 4), round(float(b), 4)]
             for a, b in zip(rng.normal(0, 1.3, gal.n_knots), rng.normal(0, 1.3, gal.n_knots))]
    x1, y1 = world_to_pixel(wcs, np.array([fld.ra_deg]), np.array([fld.dec_deg]))
    rot = math.atan2(wcs.cd[1][0], wcs.cd[1][1])
    return {"model": vars(gal), "x": round(float(x1[0]), 4), "y": round(float(y1[0]), 4),
            "scale_px": round(gal.scale_arcsec / scale, 4),
            "pa_rad": round(math.radians(gal.pa_deg) + rot, 6),
            "electrons": round(flux, 3), "knot_electrons": round(knot, 3), "knots": knots}


def describe_light(exp: Exposure, sensor: Sensor, night: dict[str, Any],
                   catalogue: tuple[dict[str, Any], ...], rng: np.random.Generator
                   ) -> dict[str, Any]:
    """Everything about a light except its noise: pointing, WCS, seeing, sky, stars, galaxy.

    ``night`` holds the night's seeing (arcsec) and sky offset (mag); consumes a fixed
    number of draws from ``rng``.
    """
    ny, nx = sensor.shape
    pointing, alt, alt_mid = _pointing(exp, rng)
    scale = sensor.pixel_scale
    wcs = make_wcs(pointing, scale, ((nx + 1) / 2, (ny + 1) / 2))
    seeing = float(np.clip(night["seeing"] * (1 + rng.normal(0, 0.05)), 1.6, 4.0))
    fwhm = round(seeing / scale, 4)
    x_mid = round(airmass(alt_mid), 4)
    band = exp.filter or "R"
    mu = SKY_MU[band] + night["sky_offset"]
    sky = 10 ** (-0.4 * (mu - ZERO_POINT[band])) * scale**2 * exp.exptime
    light = {
        "pointing": {"ra": round(pointing.ra_deg, 7), "dec": round(pointing.dec_deg, 7),
                     "true_ra": round(pointing.true_ra_deg, 7),
                     "true_dec": round(pointing.true_dec_deg, 7)},
        "wcs": wcs.cards(), "altitude": round(alt, 4),
        "airmass": round(airmass(alt), 4), "airmass_mid": x_mid,
        "seeing": round(seeing, 4), "fwhm_px": fwhm, "sky_electrons": round(sky, 4),
        "stars": _stars(exp, catalogue, wcs, sensor.shape, x_mid, 6 * fwhm + 20),
        "galaxy": _galaxy(exp, wcs, scale, x_mid, night["seed"]),
        "spectrum": ({**GRISM, "start_px": GRISM["start_px"] / sensor.binning,
                      "length_px": GRISM["length_px"] / sensor.binning,
                      "profile": "sin^2 hump along +x, starting start_px right of the star"}
                     if band == "Grism" else None),
    }
    return light


def _disperse(points: np.ndarray, spectrum: dict[str, Any]) -> np.ndarray:
    """First-order spectra: each pixel's light spread along +x over a sin^2 hump."""
    start = int(round(spectrum["start_px"]))
    length = max(int(round(spectrum["length_px"])), 2)
    hump = np.sin(np.linspace(0.0, math.pi, length, dtype=np.float64)) ** 2
    kernel = np.concatenate([np.zeros(start), hump / hump.sum()]).astype(np.float32)
    spread = sps.oaconvolve(points, kernel[None, :], mode="full", axes=1)
    return spread[:, : points.shape[1]].astype(np.float32)


def light_signal(light: dict[str, Any], shape: tuple[int, int]) -> np.ndarray:
    """The noiseless sky + stars (+ galaxy, + spectra) in electrons, before the flat."""
    img = np.full(shape, np.float32(light["sky_electrons"]), dtype=np.float32)
    stars = light["stars"]
    xs = np.array([s["x"] - 1 for s in stars], dtype=float)
    ys = np.array([s["y"] - 1 for s in stars], dtype=float)
    flux = np.array([s["electrons"] for s in stars], dtype=float)
    fwhm = float(light["fwhm_px"])
    spectrum = light.get("spectrum")
    if spectrum:
        physics.add_stars(img, xs, ys, flux * spectrum["order0"], fwhm)
        points = np.zeros(shape, dtype=np.float32)
        physics.add_stars(points, xs, ys, flux * spectrum["order1"], fwhm)
        img += _disperse(points, spectrum)
    elif len(stars):
        physics.add_stars(img, xs, ys, flux, fwhm)
    gal = light.get("galaxy")
    if gal:
        image = physics.GalaxyImage(gal["x"] - 1, gal["y"] - 1, gal["scale_px"], gal["pa_rad"],
                                    gal["electrons"], gal["knot_electrons"],
                                    tuple((a, b) for a, b in gal["knots"]))
        physics.add_galaxy(img, Galaxy(**gal["model"]), image, fwhm)
    return img
