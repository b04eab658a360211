"""``nota qc``: measure every frame once, then flag what should not be combined.

The run: the archive says which frames have no figures for their current content; each
gets a ``measure`` job (where its pixels are, its sections and the profile's limits, all
from the archive and the profile, looked up once); workers measure them in processes; the
night's statistics are drawn; then the figures, previews, flags and plots are written in
one transaction with the activity's end, so a run stopped half-way leaves no half record.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from nota.archive import provenance
from nota.archive import qc as qc_rows
from nota.archive.database import Archive
from nota.archive.frames import raw_frames, readouts
from nota.archive.plots import delete_plots, write_plot
from nota.instruments import profile_if_any
from nota.parallel import map_in_processes
from nota.pipeline.steps import measure

log = logging.getLogger(__name__)

__all__ = ["QcReport", "run_qc"]


@dataclass
class QcReport:
    """What one qc run did: frames measured, skipped (measured before), failed; flags raised."""

    activity_id: int
    measured: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    flags: Counter = field(default_factory=Counter)


def _jobs(archive: Archive) -> list[measure.Job]:
    """A job for every frame to measure, in path order."""
    todo = qc_rows.frames_to_measure(archive)
    ids = [t["file_id"] for t in todo]
    profiles = {t["file_id"]: profile_if_any(t["instrument"]) for t in todo}  # None: measured whole, nota's defaults
    frames = raw_frames(archive, ids)
    sections = readouts(archive, ids, profiles.get)
    jobs = []
    for t in todo:
        profile, readout = profiles[t["file_id"]], sections.get(t["file_id"])
        settings: dict[str, Any] = {}
        if profile is not None and readout is not None:
            settings = {"section": readout.trimsec, "overscan": readout.biassec,
                        "saturation": readout.saturation,
                        "flat_star_sigma": qc_rows.qc_thresholds(profile).flat_star_sigma}
        where = f"qc of file {t['file_id']}"
        jobs.append(measure.Job(frames[t["file_id"]], t["kind"], measure.make_params(settings, where)))
    return jobs


def _measure_all(jobs: list[measure.Job], n_jobs: int | None) -> Iterator[measure.Result | measure.Failure]:
    return map_in_processes(measure.run, jobs, jobs=n_jobs, parallel_from=8, chunksize=2)


def run_qc(
    archive: Archive,
    *,
    jobs: int | None = None,
    on_frame: Callable[[int, int], None] | None = None,
) -> QcReport:
    """Measure every frame not yet measured (or changed since), then re-flag the archive."""
    todo = _jobs(archive)
    activity_id = provenance.start_activity(archive, "qc", {"frames": len(todo), "jobs": jobs})
    report = QcReport(activity_id)
    report.skipped = qc_rows.measured_count(archive)
    now = provenance.utc_now()
    try:
        results = []
        for n, result in enumerate(_measure_all(todo, jobs), 1):
            if isinstance(result, measure.Failure):
                report.failed.append(result.error)
            else:
                results.append(result)
            if on_frame:
                on_frame(n, len(todo))
        with archive.transaction():
            report.measured = qc_rows.write_measurements(archive, activity_id, results, now)
            report.flags = qc_rows.flag_frames(archive, activity_id)
            _plot_nights(archive, now)
            status = "partial" if report.failed else "ok"
            provenance.finish_activity(
                archive, activity_id, status, f"{len(results)} measured, {len(report.failed)} failed"
            )
    except BaseException:
        provenance.finish_activity(archive, activity_id, "failed", "interrupted")
        raise
    return report


def _plot_nights(archive: Archive, now: str) -> None:
    """The night's statistics against time, one plot per night, remade with the figures."""
    from nota.reduce.plots import night_statistics_png

    nights = qc_rows.night_statistics_rows(archive)
    delete_plots(archive, "night_statistics")
    for night, rows in nights.items():
        write_plot(archive, "night_statistics", f"Median counts through the night of {night}",
                   night_statistics_png(rows), night=night, made_at=now)
