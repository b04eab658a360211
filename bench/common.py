"""What every benchmark needs: memory and CPU of a process and its children, and a way to
run each contender in a process of its own so their peaks do not mix."""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def peak_rss_mb() -> float:
    """The larger of this process's and its (waited-for) children's peak memory."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def own_peak_rss_mb() -> float:
    """This process's peak memory alone."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def own_cpu_seconds() -> float:
    """CPU time of this process alone."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_child(script: str, *args: str) -> dict:
    """Run ``script --child ...`` in a fresh interpreter; its last stdout line is JSON."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit(f"{script} {' '.join(args)} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])
