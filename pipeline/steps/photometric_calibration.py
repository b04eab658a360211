"""Photometric calibration: each night's zero point, extinction and colour term per filter.

The lecture's last step ("constantes instrumentales y coeficientes de extinción para cada
noche"): every standard star's reduced frame is measured, its catalogue magnitude and
colour are synthetic photometry of its CALSPEC spectrum (AB), and
``m_catalogue - m_instrumental = ZP - k X + c C`` is fitted per night and filter, C in the
colour index the profile names for the filter. A task per night and filter with standards;
science frames and stacks of that night and filter wait for it and get ``PHOTZP`` from it
(``stamp_photzp``), and go on without it when it cannot be made.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from nota.archive import calibrations
from nota.archive.database import Archive
from nota.archive.frames import frame_facts
from nota.errors import CalibrationError, NotaError, PhotometryError, ProfileError
from nota.instruments import Profile, load_profile
from nota.passbands import passband_for_filter
from nota.pipeline.params import recipe_key
from nota.pipeline.product_files import read_product
from nota.pipeline.tasks import Task
from nota.reduce.aperture import measure_star
from nota.reduce.standard_star import find_standard
from nota.reduce.photzp import photzp
from nota.reduce.zeropoint import (FitOptions, StandardObservation, ZeroPointFit, extinction_from_curve,
                                   fit_zero_point, plot_fit_png)
from nota.settings import build
from nota.standards import catalogue_colour, catalogue_magnitudes, find_filter, standard_for_object

NAME = "photometric_calibration"
VERSION = 2  # bump when measuring or fitting changes: every solution is redone

__all__ = ["NAME", "VERSION", "Params", "Result", "plan", "solution_keys", "make", "current", "record_result",
           "stamp_photzp", "stamp_header"]


@dataclass(frozen=True)
class StandardFrame:
    """A standard's reduced frame as the fit needs it: its name, OBJECT and airmass."""

    frame: str
    object: str | None
    airmass: float | None


@dataclass(frozen=True)
class Params:
    """The profile's ``[photometry]`` for one filter, and the standards it is fitted from."""

    profile: str  # the profile's key: its filter table and standard-star names
    colour_index: str | None = None  # e.g. 'B-V'; None: no colour term
    colour_term: tuple[float, float] | None = None  # (c, error) given by the user: not fitted
    fit: FitOptions = FitOptions()
    extinction_curve: str | None = None  # the site's mean curve (nota/data): k when it cannot be fitted
    standards: tuple[StandardFrame, ...] = ()


@dataclass(frozen=True)
class Result:
    fit: ZeroPointFit
    measured: tuple[tuple[str, StandardObservation], ...]  # (frame, observation)
    notes: tuple[tuple[str, str], ...]  # (frame, why it could not be measured)
    plot: tuple[str, bytes]

    @property
    def message(self) -> str:
        """What the activity's row says: what was fitted, and why anything was not."""
        return self.fit.method


def params_for(profile: Profile, filt: str, standards: tuple[StandardFrame, ...]) -> Params:
    """What the profile says about a filter's colour term (by short name), validated."""
    settings = dict(profile.photometry)
    where = f"profile {profile.key}.toml [photometry]"
    given = settings.pop("fixed_colour_term", {}).get(filt)
    index = settings.pop("colour_index", {}).get(filt)
    curve = settings.pop("extinction_curve", Params.extinction_curve)
    try:
        colour_term = None if given is None else (float(given[0]), float(given[1]))
    except (TypeError, ValueError, IndexError):
        raise ProfileError(f"{where}: fixed_colour_term for {filt} is {given!r}, not [c, its error]") from None
    return Params(profile.key, index, colour_term, build(FitOptions, settings, where=where), curve, standards)


def solution_keys(context, standards: list[Task]) -> dict[tuple, str]:
    """The key of each night and filter's solution, from the tasks of its standards."""
    return {where: task.key for where, task in _tasks(context, standards).items()}


def _tasks(context, standards: list[Task]) -> dict[tuple, Task]:
    by_night: dict[tuple, list[Task]] = defaultdict(list)
    for task in standards:
        if task.failure is None and task.night and task.filter:
            by_night[(task.night, task.filter)].append(task)
    facts = frame_facts(context.archive, [t.file_id for t in standards])
    out = {}
    for (night, filt), tasks in sorted(by_night.items()):
        tasks.sort(key=lambda t: facts[t.file_id]["filename"])
        profile = context.profile(facts[tasks[0].file_id]["instrument"])
        frames = tuple(StandardFrame(facts[t.file_id]["filename"], facts[t.file_id]["object"], t.params.airmass)
                       for t in tasks)
        params = params_for(profile, filt, frames)
        needs = {f"standard:{f.frame}": t.key for f, t in zip(frames, tasks)}
        out[(night, filt)] = Task(NAME, recipe_key(NAME, VERSION, params, [], needs), f"calibration {night}/{filt}",
                                  night, filt, params, needs=needs, optional=frozenset(needs))
    return out


def plan(context) -> list[Task]:
    """A solution for every night and filter with standards."""
    reduced = context.planned("reduced")
    kinds = frame_facts(context.archive, [t.file_id for t in reduced])
    standards = [t for t in reduced if kinds.get(t.file_id, {}).get("kind") == "standard"]
    return list(_tasks(context, standards).values())


