"""Making one task: what a worker does, wherever it runs. No database here.

``execute`` calls the step's ``make`` and never raises: nota's own errors (a bad frame, a
solution that cannot be fitted) come back as one line; anything else is a bug and comes
back with its traceback, which the coordinator keeps on the task's activity.
"""

from __future__ import annotations

import platform
import resource
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nota.errors import NotaError
from nota.pipeline.settings import step_module
from nota.pipeline.tasks import Outcome, Task

__all__ = ["Work", "execute"]


@dataclass(frozen=True)
class Work:
    """What a worker may spend on a task: memory for combining, a scratch directory, and
    threads for combining (more than one when the task runs alone on cores left idle)."""

    memory_bytes: int
    scratch: Path
    threads: int = 1


def execute(task: Task, inputs: dict[str, Any], work: Work) -> Outcome:
    """Make one task (in whatever process or cluster worker runs this)."""
    cpu = time.process_time()
    error = trace = result = None
    try:
        result = step_module(task.step).make(task, inputs, work)
    except (NotaError, OSError) as exc:  # one frame's failure must not stop the night
        error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a bug: the traceback goes on the activity
        error, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
    return Outcome(task.key, result, error, trace, host=platform.node(), cpu_seconds=time.process_time() - cpu,
                   peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
