"""Simulating the small observatory's nights: maps, plan, frames (in parallel), truth.

Why its own runner: the camera shares the ALFOSC simulator's physics (noise, stars,
galaxies, cosmic rays, sky geometry) but not its plan, maps or headers. Called by
``nota.simulate.simulate_run(camera="generic")`` after that function's checks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from nota.instruments import load_profile
from nota.simulate.conditions import BANDS
from nota.simulate.generic import camera, light
from nota.simulate.generic.camera import Sensor
from nota.simulate.generic.frame import FrameJob, make_frame, map_name
from nota.simulate.generic.headers import INSTRUMENT, TELESCOPE
from nota.simulate.generic.plan import SITE, TARGETS, UTC_OFFSET_H, night_date, night_plan
from nota.simulate.run import NightSummary
from nota.simulate.sky import field_catalogue
from nota.simulate.truth import TRUTH_DIR, write_catalogue, write_truth
from nota.simulate.writer import write_npy
from nota.standards import synthetic_magnitudes

__all__ = ["FOLDERS", "simulate_generic"]

log = logging.getLogger(__name__)

FOLDERS = ("BIAS", "DARK", "DARKFLAT", "FLAT", "LIGHT")
CATALOGUE_RADIUS = 640.0        # arcsec: the field is 17.5' x 11.7'


def _catalogues(seed: int) -> dict[str, list[dict[str, Any]]]:
    """Every target's stars (the sky is the same every night); the standard's own star
    carries its CALSPEC magnitudes."""
    filters = load_profile("alfosc").filters
    out = {}
    for key, fld in TARGETS.items():
        mags = (synthetic_magnitudes(fld.standard, [filters[i] for i in BANDS])
                if fld.standard else None)
        out[key] = field_catalogue(seed, fld, mags, CATALOGUE_RADIUS)
    return out


def _conditions(seed: int, night: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, night, 0, 77])
    return {"seed": seed, "night": night, "date": night_date(night).isoformat(),
            "seeing": round(float(rng.uniform(2.2, 3.0)), 3),
            "sky_offset": round(float(rng.normal(0.0, 0.15)), 3),
            "bias_drift": round(float(rng.normal(0.0, 1.0)), 2)}


def _maps(seed: int, sensor: Sensor) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The hardware's maps by truth file name, and the truth's description of them."""
    rates, dark = camera.dark_rate_map(seed, sensor)
    responses, parts = camera.response_maps(seed, sensor)
    maps = {map_name("dark_rate"): rates,
            map_name("bias_pattern"): camera.bias_pattern(seed, sensor)}
    maps.update({map_name("response", f): r for f, r in responses.items()})
    description = {
        "dark": {"map": map_name("dark_rate"),
                 "units": "e-/s per readout pixel at reference_temperature",
                 "reference_temperature": camera.REFERENCE_C,
                 "doubling_temperature": camera.DOUBLING_C,
                 "formula": "electrons = map * 2**((CCD-TEMP - reference_temperature) / "
                            "doubling_temperature) * EXPTIME (glow and hot pixels included)",
                 **dark},
        "bias": {"pattern": map_name("bias_pattern"),
                 "units": "ADU, zero mean; a frame reads pattern + its bias_level"},
        "responses": {"maps": {f: map_name("response", f) for f in responses},
                      "normalisation": "1 at the optical centre on a clean pixel", **parts},
    }
    return maps, description


def _night_info(sensor: Sensor, cond: dict[str, Any]) -> dict[str, Any]:
    ny, nx = sensor.shape
    return {
        **cond, "camera": "generic", "small": sensor.binning > 1, "binning": sensor.binning,
        "shape": [ny, nx], "instrument": INSTRUMENT, "telescope": TELESCOPE,
        "gain": sensor.egain, "gain_setting": sensor.gain_setting,
        "offset_setting": sensor.offset_setting, "bias_level": sensor.bias_level,
        "read_noise": sensor.read_noise,
        "read_noise_adu": round(sensor.read_noise / sensor.egain, 4),
        "saturation": camera.SATURATION, "pixel_size_um": round(sensor.pixel_um, 2),
        "focal_length_mm": camera.FOCAL_MM, "pixel_scale": round(sensor.pixel_scale, 5),
        "site": SITE, "utc_offset_hours": UTC_OFFSET_H,
        "zero_points": light.ZERO_POINT, "extinction": light.EXTINCTION,
        "sky_mu": light.SKY_MU, "catalogue_bands": light.CATALOGUE_BAND,
        "flux_model": "electrons = 10**(-0.4*(mag - zero_point + extinction*airmass_mid)) "
                      "* exptime, before the flat response; mag in catalogue_bands",
        "pixels": "x, y are 1-based FITS pixels; maps are numpy arrays [y - 1, x - 1]",
        "frame_bias": "frame bias_level = bias_level + bias_drift + N(0, 0.3) ADU",
    }


