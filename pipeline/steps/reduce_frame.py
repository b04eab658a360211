"""Reduced frame: a standard or science frame through the lecture's chain, in one pass.

Read once, trim (and subtract the overscan), subtract the master bias, attach the noise,
mask saturated pixels, divide by the master flat, then what the night adds (cosmic rays
cleaned, a WCS solved, PHOTZP from the night's solution): the stages of
``nota.pipeline.settings.FRAME_STAGES``, in order, each a function of a ``Frame`` here or
in its own step module. Written once.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData

from nota.archive import association
from nota.archive.frames import RawFrame, frame_facts, raw_frame, readout
from nota.instruments import Profile
from nota.pipeline import record
from nota.pipeline.params import recipe_key
from nota.pipeline.product_files import pictures, raw_header, read_master, stamp, write_product
from nota.pipeline.settings import FRAME_STAGES
from nota.pipeline.steps import astrometry, cosmics, photometric_calibration
from nota.pipeline.steps.common import Overscan, overscan_for, prepare, product_name, product_path
from nota.pipeline.tasks import ProductResult, Task
from nota.reduce.airmass import mid_exposure_airmass
from nota.reduce.ccd import flat_correct, mask_saturated, subtract_bias, subtract_dark, with_deviation
from nota.settings import build

NAME = "reduced"
VERSION = 2  # bump when the chain changes: every reduced frame becomes stale

__all__ = ["NAME", "VERSION", "Params", "Result", "Frame", "plan", "make", "current", "record_result"]


@dataclass(frozen=True)
class Params:
    """The chain's settings for one frame: its readout, the profile's and the user's choices."""

    trimsec: str
    gain: float  # e-/ADU
    read_noise: float  # e-
    saturation: float  # ADU, raw
    airmass: float | None  # mid-exposure
    exptime: float | None
    overscan: Overscan | None = None
    flat_min_value: float = 0.1  # flat pixels below this fraction of the mean cannot be corrected: masked
    keep_intermediate: bool = False  # also write the lecture's t_ and zt_ files
    cosmics: cosmics.Params | None = None
    astrometry: astrometry.Params | None = None
    photometry: bool = False  # waits for its night's solution in its filter: PHOTZP
    dark_exposure: float | None = None  # s of its master dark (scaled to exptime); None: no darks


Result = ProductResult


@dataclass
class Frame:
    """A frame on its way through the stages (in a worker): pixels, header, history, figures."""

    task: Task
    params: Params
    inputs: dict[str, Any]  # role -> master's path; 'calibration' -> the night's solution
    raw: RawFrame
    header: fits.Header
    history: list[str] = field(default_factory=list)
    ccd: CCDData | None = None
    raw_trimmed: np.ndarray | None = None
    planes: dict[str, np.ndarray] = field(default_factory=dict)  # extra uint8 extensions (CRMASK)
    figures: dict[str, Any] = field(default_factory=dict)  # ProductResult fields the stages measured

    def write_intermediate(self, prefix: str, masters: dict[str, str]) -> None:
        """The lecture's t_ and zt_ files, when asked for."""
        if self.params.keep_intermediate:
            write_product(CCDData(self.ccd.data, unit="adu", meta=stamp(self.header, self.task, self.history, masters)),
                          str(Path(self.task.output).with_name(product_name(prefix, self.raw.name))))


# Planning -------------------------------------------------------------------------------


def plan(context) -> list[Task]:
    """Every standard and science frame associated to its masters: standards first, so each
    science frame knows the key of its night's solution; within each, a frame's astrometric
    anchors before it (they have fewer anchors of their own), so it knows their keys."""
    masters = {t.group_id: t for step in ("master_bias", "master_dark", "master_flat") for t in context.planned(step)}
    chosen = association.associations(context.archive)
    facts = frame_facts(context.archive, chosen)
    frames = [facts[i] for i in sorted(chosen) if i in facts]
    links = _anchor_links(context, frames)
    by_file: dict[int, Task] = {}

    def planned(f: dict, solutions: dict) -> Task:
        anchored = {role: by_file[a].key for role, a in links.get(f["file_id"], {}).items() if a in by_file}
        by_file[f["file_id"]] = _task(context, f, chosen[f["file_id"]], masters, solutions, anchored)
        return by_file[f["file_id"]]

    in_order = sorted(frames, key=lambda f: len(links.get(f["file_id"], {})))
    standards = [planned(f, {}) for f in in_order if f["kind"] == "standard"]
    solutions = photometric_calibration.solution_keys(context, standards) if context.options.photometry else {}
    for f in in_order:
        if f["kind"] != "standard":
            planned(f, solutions)
    return [by_file[f["file_id"]] for f in frames]


def _anchor_links(context, frames: list[dict]) -> dict[int, dict[str, int]]:
    """file_id -> {role: anchor's file_id} for the frames that will be solved."""
    solvable = []
    for f in frames:
        params = astrometry.params_for(context.profile(f["instrument"]), context.options, f)
        if params is not None:
            solvable.append(dict(f, scale=params.pixel_scale))
    return astrometry.anchors(solvable, lambda f: context.profile(f["instrument"])) if solvable else {}


def frame_params(context, profile: Profile, facts: dict, photometry: bool,
                 dark_exposure: float | None = None) -> Params:
    """The chain's settings for a frame, from its readout, the profile and the options."""
    options = context.options
    sections = readout(context.archive, facts["file_id"], profile)
    return build(
        Params, profile.reduce.get("frame", {}), where=f"profile {profile.key}.toml [reduce.frame]",
        trimsec=sections.trimsec, gain=sections.gain, read_noise=sections.read_noise,
        saturation=sections.saturation, airmass=mid_airmass(facts, profile), exptime=facts["exptime"],
        overscan=overscan_for(profile, options.overscan, sections.biassec),
        keep_intermediate=options.keep_intermediate,
        cosmics=cosmics.params_for(profile, options), astrometry=astrometry.params_for(profile, options, facts),
        photometry=photometry, dark_exposure=dark_exposure,
    )


