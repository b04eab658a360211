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
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nota.archive import products, provenance
from nota.archive.database import Archive
from nota.pipeline.params import as_dict
from nota.pipeline.plan import Plan, ReduceOptions
from nota.pipeline.products_root import claim
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
    stopped: bool = False  # ``stop`` was set: what was not handed out is left for the next run
    retired: int = 0  # current products the plan no longer calls for, no longer current


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
             scheduler: str | None = None, on_task: Callable[..., None] | None = None,
             stop: Callable[[], bool] | None = None) -> RunReport:
    """Make what the plan says is missing, each task as soon as what it needs exists.

    ``on_task(done, total, task, error)`` follows each task that comes back (``error`` is
    None when it was made). Once ``stop()`` is true (``nota watch`` stopped by a signal) no
    task is handed out: those queued and not started are withdrawn, those running are
    awaited and recorded (whole products), the rest stay unmade and unrecorded for the
    next run to make.
    """
    root = Path(options.products_root)
    claim(archive, root)  # refused before anything is written when another archive owns it
    clean_temporaries(root)
    retired = products.retire_products(archive, _uncalled(archive, plan, options))
    known: dict[str, dict[str, Any]] = {}
    for row in STEPS:
        known.update(step_module(row.name).current(archive))
    for task in plan.tasks:  # to be made again (its file is gone or changed): not known yet
        known.pop(task.key, None)
    run = _Run(archive, RunReport(up_to_date=len(plan.up_to_date), retired=retired), known, list(plan.to_build),
               {t.key: t for t in plan.to_build})
    for task in plan.impossible:
        run.fail(task, task.failure)
    workers = jobs or os.cpu_count() or 1
    runner = runner_for(workers, scheduler)
    total = len(run.pending)
    scratch = root / ".scratch"
    try:
        while run.pending or runner.running:
            if stop is not None and stop():
                _withdraw(run, runner)
                if not runner.running:
                    break
            submitted = _submit_ready(run, runner, options, workers, scratch, stop)
            if not runner.running:
                if not submitted:  # nothing can move any more
                    for task in run.pending:
                        run.fail(task, f"{os.path.basename(task.output)}: could not be scheduled")
                    run.pending = []
                continue
            outcome = runner.next_outcome()
            _finish(run, outcome)
            if on_task:
                on_task(run.done, total, run.tasks[outcome.key], outcome.error)
    finally:
        runner.close()
    return run.report


def _uncalled(archive: Archive, plan: Plan, options: ReduceOptions) -> list[int]:
    """Current products of the steps this run makes that no task of the plan makes (a group
    superseded, a frame's sky flats preferred to its dome flats since, a frame left out), so
    the archive ends as a reduction of its frames made at once would leave it."""
    enabled = {row.name for row in STEPS if row.enabled(options)}
    planned = {task.output for task in plan.tasks + plan.up_to_date}
    return [row["product_id"] for row in products.current_products(archive).values()
            if row["kind"] in enabled and row["path"] not in planned]


def _submit_ready(run: _Run, runner, options: ReduceOptions, workers: int, scratch: Path,
                  stop: Callable[[], bool] | None = None) -> bool:
    """Hand out every task whose needs are met; fail those whose needs can never be."""
    coming = {t.key for t in run.pending} | {t.key for t in runner.running.values()}
    waiting, moved = [], False
    for task in run.pending:
        if stop is not None and stop():  # jobs=1 makes each task as it is handed out
            waiting.append(task)
            continue
        lost = [role for role, key in task.needs.items()
                if key not in run.known and key not in coming and role not in task.optional]
        if lost:
            run.fail(task, f"{os.path.basename(task.output)}: its {', '.join(lost)} could not be made")
            moved = True
        elif not any(key in coming for key in task.needs.values()):
            # Masters are big: a share of the memory budget each, as several combine at once;
            # one handed out while workers are idle (the bias, before anything else can
            # start) combines with their cores too.
            master = task.file_id is None and task.step != "stack"
            memory = options.memory_bytes // workers if master else options.memory_bytes
            threads = max(1, runner.idle_workers()) if master else 1
            inputs = {role: _handed(run.known[key]) for role, key in task.needs.items() if key in run.known}
            run.activities[task.key] = provenance.start_activity(run.archive, task.step, as_dict(task.params))
            runner.submit(task, inputs, Work(memory, scratch, threads))
            moved = True
        else:
            waiting.append(task)
    run.pending = waiting
    return moved


def _withdraw(run: _Run, runner) -> None:
    """Stopping: nothing more is handed out; tasks queued in the pool and not started are
    taken back, their activities closed as interrupted (no file, no product)."""
    run.report.stopped = True
    run.pending = []
    for handle, task in list(runner.running.items()):
        if isinstance(handle, Future) and handle.cancel():
            del runner.running[handle]
            provenance.finish_activity(run.archive, run.activities.pop(task.key), "failed",
                                       "interrupted before it started")


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

