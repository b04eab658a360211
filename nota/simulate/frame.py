"""One frame from plan to file: circumstances, light, noise, cosmic rays, header, write.

``make_frame`` is what a worker process runs; it depends only on its job and the maps the
night wrote beforehand, so frames can be made in any order and on any number of processes
and still come out byte-identical.
"""

from __future__ import annotations

import functools
import logging
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nota.instruments import load_profile
from nota.simulate import physics
from nota.simulate.conditions import NightConditions
from nota.simulate.detector import FULL_NX, FULL_NY
from nota.simulate.headers import frame_headers
from nota.simulate.observe import Observation, observe
from nota.simulate.plan import FramePlan
from nota.simulate.sky import FIELDS, world_to_pixel
from nota.simulate.writer import write_fits, write_npz

__all__ = ["FrameJob", "make_frame", "response_name"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameJob:
    """What a worker needs to make one frame."""

    plan: FramePlan
    cond: NightConditions
    filename: str
    night_dir: Path
    truth_dir: Path
    mef: bool
    stars: tuple[dict[str, Any], ...] = ()      # the field's catalogue, if on the sky


def response_name(plan: FramePlan) -> str | None:
    """Which true response map a frame was made with (the rotated filter has its own)."""
    if plan.filter_id is None:
        return None
    band = load_profile("alfosc").filters[plan.filter_id].short_name
    return f"{band}_rotated" if "rotated_filter" in plan.flags else band


@functools.lru_cache(maxsize=8)
def _load_map(path: str) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def _star_light(obs: Observation, job: FrameJob, shape: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Star positions (0-based), ADU in this exposure, and their truth rows."""
    if obs.wcs is None or not job.stars or obs.band is None:
        return np.zeros(0), np.zeros(0), np.zeros(0), []
    zp = job.cond.zero_points[obs.band]
    k = job.cond.extinction[obs.band]
    ra = np.array([s["ra"] for s in job.stars])
    dec = np.array([s["dec"] for s in job.stars])
    mags = np.array([s[obs.band] for s in job.stars])
    x1, y1 = world_to_pixel(obs.wcs, ra, dec)              # 1-based
    rate = 10 ** (-0.4 * (mags - zp + k * obs.airmass_mid))
    ny, nx = shape
    margin = 60.0
    near = (x1 > -margin) & (x1 < nx + margin) & (y1 > -margin) & (y1 < ny + margin)
    rows = [
        {"id": job.stars[i]["id"], "x": round(float(x1[i]), 3), "y": round(float(y1[i]), 3),
         "mag": float(mags[i]), "adu_per_s": round(float(rate[i]), 4)}
        for i in np.flatnonzero(near)
        if 0.5 <= x1[i] <= nx + 0.5 and 0.5 <= y1[i] <= ny + 0.5
    ]
    return x1[near] - 1, y1[near] - 1, rate[near] * job.plan.exptime, rows


def _galaxy_light(obs: Observation, job: FrameJob, signal: np.ndarray) -> dict[str, Any] | None:
    fld = FIELDS.get(job.plan.field or "")
    if fld is None or fld.galaxy is None or obs.wcs is None or obs.band is None:
        return None
    gal = fld.galaxy
    zp = job.cond.zero_points[obs.band]
    k = job.cond.extinction[obs.band]
    colour = {"B": 1.45, "V": 0.55, "R": 0.0, "NII_658": 0.05, "661_5": 0.05}[obs.band]
    flux = 10 ** (-0.4 * (gal.r_mag + colour - zp + k * obs.airmass_mid)) * job.plan.exptime
    knot = 0.0
    if obs.band == gal.halpha_filter:
        knot = 10 ** (-0.4 * (gal.knot_mag - zp + k * obs.airmass_mid)) * job.plan.exptime
    rng = np.random.default_rng([job.cond.seed, 8, zlib.crc32(fld.key.encode())])
    knots = tuple((float(a), float(b)) for a, b in
                  zip(rng.normal(0, 1.3, gal.n_knots), rng.normal(0, 1.3, gal.n_knots)))
    x1, y1 = world_to_pixel(obs.wcs, np.array([fld.ra_deg]), np.array([fld.dec_deg]))
    rot = math.atan2(obs.wcs.cd[1][0], obs.wcs.cd[1][1])
    image = physics.GalaxyImage(float(x1[0]) - 1, float(y1[0]) - 1,
                                gal.scale_arcsec / obs.pixel_scale,
                                math.radians(gal.pa_deg) + rot, flux, knot, knots)
    physics.add_galaxy(signal, gal, image, obs.fwhm_px or 3.0)
    return {"x": round(float(x1[0]), 3), "y": round(float(y1[0]), 3),
            "flux_adu": round(flux, 2), "knot_adu": round(knot, 2), "n_knots": len(knots)}


def make_frame(job: FrameJob) -> dict[str, Any]:
    """Make, write and describe one frame; returns its truth row."""
    plan, cond = job.plan, job.cond
    rng = np.random.default_rng([cond.seed, cond.night, plan.seq])
    obs = observe(plan, cond, rng)
    geo = obs.geometry
    shape = geo.shape
    signal = np.zeros(shape, dtype=np.float32)
    extra: dict[str, Any] = {}
    if plan.kind == "dome_flat":
        lamp = physics.dome_lamp(geo.full_shape, 0)[geo.slices]
        signal += np.float32(plan.level * (1 + rng.normal(0, 0.002))) * lamp
    elif plan.level is not None:
        gradient, extra["twilight_gradient"] = physics.twilight_gradient(geo.full_shape, rng)
        signal += np.float32(plan.level) * gradient[geo.slices]
    elif plan.on_sky:
        signal += np.float32(obs.sky_rate * plan.exptime)
    xs, ys, fluxes, star_rows = _star_light(obs, job, shape)
    if len(xs):
        physics.add_stars(signal, xs, ys, fluxes, obs.fwhm_px or 3.0)
    galaxy = _galaxy_light(obs, job, signal)
    name = response_name(plan)
    if name is not None:
        response = _load_map(str(job.truth_dir / f"response_{name}.npy"))[geo.slices]
        signal *= response
        for row in star_rows:
            ix = min(max(int(round(row["x"])) - 1, 0), shape[1] - 1)
            iy = min(max(int(round(row["y"])) - 1, 0), shape[0] - 1)
            row["response"] = round(float(response[iy, ix]), 5)
    values = physics.photon_noise(signal, cond.gain, cond.read_noise_adu, rng)
    area = (shape[0] * shape[1] * geo.binning**2) / (FULL_NX * FULL_NY)
    hits = physics.cosmic_rays(shape, geo.binning, area, plan.exptime, rng)
    values.ravel()[hits.index] += hits.adu
    bias = _load_map(str(job.truth_dir / "bias_pattern.npy"))[geo.slices]
    data = physics.digitise(values, bias + np.float32(obs.bias_level))
    primary, image = frame_headers(obs, job.filename, int(data.min()), int(data.max()), job.mef)
    write_fits(job.night_dir / job.filename, data, primary, image)
    write_npz(job.truth_dir / "cosmics" / f"{job.filename.removesuffix('.fits')}.npz",
              index=hits.index.astype(np.int64), adu=hits.adu)
    return _truth_row(job, obs, name, star_rows, galaxy, hits, data, extra)


def _truth_row(job: FrameJob, obs: Observation, response: str | None,
               stars: list[dict[str, Any]], galaxy: dict[str, Any] | None,
               hits: physics.CosmicHits, data: np.ndarray, extra: dict[str, Any]
               ) -> dict[str, Any]:
    plan = job.plan
    saturated = int(np.count_nonzero(data == physics.SATURATION))
    flags = list(plan.flags)
    if saturated and "saturated_star" not in flags and plan.on_sky:
        flags.append("saturated")
    return {
        "filename": job.filename, "sequence": plan.seq, "object": plan.object,
        "kind": plan.kind, "filter": obs.band if plan.filter_id is not None else None,
        "filter_id": plan.filter_id, "imagetyp": plan.imagetyp, "exptime": plan.exptime,
        "date_obs": plan.start.isoformat(timespec="milliseconds"),
        "shape": list(data.shape), "window": list(plan.window) if plan.window else None,
        "field": plan.field, "airmass": obs.airmass_start, "airmass_mid": obs.airmass_mid,
        "sky_level": round(obs.sky_rate, 5) if plan.on_sky and plan.level is None else None,
        "seeing": obs.seeing, "fwhm_px": round(obs.fwhm_px, 3) if obs.fwhm_px else None,
        "bias_level": obs.bias_level,
        "flat_level": plan.level,
        "response": response, "flags": flags, "n_saturated": saturated,
        "wcs": obs.wcs.cards() if obs.wcs else None,
        "pointing": {"ra": round(obs.pointing.ra_deg, 7), "dec": round(obs.pointing.dec_deg, 7)},
        "cosmic_rays": hits.n_tracks, "cosmic_pixels": int(hits.index.size),
        "galaxy": galaxy, "stars": stars, **extra,
    }