def _task(context, facts: dict, chosen: dict, masters: dict[int, Task], solutions: dict[tuple, str],
          anchored: dict[str, str]) -> Task:
    profile = context.profile(facts["instrument"])
    solution = solutions.get((facts["night"], facts["filter"]))
    dark = masters.get(chosen.get("master_dark", (None,))[0])
    params = frame_params(context, profile, facts, photometry=solution is not None,
                          dark_exposure=dark.params.exptime if dark is not None else None)
    needs, failure = {}, None
    for purpose in ("master_bias", "master_dark", "master_flat"):
        if purpose == "master_dark" and purpose not in chosen:
            continue  # no darks with this readout
        group_id, rule = chosen.get(purpose, (None, "not associated"))
        if group_id is None or group_id not in masters:
            failure = f"{facts['filename']}: no {purpose.replace('_', ' ')} ({rule})"
            break
        if masters[group_id].failure:
            failure = f"{facts['filename']}: {masters[group_id].failure}"
            break
        needs[purpose] = masters[group_id].key
    if solution is not None:
        needs["calibration"] = solution
    needs.update(anchored)  # the frames whose WCS it takes when it does not solve
    raw = raw_frame(context.archive, facts["file_id"])
    key = recipe_key(NAME, VERSION, params, [raw.content_hash], needs)
    output = product_path(context.root, facts["night"], NAME, product_name("fzt_", facts["filename"]))
    return Task(NAME, key, output, facts["night"], facts["filter"], params, (raw,),
                header=record.header_of(context.archive, raw.file_id), file_id=facts["file_id"],
                needs=needs, optional=frozenset({"calibration", *astrometry.ANCHOR_ROLES}), failure=failure)


def mid_airmass(facts: dict, profile: Profile) -> float | None:
    """Mid-exposure airmass from the pointing and time; the header's (start) when unknown."""
    # The frame's site, from its header or its profile when read (an archive made before the
    # site was read per frame has only the profile's).
    latitude = facts.get("site_latitude") if facts.get("site_latitude") is not None else profile.site.get("latitude")
    longitude = facts.get("site_longitude") if facts.get("site_longitude") is not None else profile.site.get("longitude")
    try:
        return round(mid_exposure_airmass(float(facts["ra"]), float(facts["dec"]), facts["date_obs"],
                                          float(facts["exptime"] or 0.0), float(latitude), float(longitude)), 5)
    except (KeyError, TypeError, ValueError):
        return facts.get("airmass")


# Making ---------------------------------------------------------------------------------


def make(task: Task, inputs: dict, work) -> Result:
    """Run the frame through every stage, then write it."""
    (raw,) = task.inputs
    frame = Frame(task, task.params, inputs, raw, raw_header(*task.header))
    for module, function in FRAME_STAGES:
        getattr(importlib.import_module(module), function)(frame)
    masters = {role: path for role, path in inputs.items() if role in ("master_bias", "master_dark", "master_flat")}
    frame.ccd.meta = stamp(frame.header, task, frame.history, masters)
    digest, size = write_product(frame.ccd, task.output, frame.planes)
    return Result(task.output, digest, size, pictures(frame.ccd.data, NAME, frame.ccd.mask),
                  airmass=task.params.airmass, exptime=task.params.exptime, **frame.figures)


def trim_and_overscan(frame: Frame) -> None:
    p = frame.params
    frame.ccd, frame.raw_trimmed = prepare(frame.raw, p.trimsec, p.overscan)
    frame.history.append(f"nota: trimmed {p.trimsec}" + (", overscan subtracted" if p.overscan else ""))
    frame.write_intermediate("t_", {})


def subtract_master_bias(frame: Frame) -> None:
    frame.ccd = subtract_bias(frame.ccd, read_master(frame.inputs["master_bias"]))


def subtract_master_dark(frame: Frame) -> None:
    """The dark current and hot pixels: its exposure's master, or a longer one scaled."""
    p = frame.params
    if p.dark_exposure is None:
        return
    dark = read_master(frame.inputs["master_dark"])
    frame.ccd = subtract_dark(frame.ccd, dark, exposure=float(p.exptime or 0.0), dark_exposure=p.dark_exposure)
    scaled = "" if abs(p.dark_exposure - (p.exptime or 0.0)) < 1e-3 else f" scaled from {p.dark_exposure:g} s"
    frame.history.append(f"nota: dark subtracted with {os.path.basename(frame.inputs['master_dark'])}{scaled}")


def attach_noise(frame: Frame) -> None:
    frame.ccd = with_deviation(frame.ccd, frame.params.gain, frame.params.read_noise)


def mask_saturation(frame: Frame) -> None:
    frame.ccd = mask_saturated(frame.ccd, frame.raw_trimmed, frame.params.saturation)
    frame.history.append(f"nota: bias subtracted with {os.path.basename(frame.inputs['master_bias'])}")
    frame.write_intermediate("zt_", {r: frame.inputs[r] for r in ("master_bias", "master_flat")})


def divide_by_master_flat(frame: Frame) -> None:
    flat = read_master(frame.inputs["master_flat"])
    frame.ccd = flat_correct(frame.ccd, flat, min_value=frame.params.flat_min_value)
    frame.history.append(f"nota: flat fielded with {os.path.basename(frame.inputs['master_flat'])}")


current = record.current_products
record_result = record.record_product
