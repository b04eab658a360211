"""Stack: a series of exposures of one object, filter and night, aligned and combined.

The lecture's other way against cosmic rays: each exposure's reduced frame aligned on the
first (astroalign on the stars, refitted on every shared star), values rejected against
each frame's own noise (IRAF's ccdclip), averaged, and scaled to the summed exposure.
The profile's ``[reduce.stack]`` says which frames make a series.
"""

from __future__ import annotations

from dataclasses import dataclass

from astropy.io import fits

from nota.archive.selections import selected_file_ids, selection_condition
from nota.archive.frames import frame_facts
from nota.pipeline import record
from nota.pipeline.params import recipe_key
from nota.pipeline.product_files import pictures, read_product, stamp, write_product
from nota.pipeline.steps.common import product_path, slug
from nota.pipeline.steps.photometric_calibration import stamp_header
from nota.pipeline.tasks import ProductResult, Task
from nota.reduce.stack import StackParameters
from nota.settings import build

NAME = "stack"
VERSION = 1  # bump when aligning or combining changes: every stack becomes stale

__all__ = ["NAME", "VERSION", "Series", "Params", "Result", "plan", "make", "current", "record_result"]


@dataclass(frozen=True)
class Series:
    """Which frames make a series (planning only: not part of a stack's recipe)."""

    selection: str = "science"  # the frames a series is made of
    by: tuple[str, ...] = ("night", "object", "filter")  # what the frames of one series share
    min_exposures: int = 3  # the lecture: "three or more" exposures; fewer are not stacked


@dataclass(frozen=True)
class Params:
    """How one series is combined, and its exposures (in time order)."""

    combine: StackParameters
    frames: tuple[str, ...]
    exptimes: tuple[float, ...]
    airmasses: tuple[float | None, ...]
    photometry: bool = False  # waits for its night's solution in its filter: PHOTZP


Result = ProductResult

_SERIES_KEYS = {"selection", "by", "min_exposures"}


def _settings(profile) -> tuple[Series, StackParameters] | None:
    if NAME not in profile.reduce:  # a profile without [reduce.stack] makes no stacks
        return None
    settings = dict(profile.reduce[NAME])
    where = f"profile {profile.key}.toml [reduce.{NAME}]"
    series = {k: settings.pop(k) for k in list(settings) if k in _SERIES_KEYS}
    if "by" in series:
        series["by"] = tuple(series["by"])
    return build(Series, series, where=where), build(StackParameters, settings, where=where)


def plan(context) -> list[Task]:
    """One stack per series: reduced frames of the profile's stack selection sharing its keys."""
    by_file = {t.file_id: t for t in context.planned("reduced")}
    facts = frame_facts(context.archive, by_file)
    solutions = {(t.night, t.filter): t.key for t in context.planned("photometric_calibration")}
    out = []
    for instrument in sorted({f["instrument"] for f in facts.values() if f["instrument"]}):
        profile = context.profile(instrument)
        found = _settings(profile)
        if found is None:
            continue
        series_settings, combine = found
        ids = set(selected_file_ids(context.archive, selection_condition(context.archive, series_settings.selection)))
        series: dict[tuple, list[dict]] = {}
        for file_id in sorted(ids & by_file.keys()):
            if facts[file_id]["instrument"] == instrument:
                series.setdefault(tuple(facts[file_id].get(k) for k in series_settings.by), []).append(facts[file_id])
        for members in series.values():
            if len(members) >= series_settings.min_exposures:
                out.append(_task(context, sorted(members, key=lambda f: f["date_obs"] or ""), by_file, combine, solutions))
    return out


def _task(context, members: list[dict], by_file: dict[int, Task], combine: StackParameters,
          solutions: dict[tuple, str]) -> Task:
    exposures = [by_file[f["file_id"]] for f in members]
    first = members[0]
    solution = solutions.get((first["night"], first["filter"]))
    params = Params(combine, tuple(f["filename"] for f in members), tuple(float(f["exptime"]) for f in members),
                    tuple(t.params.airmass for t in exposures), photometry=solution is not None)
    needs = {f"exposure:{f['filename']}": t.key for f, t in zip(members, exposures)}
    if solution is not None:
        needs["calibration"] = solution
    failure = next((t.failure for t in exposures if t.failure), None)
    name = f"stack_{slug(first['object'] or 'series')}_{first['filter']}.fits"
    return Task(NAME, recipe_key(NAME, VERSION, params, [], needs), product_path(context.root, first["night"], NAME, name),
                first["night"], first["filter"], params, needs=needs, optional=frozenset({"calibration"}),
                failure=failure)


def make(task: Task, inputs: dict, work) -> Result:
    """Align the series' reduced exposures on the first, clip and average them."""
    from nota.reduce.stack import align_series, stack_series

    params: Params = task.params
    frames = [read_product(inputs[f"exposure:{name}"]) for name in params.frames]
    stack, info = stack_series(align_series(frames, params=params.combine), params.exptimes, params.airmasses,
                               params=params.combine, names=params.frames)
    header = fits.Header(stack.meta)
    for keyword in ("NCOSMIC", "NOTABIAS", "NOTAFLAT", "PHOTZP", "PHOTZPER", "PHOTSYS", "PHOTAIRM", "PHOTCAL"):
        header.remove(keyword, ignore_missing=True)
    history = [f"nota: {len(params.frames)} exposures aligned on {params.frames[0]} (astroalign),"
               f" {info['rejected_pixels']} values rejected as cosmic rays"]
    zp = None
    if params.photometry:
        zp = stamp_header(header, history, inputs.get("calibration"), info["airmass"], info["exptime"])
    stack.meta = stamp(header, task, history, {})
    digest, size = write_product(stack, task.output)
    return Result(task.output, digest, size, pictures(stack.data, "reduced", stack.mask), photzp=zp,
                  airmass=info["airmass"], exptime=info["exptime"])


current = record.current_products
record_result = record.record_product
