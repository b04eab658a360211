"""Simulating whole nights: the plan, the shared maps, the frames (in parallel), the truth.

The only module of ``nota.simulate`` that decides what goes where on disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nota.errors import SimulationError
from nota.instruments import load_profile
from nota.simulate.conditions import BANDS, NightConditions, night_conditions
from nota.simulate.detector import Geometry, bias_pattern, response_map
from nota.simulate.frame import FrameJob, make_frame, response_name
from nota.simulate.plan import FILTER_WHEEL, FramePlan, frame_filename, night_date, night_plan
from nota.simulate.sky import FIELDS, field_catalogue
from nota.simulate.truth import (
    TRUTH_DIR,
    TRUTH_FILE,
    load_truth,
    merge_frames,
    write_catalogue,
    write_truth,
)
from nota.simulate.writer import write_npy
from nota.standards import CALSPEC_FILES, synthetic_magnitudes

__all__ = ["CAMERAS", "NightSummary", "simulate_run"]

log = logging.getLogger(__name__)

CAMERAS = ("alfosc", "generic")


@dataclass(frozen=True)
class NightSummary:
    """One simulated night on disk."""

    name: str            # "N1"
    night: str           # ISO date the night began
    directory: Path
    n_frames: int
    truth_dir: Path


def _check(nights: int, seed: int, jobs: int | None, only: Collection[int] | None) -> None:
    if not isinstance(nights, int) or isinstance(nights, bool) or nights < 1:
        raise SimulationError(f"nights must be a whole number of at least 1, not {nights!r}")
    if nights > 30:
        raise SimulationError(f"the run has at most 30 nights, not {nights}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SimulationError(f"seed must be a non-negative whole number, not {seed!r}")
    if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
        raise SimulationError(f"jobs must be at least 1, not {jobs!r}")
    if only is not None and not all(isinstance(s, int) and not isinstance(s, bool) for s in only):
        raise SimulationError("only takes frame sequence numbers (whole numbers)")


def _standard_magnitudes() -> dict[str, dict[str, float]]:
    filters = load_profile("alfosc").filters
    return {name: synthetic_magnitudes(name, [filters[i] for i in BANDS]) for name in CALSPEC_FILES}


def _response_task(args: tuple[int, int, int, str, bool, str]) -> str:
    seed, binning, filter_id, wheel, rotated, path = args
    response, _ = response_map(seed, Geometry(binning), filter_id, wheel, rotated)
    write_npy(Path(path), response)
    return path


def _prepare_night(outdir: Path, seed: int, night: int, small: bool, mef: bool,
                   only: Collection[int] | None, std_mags: dict[str, dict[str, float]]
                   ) -> tuple[NightConditions, list[FramePlan], list[FrameJob], list[tuple], dict]:
    cond = night_conditions(seed, night, night_date(night), small)
    plan = list(night_plan(night, np.random.default_rng([seed, night, 1])))
    selected = plan if only is None else [p for p in plan if p.seq in set(only)]
    night_dir = outdir / f"N{night}"
    truth_dir = night_dir / TRUTH_DIR
    (truth_dir / "cosmics").mkdir(parents=True, exist_ok=True)
    catalogues: dict[str, list[dict[str, Any]]] = {}
    for key in sorted({p.field for p in plan if p.field}):
        fld = FIELDS[key]
        catalogues[key] = field_catalogue(seed, fld, std_mags.get(fld.standard or ""))
        write_catalogue(truth_dir / f"catalogue_{key}.csv", catalogues[key])
    responses = {}
    for p in plan:
        name = response_name(p)
        if name is not None and name not in responses:
            responses[name] = (seed, cond.binning, p.filter_id, FILTER_WHEEL[p.filter_id],
                               name.endswith("_rotated"), str(truth_dir / f"response_{name}.npy"))
    jobs = [FrameJob(p, cond, frame_filename(night, p.seq), night_dir, truth_dir, mef,
                     tuple(catalogues.get(p.field or "", ())))
            for p in selected]
    fields = {key: {"ra": FIELDS[key].ra_deg, "dec": FIELDS[key].dec_deg,
                    "standard": FIELDS[key].standard, "n_stars": len(catalogues[key]),
                    "catalogue": f"catalogue_{key}.csv",
                    "galaxy": vars(FIELDS[key].galaxy) if FIELDS[key].galaxy else None}
              for key in catalogues}
    return cond, plan, jobs, list(responses.values()), fields


def simulate_run(outdir: Path, *, nights: int = 1, seed: int = 1, small: bool = False,
                 mef: bool = False, only: Collection[int] | None = None,
                 jobs: int | None = None,
                 on_frame: Callable[[int, int], None] | None = None,
                 camera: str = "alfosc") -> list[NightSummary]:
    """Write ``nights`` simulated nights under ``outdir`` (N1/, N2/, ...) with truth.

    ``camera`` is "alfosc" (NOT/ALFOSC, 2008) or "generic" (a cooled CMOS camera at a
    small observatory, see ``nota.simulate.generic``). Deterministic for a seed whatever
    ``jobs`` is. ``only`` limits every ALFOSC night to those frame sequence numbers;
    ``on_frame(done, total)`` is called after each frame.

    Example::

        simulate_run(Path("sim"), small=True, only={1, 2, 44})
        simulate_run(Path("cmos"), small=True, camera="generic")
    """
    _check(nights, seed, jobs, only)
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise SimulationError(f"{outdir} exists and is not a directory")
    if camera != "alfosc":
        return _simulate_other(camera, outdir, nights, seed, small, mef, only, jobs, on_frame)
    std_mags = _standard_magnitudes()
    prepared = [_prepare_night(outdir, seed, n, small, mef, only, std_mags)
                for n in range(1, nights + 1)]
    if only is not None:
        known = {p.seq for _, plan, *_ in prepared for p in plan}
        missing = sorted(set(only) - known)
        if missing:
            raise SimulationError(f"no frame {missing[0]} in the plan (frames 1-{max(known)})")
    all_jobs = [job for _, _, night_jobs, _, _ in prepared for job in night_jobs]
    response_tasks = [t for *_, tasks, _ in prepared for t in tasks]
    workers = jobs or os.cpu_count() or 1
    results: dict[tuple[int, int], dict[str, Any]] = {}
    done = 0
    if workers == 1 or len(all_jobs) + len(response_tasks) <= 2:
        for task in response_tasks:
            _response_task(task)
        for night_prep in prepared:
            _write_shared(night_prep[0], night_prep[2])
        for job in all_jobs:
            results[(job.cond.night, job.plan.seq)] = make_frame(job)
            done += 1
            if on_frame:
                on_frame(done, len(all_jobs))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for future in as_completed([pool.submit(_response_task, t) for t in response_tasks]):
                future.result()
            for night_prep in prepared:
                _write_shared(night_prep[0], night_prep[2])
            futures = {pool.submit(make_frame, job): job for job in all_jobs}
            for future in as_completed(futures):
                job = futures[future]
                results[(job.cond.night, job.plan.seq)] = future.result()
                done += 1
                if on_frame:
                    on_frame(done, len(all_jobs))
    summaries = []
    for cond, plan, night_jobs, _, fields in prepared:
        night_dir = outdir / f"N{cond.night}"
        truth_dir = night_dir / TRUTH_DIR
        frames = [results[(cond.night, j.plan.seq)] for j in night_jobs]
        night_info = _night_info(cond, mef, len(plan))
        old = load_truth(night_dir) if (truth_dir / TRUTH_FILE).exists() else None
        merged = merge_frames(old, night_info, frames)
        write_truth(truth_dir, {"night": night_info, "standards": std_mags,
                                "fields": fields, "frames": merged})
        summaries.append(NightSummary(f"N{cond.night}", cond.date.isoformat(), night_dir,
                                      len(night_jobs), truth_dir))
        log.info("night %s: %d frames in %s", cond.date, len(night_jobs), night_dir)
    return summaries


def _simulate_other(camera: str, outdir: Path, nights: int, seed: int, small: bool, mef: bool,
                    only: Collection[int] | None, jobs: int | None,
                    on_frame: Callable[[int, int], None] | None) -> list[NightSummary]:
    """A camera other than ALFOSC (imported here: its runner imports this module)."""
    if camera not in CAMERAS:
        raise SimulationError(f"camera must be one of {', '.join(CAMERAS)}, not {camera!r}")
    if mef:
        raise SimulationError(f"--mef is for the ALFOSC night; {camera} writes simple FITS")
    if only is not None:
        raise SimulationError(f"only= (frame numbers) is for the ALFOSC night, not {camera}")
    from nota.simulate.generic import simulate_generic

    return simulate_generic(outdir, nights=nights, seed=seed, small=small, jobs=jobs,
                            on_frame=on_frame)


def _write_shared(cond: NightConditions, jobs: list[FrameJob]) -> None:
    """The fixed bias structure every frame of the night is read out with."""
    if not jobs:
        return
    truth_dir = jobs[0].truth_dir
    write_npy(truth_dir / "bias_pattern.npy", bias_pattern(cond.seed, Geometry(cond.binning)))


def _night_info(cond: NightConditions, mef: bool, n_planned: int) -> dict[str, Any]:
    detector = load_profile("alfosc").detector
    return {
        "date": cond.date.isoformat(), "night": cond.night, "seed": cond.seed,
        "small": cond.small, "mef": mef, "binning": cond.binning,
        "magnitude_system": "AB",
        "zero_points": cond.zero_points, "extinction": cond.extinction,
        "flux_model": "ADU/s = 10**(-0.4*(mag - zero_point + extinction*airmass_mid)) "
                      "before the flat response; airmass is sec z",
        "gain": cond.gain, "read_noise": cond.read_noise,
        "read_noise_adu": round(cond.read_noise_adu, 4), "bias_level": cond.bias_level,
        "seeing": cond.seeing, "saturation": int(detector["saturation"]),
        "pixel_scale": float(detector["pixel_scale"]) * cond.binning,
        "n_planned": n_planned,
        "response_normalisation": "1 at the optical centre on a clean pixel; 0 unlit",
    }
