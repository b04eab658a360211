"""Master dark: a night's darks of one exposure and temperature, bias-subtracted, combined.

Each dark is corrected with its master bias (chosen as a frame's is) and the darks are
median-combined as the biases are, keeping their scatter as the noise: the dark current
and hot pixels of that exposure, which frames of the same exposure subtract as they are
and shorter ones scaled (``nota.pipeline.steps.reduce_frame``'s ``subtract_master_dark``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from nota.archive import association, groups
from nota.pipeline import record
from nota.pipeline.params import recipe_key
from nota.pipeline.product_files import pictures, raw_header, read_master, stamp, write_product
from nota.pipeline.steps.common import CombineParams, fill_stack, group_recipe, product_path, trimmed_shape
from nota.pipeline.tasks import ProductResult, Task
from nota.reduce.combine import FrameStack
from nota.reduce.masters import make_master_dark
from nota.reduce.plots import image_png
from nota.reduce.preview import cmap_for

NAME = "master_dark"
VERSION = 1  # bump when the recipe changes: every master dark becomes stale

__all__ = ["NAME", "VERSION", "Params", "Result", "plan", "make", "current", "record_result"]


@dataclass(frozen=True)
class Params(CombineParams):
    """The recipe (the biases'), and the exposure frames scale the master by."""

    exptime: float = 0.0  # s (set from the group)


Result = ProductResult


def plan(context) -> list[Task]:
    """A master dark per usable group (night, exposure, temperature, readout), with its bias."""
    biases = {t.group_id: t for t in context.planned("master_bias")}
    return [_task(context, g, biases) for g in groups.usable_groups(context.archive, NAME)]


def _task(context, group: dict, biases: dict[int, Task]) -> Task:
    archive = context.archive
    inputs, first, params = group_recipe(context, group, NAME, Params, exptime=float(group["exptime"] or 0.0))
    bias, rule = association.flat_group_bias(archive, group["group_id"])
    needs, failure = {}, None
    if bias is None or bias not in biases:
        failure = f"no usable master bias for the {group['night']} darks ({group['exptime']:g} s): {rule}"
    else:
        needs["master_bias"] = biases[bias].key
    key = recipe_key(NAME, VERSION, params, [i.content_hash for i in inputs if i.included], needs)
    name = group["group_key"].replace("/", "_").replace("+", "p") + ".fits"
    return Task(NAME, key, product_path(context.root, group["night"], NAME, name), group["night"], None,
                params, inputs, header=record.header_of(archive, first.file_id), group_id=group["group_id"],
                needs=needs, failure=failure)


def make(task: Task, inputs: dict, work) -> Result:
    """Bias-subtract and combine the group's raw darks into the master, and write it."""
    params: Params = task.params
    used = [i for i in task.inputs if i.included]
    bias = read_master(inputs["master_bias"]).data
    with FrameStack(len(used), trimmed_shape(params.trimsec), np.uint16, work.memory_bytes, work.scratch) as stack:
        row_offsets = fill_stack(stack.array, used, params.trimsec, params.overscan)
        master = make_master_dark(stack.array, bias, combine=params.combine, clip_max=params.clip_max,
                                  row_offsets=row_offsets, memory_bytes=work.memory_bytes // 2,
                                  threads=work.threads)
    history = [f"nota {NAME}: {params.combine} of {len(used)} bias-subtracted {params.exptime:g} s darks,"
               f" trimmed {params.trimsec}", "frames: " + ", ".join(i.name for i in used)]
    header = raw_header(*task.header)
    header["NCOMBINE"] = (len(used), "frames combined")
    master.meta = stamp(header, task, history, inputs)
    digest, size = write_product(master, task.output)
    name = os.path.basename(task.output)
    plot = ("master", name, image_png(master.data, name, cmap=cmap_for(NAME), mask=master.mask))
    return Result(task.output, digest, size, pictures(master.data, NAME, master.mask), (plot,),
                  exptime=params.exptime)


current = record.current_products
record_result = record.record_product
