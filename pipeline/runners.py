"""Where tasks run: local worker processes (or this process), or a Dask cluster.

Either way results come back to the coordinator, the only process that writes the archive.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from nota.errors import NotaError
from nota.parallel import start_worker
from nota.pipeline.tasks import Outcome, Task
from nota.pipeline.worker import Work, execute

__all__ = ["Local", "Dask", "runner_for"]


def _openmp_loaded() -> bool:
    """Whether an OpenMP runtime is in this process (astroscrappy's, once a frame was cleaned
    here, as a notebook may): its thread pool does not survive a fork, and ``threading`` does
    not see it. (OpenBLAS's pool, there from numpy's import, does.)"""
    from threadpoolctl import threadpool_info

    return any(library.get("user_api") == "openmp" for library in threadpool_info())


def _worker_context():
    """How worker processes start: forked from this process when it runs no other thread
    (instant: nota is already imported), else from a fork server that imports nota once
    (a thread holding a lock at the fork, such as a progress bar's, or an OpenMP pool,
    would leave it held in the child: a forked worker hung in its first L.A.Cosmic).
    Either way no database handle is used by a worker."""
    if threading.active_count() == 1 and not _openmp_loaded():
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["nota.pipeline.worker", "nota.pipeline.steps.reduce_frame"])
    return context


class Local:
    """Runs tasks in local worker processes (or in this process for jobs=1)."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.pool = None
        self.running: dict[Any, Task] = {}
        self._finished: list[Outcome] = []  # jobs=1: outcomes of tasks run as they were submitted
        self._count = itertools.count()
        if jobs > 1:
            self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=_worker_context(),
                                            initializer=start_worker)

    def submit(self, task: Task, inputs: dict[str, Any], work: Work) -> None:
        if self.pool is None:
            self._finished.append(execute(task, inputs, work))
            self.running[next(self._count)] = task
        else:
            self.running[self.pool.submit(execute, task, inputs, work)] = task

    def idle_workers(self) -> int:
        """Worker processes with nothing to do now (a task handed out may use their cores)."""
        return max(0, self.jobs - len(self.running)) if self.pool is not None else 0

    def next_outcome(self) -> Outcome:
        """The outcome of a task that finished (waits for the first to finish)."""
        if self.pool is None:
            self.running.pop(next(iter(self.running)))
            return self._finished.pop(0)
        finished, _ = wait(self.running, return_when=FIRST_COMPLETED)
        future = next(iter(finished))
        del self.running[future]
        return future.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


class Dask:
    """Runs tasks on a Dask distributed cluster; outcomes come back here to be recorded."""

    def __init__(self, scheduler: str):
        try:
            from distributed import Client, LocalCluster, as_completed
        except ImportError as exc:  # pragma: no cover - distributed is a dependency
            raise NotaError("the Dask scheduler needs the 'distributed' package") from exc
        if scheduler == "local":
            self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=None)
            self.client = Client(self.cluster)
        else:
            self.cluster = None
            self.client = Client(scheduler)
        self.running: dict[Any, Task] = {}
        self._completed = as_completed()

    def idle_workers(self) -> int:
        """Always 0: a cluster's workers are not this machine's cores to lend."""
        return 0

    def submit(self, task: Task, inputs: dict[str, Any], work: Work) -> None:
        future = self.client.submit(execute, task, inputs, work, pure=False)
        self.running[future] = task
        self._completed.add(future)

    def next_outcome(self) -> Outcome:
        future = next(self._completed)
        del self.running[future]
        return future.result()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def runner_for(jobs: int, scheduler: str | None) -> Local | Dask:
    return Dask(scheduler) if scheduler else Local(jobs)