def _observe(standard: StandardFrame, path: str, filt: str, params: Params) -> StandardObservation:
    profile = load_profile(params.profile)
    star = standard_for_object(standard.object, profile)
    if star is None:
        raise NotaError(f"OBJECT {standard.object!r} names no known standard")
    ccd = read_product(path)
    measured = measure_star(ccd, *find_standard(ccd))
    magnitude, _system = catalogue_magnitudes(star, filt, profile)
    colour = catalogue_colour(star, params.colour_index, profile) if params.colour_index else None
    if not measured.usable:
        raise NotaError(f"{star} not measurable ({', '.join(measured.flags) or 'unusable'})")
    return StandardObservation(standard.frame, star, float(standard.airmass), measured.mag, measured.mag_err,
                               magnitude, colour=colour)


def make(task: Task, inputs: dict, work) -> Result:
    """Measure the standards that were made, fit the night's solution, plot it."""
    params: Params = task.params
    measured, notes = [], []
    for standard in params.standards:
        path = inputs.get(f"standard:{standard.frame}")
        try:
            if path is None:
                raise NotaError("its reduced frame could not be made")
            measured.append((standard.frame, _observe(standard, path, task.filter, params)))
        except (PhotometryError, NotaError, OSError, ValueError, KeyError) as exc:
            notes.append((standard.frame, f"{standard.frame}: {exc}"))
    observations = [o for _, o in measured]
    try:
        filt = find_filter(task.filter, load_profile(params.profile))
        fallback_k = (extinction_from_curve(passband_for_filter(filt), params.extinction_curve)
                      if params.extinction_curve else None)  # no curve: k must be fitted
    except KeyError as exc:  # a filter the table lacks
        raise CalibrationError(str(exc)) from None
    try:
        fit = fit_zero_point(observations, filter_name=task.filter, fallback_k=fallback_k,
                             colour_index=params.colour_index, colour_term=params.colour_term, options=params.fit)
    except CalibrationError as exc:
        if fallback_k is None and "fallback" in str(exc):
            raise CalibrationError(f"{exc}: name the site's curve in the profile's [photometry]"
                                   " extinction_curve") from None
        raise
    subject = "Zero point, extinction and colour term" if fit.colour_fitted else "Zero point and extinction"
    title = f"{subject}, {task.filter}, night of {task.night} (AB)"
    return Result(fit, tuple(measured), tuple(notes), (title, plot_fit_png(fit, observations)))


def current(archive: Archive) -> dict[str, dict]:
    return calibrations.current_solutions(archive)


def record_result(archive: Archive, task: Task, result: Result, needed: dict[str, dict], activity_id: int) -> dict:
    """The solution and every standard's measurement; returns the solution frames get."""
    fit = result.fit
    solution = {"night": task.night, "filter": task.filter, "zp": fit.zp, "zp_err": fit.zp_err, "k": fit.k,
                "k_err": fit.k_err, "cov_zp_k": fit.cov_zp_k, "colour_term": fit.colour_term,
                "colour_term_err": fit.colour_term_err, "colour_index": fit.colour_index, "rms": fit.rms,
                "n_used": fit.n_used, "n_rejected": fit.n_rejected, "airmass_min": fit.airmass_range[0],
                "airmass_max": fit.airmass_range[1], "method": fit.method, "recipe_key": task.key}
    used = set(fit.used)
    rows = [{"product_id": needed[f"standard:{frame}"]["product_id"], "star": o.star, "airmass": o.airmass,
             "m_instrumental": o.m_instrumental, "m_instrumental_err": o.m_instrumental_err,
             "m_catalogue": o.m_catalogue, "used": int(o.label in used),
             "note": None if o.label in used else "rejected as an outlier"} for frame, o in result.measured]
    rows += [{"product_id": needed[f"standard:{frame}"]["product_id"], "used": 0, "note": why}
             for frame, why in result.notes if f"standard:{frame}" in needed]
    calibration_id = calibrations.record_solution(archive, solution, rows, result.plot, activity_id)
    return {**{k: solution[k] for k in calibrations.SOLUTION_COLUMNS if k in solution},
            "calibration_id": calibration_id}


# The frame's stage -------------------------------------------------------------------------


def stamp_header(header, history: list[str], solution: dict | None, airmass: float | None,
                 exptime: float | None) -> float | None:
    """PHOTZP, PHOTZPER, PHOTSYS, PHOTAIRM and PHOTCAL for a product's airmass and exposure."""
    if not solution or solution.get("zp") is None or not airmass or not exptime:
        history.append("nota: no photometric calibration for this night and filter: no PHOTZP")
        return None
    zp, k = float(solution["zp"]), float(solution["k"])
    value, error = photzp(zp, k, airmass, exptime, zp_err=solution.get("zp_err") or 0.0,
                          k_err=solution.get("k_err") or 0.0, cov_zp_k=solution.get("cov_zp_k") or 0.0)
    header["PHOTZP"] = (round(value, 4), "AB mag = -2.5 log10(ADU) + PHOTZP")
    header["PHOTZPER"] = (round(error, 4), "mag, error of PHOTZP")
    header["PHOTSYS"] = ("AB", "magnitude system of PHOTZP")
    header["PHOTAIRM"] = (round(airmass, 4), "mid-exposure airmass PHOTZP is for")
    header["PHOTCAL"] = (solution.get("calibration_id"), "nota photometric calibration id")
    history.append(f"nota: PHOTZP {value:.4f} (AB) = ZP {zp:.4f} - k {k:.4f} x airmass {airmass:.4f}"
                   f" + 2.5 log10(EXPTIME {exptime:g})")
    return value


def stamp_photzp(frame) -> None:
    """The frame's stage: PHOTZP from its night's solution, when it waits for one."""
    if frame.params.photometry:
        frame.figures["photzp"] = stamp_header(frame.header, frame.history, frame.inputs.get("calibration"),
                                               frame.params.airmass, frame.params.exptime)
