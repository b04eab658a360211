"""One reduction as ``nota reduce`` runs it: bring the archive up to date, plan, run.

The command, ``nota watch``'s cycles and the notebook API's ``archive.reduce`` all call
this, so the three cannot drift apart: frames not measured are measured and groups whose
inputs changed rebuilt first, then the plan is made and run (no pool or cluster is
started when there is nothing to build; the run still calibrates what standards call for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from nota.archive.database import Archive
from nota.pipeline.plan import Plan, ReduceOptions, plan_reduction
from nota.pipeline.refresh import Refreshed, bring_up_to_date
from nota.pipeline.run import RunReport, run_plan

__all__ = ["Reduction", "reduce_archive"]


@dataclass(frozen=True)
class Reduction:
    """What a reduction did first, what it planned and what its run made (None when stopped first)."""

    refreshed: Refreshed
    plan: Plan | None
    report: RunReport | None


def reduce_archive(archive: Archive, options: ReduceOptions, *, jobs: int | None = None,
                   scheduler: str | None = None, on_frame: Callable[..., None] | None = None,
                   on_task: Callable[..., None] | None = None,
                   stop: Callable[[], bool] | None = None) -> Reduction:
    """Measure and regroup what needs it, then make what is missing or stale."""
    refreshed = bring_up_to_date(archive, jobs=jobs, on_frame=on_frame)
    if stop is not None and stop():
        return Reduction(refreshed, None, None)
    plan = plan_reduction(archive, options)
    nothing = not plan.tasks
    report = run_plan(archive, plan, options, jobs=1 if nothing else jobs, scheduler=None if nothing else scheduler,
                      on_task=on_task, stop=stop)
    return Reduction(refreshed, plan, report)
