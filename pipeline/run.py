"""Running the plan: each task as soon as what it needs exists, in workers, recorded here.

A task is handed to a worker once the tasks it needs are done (a frame once its night's
masters are; a science frame also once its night's solution in its filter is, or cannot
be; a stack once its exposures are), so no worker waits for a whole stage to end. Its
activity row is made when it is handed out and closed when it comes back; only this
process writes the archive, one transaction per task.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nota.archive import provenance
from nota.archive.database import Archive
from nota.pipeline.params import as_dict
from nota.pipeline.plan import Plan, ReduceOptions
from nota.pipeline.product_files import clean_temporaries
from nota.pipeline.runners import runner_for
from nota.pipeline.settings import STEPS, step_module
from nota.pipeline.tasks import Outcome, Task
from nota.pipeline.worker import Work

log = logging.getLogger(__name__)

__all__ = ["RunReport", "run_plan"]


@dataclass
class RunReport:
    built: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (output or frame, message)
    up_to_date: int = 0
    worker_cpu_seconds: float = 0.0  # CPU the workers spent, wherever they ran
    worker_peak_rss_mb: float = 0.0  # the largest worker's peak memory
    calibrations: list[dict[str, Any]] = field(default_factory=list)  # photometric solutions made


@dataclass
class _Run:
    """The state of one run: what is known (made before or now), what waits, what runs."""

    archive: Archive
    report: RunReport
    known: dict[str, dict[str, Any]]  # recipe key -> how to find what it made
    pending: list[Task]
    tasks: dict[str, Task] = field(default_factory=dict)  # recipe key -> task, of those to build
    activities: dict[str, int] = field(default_factory=dict)  # recipe key -> its running activity
    done: int = 0

    def fail(self, task: Task, message: str, activity_id: int | None = None, trace: str | None = None) -> None:
        """Close the task's activity as failed (making one if it never started)."""
        if activity_id is None:
            activity_id = provenance.start_activity(self.archive, task.step, as_dict(task.params))
        provenance.finish_activity(self.archive, activity_id, "failed",
                                   message + (f"\n{trace}" if trace else ""))
        self.report.failed.append((task.output, message))
        log.warning("%s", message)
        if trace:
            log.info("traceback of %s:\n%s", task.output, trace)
        self.done += 1


def run_plan(archive: Archive, plan: Plan, options: ReduceOptions, *, jobs: int | None = None,
             scheduler: str | None = None, on_task: Callable[[int, int], None] | None = None) -> RunReport:
    """Make what the plan says is missing, each task as soon as what it needs exists."""
    root = Path(options.products_root)
    clean_temporaries(root)
    known: dict[str, dict[str, Any]] = {}
    for row in STEPS:
        known.update(step_module(row.name).current(archive))
    for task in plan.tasks:  # to be made again (its file is gone or changed): not known yet
        known.pop(task.key, None)
    run = _Run(archive, RunReport(up_to_date=len(plan.up_to_date)), known, list(plan.to_build),
               {t.key: t for t in plan.to_build})
    for task in plan.impossible:
        run.fail(task, task.failure)
    workers = jobs or os.cpu_count() or 1
    runner = runner_for(workers, scheduler)
    total = len(run.pending)
    scratch = root / ".scratch"
    try:
        while run.pending or runner.running:
            submitted = _submit_ready(run, runner, options, workers, scratch)
            if not runner.running:
                if not submitted:  # nothing can move any more
                    for task in run.pending:
                        run.fail(task, f"{os.path.basename(task.output)}: could not be scheduled")
                    run.pending = []
                continue
            _finish(run, runner.next_outcome())
            if on_task:
                on_task(run.done, total)
    finally:
        runner.close()
    return run.report


def _submit_ready(run: _Run, runner, options: ReduceOptions, workers: int, scratch: Path) -> bool:
    """Hand out every task whose needs are met; fail those whose needs can never be."""
    coming = {t.key for t in run.pending} | {t.key for t in runner.running.values()}
    waiting, moved = [], False
    for task in run.pending:
        lost = [role for role, key in task.needs.items()
                if key not in run.known and key not in coming and role not in task.optional]
        if lost:
            run.fail(task, f"{os.path.basename(task.output)}: its {', '.join(lost)} could not be made")
            moved = True
        elif not any(key in coming for key in task.needs.values()):
            # Masters are big: a share of the memory budget each, as several combine at once.
            memory = options.memory_bytes if task.file_id is not None or task.step == "stack" \
                else options.memory_bytes // workers
            inputs = {role: _handed(run.known[key]) for role, key in task.needs.items() if key in run.known}
            run.activities[task.key] = provenance.start_activity(run.archive, task.step, as_dict(task.params))
            runner.submit(task, inputs, Work(memory, scratch))
            moved = True
        else:
            waiting.append(task)
    run.pending = waiting
    return moved


def _handed(known: dict[str, Any]) -> Any:
    """What a worker gets for a need: a product's path, or a solution."""
    return known["path"] if "path" in known else known


def _finish(run: _Run, outcome: Outcome) -> None:
    """Record a task that came back: its product or solution, or why it failed."""
    task = run.tasks[outcome.key]
    activity_id = run.activities.pop(task.key)
    run.report.worker_cpu_seconds += outcome.cpu_seconds
    run.report.worker_peak_rss_mb = max(run.report.worker_peak_rss_mb, outcome.peak_rss_mb)
    if outcome.error:
        run.fail(task, outcome.error, activity_id, outcome.traceback)
        return
    module = step_module(task.step)
    needed = {role: run.known[key] for role, key in task.needs.items() if key in run.known}
    with run.archive.transaction():
        run.known[task.key] = module.record_result(run.archive, task, outcome.result, needed, activity_id)
        provenance.finish_activity(run.archive, activity_id, "ok", getattr(outcome.result, "message", None),
                                   host=outcome.host)
    if task.step == "photometric_calibration":
        fit = outcome.result.fit
        run.report.calibrations.append({"night": task.night, "filter": task.filter, "zp": fit.zp, "k": fit.k,
                                        "colour_term": fit.colour_term, "method": fit.method})
    else:
        run.report.built.append({"kind": task.step, "path": task.output, "key": task.key})
    run.done += 1

