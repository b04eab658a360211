"""``nota groups``: build the calibration groups, associate every frame to its masters, plot.

The archive builds the groups (``nota.archive.groups``) and the associations
(``nota.archive.association``) from the selections, flags, overrides and pins it holds;
this step runs them as one activity, in one transaction, and draws each flat group's
illumination patterns side by side (a rotated filter stands out) for the catalogue.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field

import numpy as np

from nota.archive import provenance
from nota.archive.association import associate
from nota.archive.database import Archive
from nota.archive.groups import grouping_inputs, flat_pattern_members, rebuild_groups
from nota.archive.plots import drawn_from, keep_only, write_plot
from nota.archive.selections import sync_shipped_selections

log = logging.getLogger(__name__)

__all__ = ["GroupReport", "build_groups"]


@dataclass
class GroupReport:
    """What one grouping did: groups built (and the unusable ones), frames associated."""

    activity_id: int
    groups: int = 0
    unusable: list[str] = field(default_factory=list)
    associated: int = 0
    uncalibratable: list[str] = field(default_factory=list)


def build_groups(archive: Archive) -> GroupReport:
    """Rebuild every calibration group and association from selections, flags and overrides."""
    sync_shipped_selections(archive)
    activity_id = provenance.start_activity(archive, "groups", {"inputs": grouping_inputs(archive)})
    report = GroupReport(activity_id)
    try:
        with archive.transaction():
            built = rebuild_groups(archive, activity_id)
            report.groups, report.unusable = built.groups, list(built.unusable)
            associated = associate(archive)
            report.associated, report.uncalibratable = associated.frames, list(associated.uncalibratable)
            _plot_flat_patterns(archive)
            provenance.finish_activity(
                archive, activity_id, "ok",
                f"{report.groups} groups ({len(report.unusable)} unusable), {report.associated} frames associated",
            )
    except BaseException:
        provenance.finish_activity(archive, activity_id, "failed", "interrupted or failed")
        raise
    return report


def _plot_flat_patterns(archive: Archive) -> None:
    """Each flat group's illumination patterns side by side: a rotated filter stands out.

    A group whose members, patterns and choices are those its plot was drawn from keeps
    it: a year's archive regroups after every ingest, and redrawing hundreds of plots
    each time would be most of the work.
    """
    from nota.reduce.plots import flat_patterns_png

    drawn = drawn_from(archive, "flat_patterns")
    todo, keep = [], set()
    for group_id, key, night, members in flat_pattern_members(archive):
        digest = hashlib.sha256(json.dumps([key, members]).encode()).hexdigest()[:24]
        if drawn.get(group_id) == digest:
            keep.add(group_id)
        else:
            todo.append((group_id, key, night, members, digest))
    keep_only(archive, "flat_patterns", keep)
    for group_id, key, night, members, digest in todo:
        patterns = [(name, np.array(json.loads(p)), included) for name, p, included in members]
        shapes = {p.shape for _, p, _ in patterns}
        if not patterns or len(shapes) != 1:
            continue
        included = [p for _, p, inc in patterns if inc]
        reference = np.median(included, axis=0) if included else None
        write_plot(archive, "flat_patterns", f"Illumination patterns of {key}",
                   flat_patterns_png(patterns, reference), night=night, group_id=group_id, digest=digest)
