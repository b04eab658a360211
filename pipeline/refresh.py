"""Before a reduction: what it depends on, brought up to date (``nota reduce`` after ``nota ingest``).

Frames ingested since the last ``nota qc`` are measured (and the archive flagged again);
groups and associations are rebuilt when what they are built from changed since the last
grouping: frames, flags, overrides, pins, selections or profiles. So a newcomer's path is
``nota ingest N1/ && nota reduce``; ``nota qc`` and ``nota groups`` stay for looking first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from nota.archive.database import Archive
from nota.archive.groups import grouping_inputs, last_grouping_inputs
from nota.archive.qc import frames_to_measure
from nota.archive.selections import sync_shipped_selections
from nota.pipeline.groups import GroupReport, build_groups
from nota.pipeline.qc import QcReport, run_qc

__all__ = ["Refreshed", "bring_up_to_date", "what_is_out_of_date"]


@dataclass
class Refreshed:
    """What had to be done first: frames measured (and failed), groups rebuilt."""

    qc: QcReport | None = None
    groups: GroupReport | None = None
    messages: list[str] = field(default_factory=list)


def bring_up_to_date(archive: Archive, *, jobs: int | None = None,
                     on_frame: Callable[[int, int], None] | None = None) -> Refreshed:
    """Measure the frames not measured yet and regroup when the groups' inputs changed."""
    done = Refreshed()
    if frames_to_measure(archive):
        done.qc = run_qc(archive, jobs=jobs, on_frame=on_frame)
        done.messages.append(f"qc: {done.qc.measured} frame(s) measured")
        done.messages += [f"qc failed {failure}" for failure in done.qc.failed]
    sync_shipped_selections(archive)
    if grouping_inputs(archive) != last_grouping_inputs(archive):
        done.groups = build_groups(archive)
        done.messages.append(f"groups: {done.groups.groups} rebuilt, {done.groups.associated} frame(s) associated")
    return done


def what_is_out_of_date(archive: Archive) -> list[str]:
    """What ``bring_up_to_date`` would do first, said without doing it (for ``--dry-run``)."""
    said = []
    waiting = len(frames_to_measure(archive))
    if waiting:
        said.append(f"{waiting} frame(s) not measured yet (`nota qc`)")
    if grouping_inputs(archive) != last_grouping_inputs(archive):
        said.append("the calibration groups are out of date (`nota groups`)")
    return said
