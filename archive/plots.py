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

__all__ = ["delete_plots", "write_plot"]


def delete_plots(archive: Archive, subject: str) -> None:
    """Remove every plot of a subject (before it is drawn again)."""
    archive.conn.execute("DELETE FROM plots WHERE subject = ?", (subject,))


def write_plot(archive: Archive, subject: str, title: str, png: bytes, *, night: str | None = None,
               group_id: int | None = None, product_id: int | None = None,
               calibration_id: int | None = None, made_at: str | None = None) -> int:
    """Store one plot; returns its plot_id."""
    cursor = archive.conn.execute(
        "INSERT INTO plots (subject, title, night, group_id, product_id, calibration_id, png, made_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (subject, title, night, group_id, product_id, calibration_id, png, made_at or utc_now()),
    )
    return int(cursor.lastrowid)
