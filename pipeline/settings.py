"""The pipeline as data: its steps in order, what each waits for, what each frame goes through.

Modelled on banzai's ``settings.py``. ``STEPS`` is the order steps are planned in (each
plans from the archive and the tasks planned before it); the run starts a task as soon as
the tasks it needs are done, whatever their row. ``FRAME_STAGES`` is what the
``reduced`` step does to each frame, in order, in one pass (read once, written once).

Adding a step is one module under ``nota/pipeline/steps/`` (its ``NAME``, ``VERSION``,
``Params``, ``Result``, ``plan``, ``make``, ``current`` and ``record``) and one row here;
a stage of the frame is one function and one entry in ``FRAME_STAGES``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

__all__ = ["Step", "STEPS", "FRAME_STAGES", "PROFILE_TABLES", "step_module"]


def _always(options: Any) -> bool:
    return True


@dataclass(frozen=True)
class Step:
    """One row of the step table."""

    name: str  # the step's NAME: the product kind, the activity's step
    module: str  # where its Params, plan, make and record live
    needs: tuple[str, ...]  # roles of what its tasks wait for ('?': goes on without it)
    enabled: Callable[[Any], bool] = _always  # on for these ReduceOptions


STEPS: tuple[Step, ...] = (
    Step("master_bias", "nota.pipeline.steps.master_bias", needs=()),
    Step("master_dark", "nota.pipeline.steps.master_dark", needs=("master_bias",)),
    Step("master_flat", "nota.pipeline.steps.master_flat", needs=("master_bias", "master_dark?")),
    Step("reduced", "nota.pipeline.steps.reduce_frame", needs=("master_bias", "master_dark?", "master_flat",
                                                                "calibration?")),
    Step("photometric_calibration", "nota.pipeline.steps.photometric_calibration", needs=("standard?",),
         enabled=lambda options: options.photometry),
    Step("stack", "nota.pipeline.steps.stack", needs=("exposure", "calibration?"),
         enabled=lambda options: options.stacks),
)

# What a standard or science frame goes through in the ``reduced`` step, in order: the
# lecture's chain, then what the night's products add to it. Each is a function
# ``stage(frame) -> None`` of ``nota.pipeline.steps.reduce_frame``'s ``Frame``, found by
# name in the module given.
FRAME_STAGES: tuple[tuple[str, str], ...] = (
    ("nota.pipeline.steps.reduce_frame", "trim_and_overscan"),
    ("nota.pipeline.steps.reduce_frame", "subtract_master_bias"),
    ("nota.pipeline.steps.reduce_frame", "attach_noise"),  # Poisson noise of the dark current too
    ("nota.pipeline.steps.reduce_frame", "mask_saturation"),
    ("nota.pipeline.steps.reduce_frame", "subtract_master_dark"),
    ("nota.pipeline.steps.reduce_frame", "divide_by_master_flat"),
    ("nota.pipeline.steps.cosmics", "clean_cosmic_rays"),
    ("nota.pipeline.steps.astrometry", "solve_wcs"),
    ("nota.pipeline.steps.photometric_calibration", "stamp_photzp"),
)

# The tables of a profile's [reduce]: each one step's (or stage's) parameters.
PROFILE_TABLES = ("master_bias", "master_dark", "master_flat", "frame", "overscan", "cosmics", "stack")

_BY_NAME = {row.name: row for row in STEPS}


def step_module(name: str) -> ModuleType:
    """The module of a step, by its NAME (imported on first use: the CLI starts quick)."""
    return importlib.import_module(_BY_NAME[name].module)
