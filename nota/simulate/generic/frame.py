"""One frame of the small observatory's night from plan to file, and its truth row.

Why a worker function of its job alone: frames can then be made in any order on any
number of processes and still come out byte-identical for a seed. The maps (dark rate,
bias pattern, flat responses) are written by the night beforehand and read here.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nota.simulate import physics
from nota.simulate.generic.camera import SATURATION, Sensor, dark_factor
from nota.simulate.generic.headers import frame_header
from nota.simulate.generic.light import describe_light, light_signal
from nota.simulate.generic.plan import Exposure
from nota.simulate.writer import write_fits, write_npz

__all__ = ["FrameJob", "make_frame", "map_name"]

log = logging.getLogger(__name__)

ON_SKY = ("science", "standard", "spectrum")


@dataclass(frozen=True)
class FrameJob:
    """What a worker needs to make one frame."""

    exposure: Exposure
    sensor: Sensor
    night: dict[str, Any]          # seed, night number, seeing, sky_offset, bias_drift
    night_dir: Path
    truth_dir: Path
    catalogue: tuple[dict[str, Any], ...] = ()


def map_name(kind: str, filter_name: str | None = None) -> str:
    """The truth map files: dark_rate.npy, bias_pattern.npy, response_<filter>.npy."""
    return f"response_{filter_name}.npy" if kind == "response" else f"{kind}.npy"


@functools.lru_cache(maxsize=8)
def _load_map(path: str) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def _bias_level(job: FrameJob, rng: np.random.Generator) -> float:
    """The pedestal OFFSET sets, drifting a little with the night and from frame to frame."""
    return round(job.sensor.bias_level + job.night["bias_drift"] + float(rng.normal(0, 0.3)), 2)


def _light_electrons(job: FrameJob, rng: np.random.Generator
                     ) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Electrons of light before the flat response (None for a dark frame) and its truth."""
    exp, shape = job.exposure, job.sensor.shape
    if exp.kind == "sky_flat":
        gradient, info = physics.twilight_gradient(shape, rng)
        level_e = np.float32((exp.level or 0.0) * job.sensor.egain)
        return level_e * gradient, {"twilight_gradient": info}
    if exp.kind in ON_SKY:
        light = describe_light(exp, job.sensor, job.night, job.catalogue, rng)
        return light_signal(light, shape), {"light": light}
    return None, {}


def make_frame(job: FrameJob) -> dict[str, Any]:
    """Make, write and describe one frame; returns its truth row."""
    exp, sensor = job.exposure, job.sensor
    rng = np.random.default_rng([job.night["seed"], job.night["night"], exp.seq, 5])
    bias_level = _bias_level(job, rng)
    light_e, extra = _light_electrons(job, rng)
    factor = dark_factor(exp.ccd_temp)
    rates = _load_map(str(job.truth_dir / map_name("dark_rate")))
    electrons = rates * np.float32(factor * exp.exptime)
    dark_mean = float(electrons.mean(dtype=np.float64))
    if light_e is not None:
        response = _load_map(str(job.truth_dir / map_name("response", exp.filter)))
        electrons += light_e * response
    values = physics.photon_noise(electrons / np.float32(sensor.egain), sensor.egain,
                                  sensor.read_noise / sensor.egain, rng)
    hits = physics.cosmic_rays(sensor.shape, sensor.binning, sensor.cosmic_area(),
                               exp.exptime, rng)
    values.ravel()[hits.index] += hits.adu
    bias = _load_map(str(job.truth_dir / map_name("bias_pattern")))
    data = physics.digitise(values, bias + np.float32(bias_level))
    header = frame_header(exp, sensor, extra.get("light"))
    path = job.night_dir / exp.filename
    write_fits(path, data, header, None)
    write_npz(job.truth_dir / "cosmics" / f"{Path(exp.filename).stem}.npz",
              index=hits.index.astype(np.int64), adu=hits.adu)
    return _truth_row(job, bias_level, factor, dark_mean, hits, data, extra)


def _truth_row(job: FrameJob, bias_level: float, factor: float, dark_mean: float,
               hits: physics.CosmicHits, data: np.ndarray, extra: dict[str, Any]
               ) -> dict[str, Any]:
    exp, sensor = job.exposure, job.sensor
    return {
        "filename": exp.filename, "sequence": exp.seq, "kind": exp.kind,
        "folder": exp.folder, "imagetyp": exp.imagetyp, "software": exp.software,
        "style": exp.style, "object": exp.object, "field": exp.field,
        "filter": exp.filter, "filter_written": exp.filter_written,
        "exptime": exp.exptime, "date_obs": exp.start.isoformat(timespec="microseconds"),
        "set_temp": exp.set_temp, "ccd_temp": exp.ccd_temp,
        "bias_level": bias_level, "gain": sensor.egain, "read_noise": sensor.read_noise,
        "read_noise_adu": round(sensor.read_noise / sensor.egain, 4),
        "dark_factor": round(factor, 6), "dark_electrons_mean": round(dark_mean, 4),
        "response": (map_name("response", exp.filter)
                     if exp.filter and exp.kind not in ("bias", "dark") else None),
        "flat_level": exp.level, "shape": list(data.shape),
        "n_saturated": int(np.count_nonzero(data == SATURATION)),
        "cosmic_rays": hits.n_tracks, "cosmic_pixels": int(hits.index.size),
        "cosmics": f"cosmics/{Path(exp.filename).stem}.npz", **extra,
    }
