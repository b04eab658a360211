"""Read-only questions to the archive: user SQL and the usual frame listings.

Callers give these a read-only archive (``database.open_readonly``: writes, ATTACH and
extensions refused, a time limit), so a user's query can never change the record.
"""

from __future__ import annotations

import logging
from typing import Any

from nota.archive.database import Archive
from nota.archive.selections import expand_header_calls

log = logging.getLogger(__name__)

__all__ = ["run_query", "list_frames", "frame_summary", "FRAME_COLUMNS"]

FRAME_COLUMNS = (
    "filename", "night", "kind", "filter", "exptime", "date_obs", "airmass",
    "naxis1", "naxis2", "binning", "object", "kind_rule",
)


def run_query(archive: Archive, sql: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
    """Run one user SELECT (``header('KEY')`` calls expanded); returns (columns, rows)."""
    return archive.run(expand_header_calls(sql), params or {})


def list_frames(
    archive: Archive,
    *,
    night: str | None = None,
    kind: str | None = None,
    filter: str | None = None,
    columns: tuple[str, ...] = FRAME_COLUMNS,
) -> tuple[list[str], list[tuple]]:
    """Frames of the archive, optionally of one night, kind and filter (name or wheel id)."""
    where, params = [], {}
    if night:
        where.append("night = :night")
        params["night"] = night
    if kind:
        where.append("kind = :kind")
        params["kind"] = kind
    if filter:
        where.append(
            "(filter = :filter COLLATE NOCASE OR ('/' || filter_ids || '/') LIKE '%/' || :filter || '/%')"
        )
        params["filter"] = filter
    sql = f"SELECT {', '.join(columns)} FROM frames"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY night, date_obs, filename"
    return run_query(archive, sql, params)


def frame_summary(archive: Archive, under: list[str] | None = None) -> list[dict[str, Any]]:
    """Frames counted by night, kind and filter; only those below ``under`` when given."""
    where, params = "", {}
    if under:
        clauses = []
        for i, root in enumerate(under):
            clauses.append(f"(path = :r{i} OR substr(path, 1, length(:p{i})) = :p{i})")
            params[f"r{i}"] = root
            params[f"p{i}"] = root.rstrip("/") + "/"
        where = "WHERE " + " OR ".join(clauses)
    # Frames kept out of imaging reduction say why (the rule that decided their kind).
    return archive.dicts(
        "SELECT night, kind, coalesce(filter, '') AS filter, count(*) AS frames,"
        " CASE WHEN kind IN ('spectrum', 'arc', 'ignored', 'unknown') THEN kind_rule ELSE '' END AS why"
        f" FROM frames {where} GROUP BY night, kind, filter, why ORDER BY night, kind, filter",
        params,
    )
