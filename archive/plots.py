"""Plots in the archive: PNGs a person would rather look at than read, by subject.

A step that draws plots (``nota qc``'s night statistics, ``nota groups``' flat patterns)
replaces its subject's plots as a whole each time it runs; the catalogue shows them.
Drawing them is the pipeline's (with ``reduce/plots.py``); storing them is here.
"""

from __future__ import annotations

import logging

from nota.archive.database import Archive
from nota.archive.provenance import utc_now

log = logging.getLogger(__name__)

__all__ = ["delete_plots", "write_plot", "drawn_from", "keep_only"]


def delete_plots(archive: Archive, subject: str) -> None:
    """Remove every plot of a subject (before it is drawn again)."""
    archive.conn.execute("DELETE FROM plots WHERE subject = ?", (subject,))


def write_plot(archive: Archive, subject: str, title: str, png: bytes, *, night: str | None = None,
               group_id: int | None = None, product_id: int | None = None,
               calibration_id: int | None = None, made_at: str | None = None,
               digest: str | None = None) -> int:
    """Store one plot (``digest``: of what it was drawn from); returns its plot_id."""
    cursor = archive.conn.execute(
        "INSERT INTO plots (subject, title, night, group_id, product_id, calibration_id, png, made_at, drawn_from)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (subject, title, night, group_id, product_id, calibration_id, png, made_at or utc_now(), digest),
    )
    return int(cursor.lastrowid)


def drawn_from(archive: Archive, subject: str) -> dict[int, str | None]:
    """Each group's plot of a subject, by group_id: the digest it was drawn from."""
    return dict(archive.conn.execute("SELECT group_id, drawn_from FROM plots WHERE subject = ?"
                                     " AND group_id IS NOT NULL", (subject,)).fetchall())


def keep_only(archive: Archive, subject: str, group_ids: set[int]) -> None:
    """Remove a subject's plots of every group but these (to be drawn again, or gone)."""
    marks = ",".join("?" * len(group_ids))
    archive.conn.execute(f"DELETE FROM plots WHERE subject = ? AND (group_id IS NULL OR group_id NOT IN ({marks}))",
                         (subject, *group_ids))
