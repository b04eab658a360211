"""Running one function over many files in worker processes, results in order.

Ingest and quality control read many files and touch no database in their workers, so a
process pool pays off once there are enough files; below that, the work stays in this
process. Workers are forked: they inherit the loaded modules and profiles. Each worker (and
the work when it stays here) keeps numpy's BLAS to one thread: the pool already fills the
cores, and BLAS threads on top of it fight over them (a 65536-long dot product takes 7 ms
instead of 30 us on two busy cores).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator, TypeVar

from threadpoolctl import threadpool_limits

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["map_in_processes"]


def map_in_processes(
    function: Callable[[T], R],
    items: list[T],
    *,
    jobs: int | None = None,
    parallel_from: int = 8,
    chunksize: int = 1,
) -> Iterator[R]:
    """``map(function, items)`` in ``jobs`` processes (default: the cores) when worth it."""
    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(items) < parallel_from:
        with threadpool_limits(limits=1, user_api="blas"):
            yield from map(function, items)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_one_blas_thread) as pool:
        yield from pool.map(function, items, chunksize=chunksize)


def _one_blas_thread() -> None:
    threadpool_limits(limits=1, user_api="blas")
