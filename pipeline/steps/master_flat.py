"""Master flat: a night's flats of one filter and kind, bias-subtracted, scaled, combined.

Each flat is corrected with its night's master bias (the same association rules as a
science frame's), scaled by 1/its median, median-combined, and normalised to mean 1 so
flat fielding keeps the count level: the lecture's ``Combiner`` with ``scaling``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from nota.archive import association, groups
from nota.archive.frames import frame_facts
from nota.pipeline import record
from nota.pipeline.params import recipe_key
from nota.pipeline.product_files import pictures, raw_header, read_master, stamp, write_product
from nota.pipeline.steps.common import Overscan, fill_stack, group_recipe, product_path, trimmed_shape
from nota.pipeline.tasks import ProductResult, Task
from nota.reduce.combine import FrameStack
from nota.reduce.masters import flat_scales, make_master_flat
from nota.reduce.plots import image_png
from nota.reduce.preview import cmap_for

NAME = "master_flat"
VERSION = 1  # bump when the recipe changes: every master flat becomes stale

__all__ = ["NAME", "VERSION", "Params", "Result", "plan", "make", "current", "record_result"]


@dataclass(frozen=True)
class Params:
    """The recipe: the useful section, the overscan (or none) and the combination."""

    trimsec: str
    overscan: Overscan | None = None
    combine: str = "median"  # flats scaled to a common level first, then combined
    scaling: str = "inverse median"
    dark_exposure: float | None = None  # s of the master dark the flats lose (None: no darks)
    exposures: tuple[float, ...] = ()  # each included flat's, when a dark is scaled to it


Result = ProductResult


def plan(context) -> list[Task]:
    """A master flat per usable, preferred group (night, filter, flat kind), with its bias
    (and its dark, for a camera that takes darks)."""
    masters = {t.group_id: t for step in ("master_bias", "master_dark") for t in context.planned(step)}
    return [_task(context, g, masters) for g in groups.usable_groups(context.archive, NAME)]


def _darks(context, group: dict, masters: dict[int, Task]) -> tuple[dict, str | None, dict]:
    """(the dark's Params fields, why there is none when one is needed, its need)."""
    dark, rule = association.flat_group_dark(context.archive, group["group_id"])
    if rule is None:  # the camera takes no darks
        return {}, None, {}
    if dark is None or dark not in masters or masters[dark].failure:
        return {}, f"no usable master dark for the {group['night']} flats ({group['filter']}): {rule}", {}
    members = [m["file_id"] for m in groups.group_members(context.archive, group["group_id"]) if m["included"]]
    facts = frame_facts(context.archive, members)
    fields = {"dark_exposure": masters[dark].params.exptime,
              "exposures": tuple(float(facts[i]["exptime"] or 0.0) for i in members)}
    return fields, None, {"master_dark": masters[dark].key}


def _task(context, group: dict, masters: dict[int, Task]) -> Task:
    archive = context.archive
    dark_fields, dark_failure, dark_need = _darks(context, group, masters)
    inputs, first, params = group_recipe(context, group, NAME, Params, **dark_fields)
    bias, rule = association.flat_group_bias(archive, group["group_id"])
    needs, failure = dict(dark_need), dark_failure
    if bias is None or bias not in masters:
        failure = f"no usable master bias for the {group['night']} flats ({group['filter']}): {rule}"
    else:
        needs["master_bias"] = masters[bias].key
    key = recipe_key(NAME, VERSION, params, [i.content_hash for i in inputs if i.included], needs)
    name = f"{NAME}_{group['night']}_{group['filter']}_{group['flat_kind']}_{group['binning']}.fits"
    return Task(NAME, key, product_path(context.root, group["night"], NAME, name), group["night"],
                group["filter"], params, inputs, header=record.header_of(archive, first.file_id),
                group_id=group["group_id"], needs=needs, failure=failure)


def make(task: Task, inputs: dict, work) -> Result:
    """Bias-subtract, scale and combine the group's raw flats into the master, and write it."""
    params: Params = task.params
    used = [i for i in task.inputs if i.included]
    bias = read_master(inputs["master_bias"]).data
    dark = read_master(inputs["master_dark"]).data if params.dark_exposure else None
    dark_scales = [t / params.dark_exposure for t in params.exposures] if dark is not None else None
    scales: list[float] = []

    def scale(i, raw, trimmed, offset):
        scales.append(flat_scales(trimmed, bias, offset, None if dark is None else dark * np.float32(dark_scales[i])))

    with FrameStack(len(used), trimmed_shape(params.trimsec), np.uint16, work.memory_bytes, work.scratch) as stack:
        row_offsets = fill_stack(stack.array, used, params.trimsec, params.overscan, on_frame=scale)
        master = make_master_flat(stack.array, bias, scales, combine=params.combine, row_offsets=row_offsets,
                                  memory_bytes=work.memory_bytes // 2, dark=dark, dark_scales=dark_scales,
                                  threads=work.threads)
    history = [f"nota {NAME}: {params.combine} of {len(used)} frames, trimmed {params.trimsec}",
               ("bias- and dark-subtracted" if dark is not None else "bias-subtracted")
               + " flats scaled by 1/median, then normalised to mean 1",
               "frames: " + ", ".join(i.name for i in used)]
    header = raw_header(*task.header)
    header["NCOMBINE"] = (len(used), "frames combined")
    master.meta = stamp(header, task, history, inputs)
    digest, size = write_product(master, task.output)
    plot = ("master", os.path.basename(task.output), image_png(master.data, os.path.basename(task.output), cmap=cmap_for(NAME), mask=master.mask))
    return Result(task.output, digest, size, pictures(master.data, NAME, master.mask), (plot,))


current = record.current_products
record_result = record.record_product