def _prepare(outdir: Path, seed: int, night: int, sensor: Sensor,
             maps: dict[str, np.ndarray], catalogues: dict[str, list[dict[str, Any]]]
             ) -> tuple[dict[str, Any], list[FrameJob]]:
    """A night's directories, maps and catalogues on disk, and its frames' jobs."""
    cond = _conditions(seed, night)
    night_dir = outdir / f"N{night}"
    truth_dir = night_dir / TRUTH_DIR
    (truth_dir / "cosmics").mkdir(parents=True, exist_ok=True)
    for folder in FOLDERS:
        (night_dir / folder).mkdir(exist_ok=True)
    for name, array in maps.items():
        write_npy(truth_dir / name, array)
    for key, stars in catalogues.items():
        write_catalogue(truth_dir / f"catalogue_{key}.csv", stars)
    plan = night_plan(night, np.random.default_rng([seed, night, 1, 77]))
    jobs = [FrameJob(p, sensor, cond, night_dir, truth_dir,
                     tuple(catalogues[p.field]) if p.field else ()) for p in plan]
    return cond, jobs


def _run_jobs(jobs: list[FrameJob], workers: int,
              on_frame: Callable[[int, int], None] | None) -> dict[tuple[int, int], dict]:
    results: dict[tuple[int, int], dict[str, Any]] = {}

    def done(job: FrameJob, row: dict[str, Any]) -> None:
        results[(job.night["night"], job.exposure.seq)] = row
        if on_frame:
            on_frame(len(results), len(jobs))

    if workers == 1 or len(jobs) <= 2:
        for job in jobs:
            done(job, make_frame(job))
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(make_frame, job): job for job in jobs}
        for future in as_completed(futures):
            done(futures[future], future.result())
    return results


def simulate_generic(outdir: Path, *, nights: int = 1, seed: int = 1, small: bool = False,
                     jobs: int | None = None,
                     on_frame: Callable[[int, int], None] | None = None,
                     binning: int | None = None) -> list[NightSummary]:
    """Write ``nights`` nights of the small observatory's camera under ``outdir`` with truth.

    ``small`` reads the sensor out binned 4x4; ``binning`` any other way (2: 1504 x 1004).
    Deterministic for a seed whatever ``jobs`` is. Example::

        simulate_generic(Path("sim"), small=True)
    """
    outdir = Path(outdir)
    sensor = Sensor(binning or (4 if small else 1))
    maps, description = _maps(seed, sensor)
    catalogues = _catalogues(seed)
    prepared = [_prepare(outdir, seed, n, sensor, maps, catalogues) for n in range(1, nights + 1)]
    all_jobs = [job for _, night_jobs in prepared for job in night_jobs]
    results = _run_jobs(all_jobs, jobs or os.cpu_count() or 1, on_frame)
    fields = {key: {"name": f.name, "ra": f.ra_deg, "dec": f.dec_deg, "standard": f.standard,
                    "n_stars": len(catalogues[key]), "catalogue": f"catalogue_{key}.csv",
                    "galaxy": vars(f.galaxy) if f.galaxy else None}
              for key, f in TARGETS.items()}
    summaries = []
    for cond, night_jobs in prepared:
        night_dir = outdir / f"N{cond['night']}"
        frames = [results[(cond["night"], j.exposure.seq)] for j in night_jobs]
        write_truth(night_dir / TRUTH_DIR, {"night": _night_info(sensor, cond), **description,
                                            "fields": fields, "frames": frames})
        summaries.append(NightSummary(f"N{cond['night']}", cond["date"], night_dir,
                                      len(frames), night_dir / TRUTH_DIR))
        log.info("night %s: %d frames in %s", cond["date"], len(frames), night_dir)
    return summaries
