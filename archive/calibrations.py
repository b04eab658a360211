"""Photometric solutions in the archive: one current row per night and filter.

``record_solution`` writes a fit with every standard measured (used, rejected, or why it
could not be measured), its plot and what its activity used; ``current_solutions`` is
what science frames are calibrated with; ``list_calibrations`` is ``nota calibration``.
"""

from __future__ import annotations

from typing import Any, Iterable

from nota.archive import provenance
from nota.archive.database import Archive

__all__ = ["SOLUTION_COLUMNS", "record_solution", "current_solutions", "solution_for", "list_calibrations"]

SOLUTION_COLUMNS = ("calibration_id", "night", "filter", "zp", "zp_err", "k", "k_err", "cov_zp_k",
                    "colour_term", "colour_term_err", "colour_index", "rms", "n_used", "n_rejected",
                    "airmass_min", "airmass_max", "method")


def record_solution(archive: Archive, solution: dict[str, Any], measurements: Iterable[dict[str, Any]],
                    plot: tuple[str, bytes], activity_id: int) -> int:
    """Make ``solution`` (a calibrations row) the current one of its night and filter, with its
    standards' measurements (``standard_measurements`` rows, ``product_id`` set) and plot."""
    now = provenance.utc_now()
    with archive.transaction() as conn:
        conn.execute("UPDATE calibrations SET current = 0 WHERE night = ? AND filter = ?",
                     (solution["night"], solution["filter"]))
        calibration_id = archive.insert("calibrations", {**solution, "magnitude_system": "AB",
                                                         "activity_id": activity_id, "current": 1,
                                                         "created_at": now})
        for m in measurements:
            archive.insert("standard_measurements", {**m, "calibration_id": calibration_id})
            provenance.record_used(archive, activity_id, "standard", product_id=m["product_id"])
        conn.execute(
            "INSERT INTO plots (subject, title, night, calibration_id, png, made_at) VALUES (?, ?, ?, ?, ?, ?)",
            ("photometric_calibration", plot[0], solution["night"], calibration_id, plot[1], now),
        )
    return calibration_id


def current_solutions(archive: Archive) -> dict[str, dict[str, Any]]:
    """Current solutions by recipe key."""
    rows = archive.dicts(f"SELECT recipe_key, {', '.join(SOLUTION_COLUMNS)} FROM calibrations WHERE current = 1")
    return {r.pop("recipe_key"): r for r in rows}


def solution_for(archive: Archive, night: str | None, filt: str | None) -> dict[str, Any] | None:
    """The current solution of a night and filter, if any."""
    return archive.one(f"SELECT {', '.join(SOLUTION_COLUMNS)} FROM calibrations"
                       " WHERE current = 1 AND night = ? AND filter = ?", (night, filt))


def list_calibrations(archive: Archive, night: str | None = None) -> list[dict[str, Any]]:
    """Each night's current solution per filter (colour term null when not fitted, the method
    says why), with the standards used, for scripts."""
    found = archive.dicts(
        "SELECT calibration_id AS id, night, filter, magnitude_system, zp, zp_err, k, k_err, colour_term,"
        " colour_term_err, colour_index, rms, n_used, n_rejected, airmass_min, airmass_max, method"
        " FROM calibrations WHERE current = 1 AND (:night IS NULL OR night = :night) ORDER BY night, filter",
        {"night": night},
    )
    for c in found:
        used = archive.run(
            "SELECT s.star, f.name FROM standard_measurements s JOIN products p USING (product_id)"
            " JOIN files f ON f.file_id = p.file_id WHERE s.calibration_id = ? AND s.used = 1 ORDER BY f.name",
            (c["id"],),
        )[1]
        c["stars_used"] = [{"star": star, "frame": frame} for star, frame in used]
    return found
