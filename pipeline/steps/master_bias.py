"""Master bias: a night's biases of one readout, combined as the lecture does.

Values above ``clip_max`` are cosmic-ray hits, rejected before the median (the lecture's
``minmax_clipping(max_clip=800)``). One master per usable calibration group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from nota.archive import groups
from nota.pipeline import record
from nota.pipeline.params import recipe_key
from nota.pipeline.product_files import pictures, raw_header, stamp, write_product
from nota.pipeline.steps.common import CombineParams, fill_stack, group_recipe, product_path, trimmed_shape
from nota.pipeline.tasks import ProductResult, Task
from nota.reduce.combine import FrameStack
from nota.reduce.masters import make_master_bias
from nota.reduce.plots import bias_histograms_png, image_png
from nota.reduce.preview import cmap_for

NAME = "master_bias"
VERSION = 1  # bump when the recipe changes: every master bias becomes stale

__all__ = ["NAME", "VERSION", "Params", "Result", "plan", "make", "current", "record_result"]


@dataclass(frozen=True)
class Params(CombineParams):
    """The recipe: the useful section, the overscan (or none), the clip and the combination."""


Result = ProductResult


def plan(context) -> list[Task]:
    """A master bias per usable group (master_bias groups: night and readout)."""
    return [_task(context, g) for g in groups.usable_groups(context.archive, NAME)]


def _task(context, group: dict) -> Task:
    archive = context.archive
    inputs, first, params = group_recipe(context, group, NAME, Params)
    key = recipe_key(NAME, VERSION, params, [i.content_hash for i in inputs if i.included], {})
    name = f"{NAME}_{group['night']}_{group['binning']}.fits"
    return Task(NAME, key, product_path(context.root, group["night"], NAME, name), group["night"], None,
                params, inputs, header=record.header_of(archive, first.file_id), group_id=group["group_id"])


def make(task: Task, inputs: dict, work) -> Result:
    """Combine the group's raw biases into the master (in bounded memory) and write it."""
    params: Params = task.params
    used = [i for i in task.inputs if i.included]
    samples = []  # a view of each bias for its histogram
    with FrameStack(len(used), trimmed_shape(params.trimsec), np.uint16, work.memory_bytes, work.scratch) as stack:
        row_offsets = fill_stack(stack.array, used, params.trimsec, params.overscan,
                                 on_frame=lambda i, raw, trimmed, _: samples.append((raw.name, np.array(trimmed[::4, ::4]))))
        master = make_master_bias(stack.array, combine=params.combine, clip_max=params.clip_max,
                                  row_offsets=row_offsets, memory_bytes=work.memory_bytes // 2,
                                  threads=work.threads)
    history = [f"nota {NAME}: {params.combine} of {len(used)} frames, trimmed {params.trimsec}",
               f"values above {params.clip_max} ADU rejected before combining",
               "frames: " + ", ".join(i.name for i in used)]
    header = raw_header(*task.header)
    header["NCOMBINE"] = (len(used), "frames combined")
    master.meta = stamp(header, task, history, {})
    digest, size = write_product(master, task.output)
    name = os.path.basename(task.output)
    plots = (("master", name, image_png(master.data, name, cmap=cmap_for(NAME), mask=master.mask)),
             ("bias_histograms", f"Bias frames combined into {name}", bias_histograms_png(samples)))
    return Result(task.output, digest, size, pictures(master.data, NAME, master.mask), plots)


current = record.current_products
record_result = record.record_product
