"""Source catalogues in the archive: the stars ``nota photometry`` measured on a product."""

from __future__ import annotations

from typing import Any, Iterable

from nota.archive.database import Archive

__all__ = ["SOURCE_COLUMNS", "replace_sources", "list_sources"]

SOURCE_COLUMNS = ("product_id", "file_id", "x", "y", "ra", "dec", "flux", "flux_err", "mag_instrumental", "mag",
                  "mag_err", "magnitude_system", "line_flux", "flags", "calibration_id", "activity_id")


def replace_sources(archive: Archive, product_id: int, rows: Iterable[tuple]) -> None:
    """A product's sources, in place of those measured before (rows in ``SOURCE_COLUMNS`` order)."""
    with archive.transaction() as conn:
        conn.execute("DELETE FROM sources WHERE product_id = ?", (product_id,))
        conn.executemany(f"INSERT INTO sources ({', '.join(SOURCE_COLUMNS)})"
                         f" VALUES ({', '.join('?' * len(SOURCE_COLUMNS))})", list(rows))


def list_sources(archive: Archive, product_id: int) -> list[dict[str, Any]]:
    """A product's sources, brightest first."""
    return archive.dicts(
        "SELECT source_id, x, y, ra, dec, flux, flux_err, mag_instrumental, mag, mag_err, magnitude_system,"
        " line_flux, flags FROM sources WHERE product_id = ? ORDER BY mag_instrumental", (product_id,))
