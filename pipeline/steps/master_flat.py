"""Master flat: a night's flats of one filter and kind, bias-subtracted, scaled, combined.

Each flat is corrected with its night's master bias (the same association rules as a
science frame's), scaled by 1/its median, median-combined, and normalised to mean 1 so
flat fielding keeps the count level: the lecture's ``Combiner`` with ``scaling``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from nota.archive import groups
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


Result = ProductResult


def plan(context) -> list[Task]:
    """A master flat per usable, preferred group (night, filter, flat kind), with its bias."""
    biases = {t.group_id: t for t in context.planned("master_bias")}
    return [_task(context, g, biases) for g in groups.usable_groups(context.archive, NAME)]


def _task(context, group: dict, biases: dict[int, Task]) -> Task:
    archive = context.archive
    inputs, first, params = group_recipe(context, group, NAME, Params)
    bias = groups.bias_group_for_flats(archive, group)
    needs, failure = {}, None
    if bias is None or bias not in biases:
        failure = f"no usable master bias for the {group['night']} flats ({group['filter']})"
    else:
        needs["master_bias"] = biases[bias].key
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
    scales: list[float] = []
    with FrameStack(len(used), trimmed_shape(params.trimsec), np.uint16, work.memory_bytes, work.scratch) as stack:
        row_offsets = fill_stack(stack.array, used, params.trimsec, params.overscan,
                                 on_frame=lambda i, raw, trimmed, offset: scales.append(flat_scales(trimmed, bias, offset)))
        master = make_master_flat(stack.array, bias, scales, combine=params.combine, row_offsets=row_offsets,
                                  memory_bytes=work.memory_bytes // 2)
    history = [f"nota {NAME}: {params.combine} of {len(used)} frames, trimmed {params.trimsec}",
               "bias-subtracted flats scaled by 1/median, then normalised to mean 1",
               "frames: " + ", ".join(i.name for i in used)]
    header = raw_header(*task.header)
    header["NCOMBINE"] = (len(used), "frames combined")
    master.meta = stamp(header, task, history, inputs)
    digest, size = write_product(master, task.output)
    plot = ("master", os.path.basename(task.output), image_png(master.data, os.path.basename(task.output), cmap=cmap_for(NAME), mask=master.mask))
    return Result(task.output, digest, size, pictures(master.data, NAME, master.mask), (plot,))


current = record.current_products
record_result = record.record_product
