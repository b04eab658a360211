"""Provenance: every step nota runs is an activity that used and generated entities.

The model is W3C PROV's core: an *activity* (a run of a step, with its parameters and the
software versions that did the work), *entities* (files with particular content, named by
path and content hash), and the ``used``/``generated`` edges between them. Ingest records
itself here from the first step; reductions add products to the same graph.
"""

from __future__ import annotations

import json
import platform
import sqlite3
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

import nota

__all__ = [
    "utc_now",
    "software_versions",
    "start_activity",
    "finish_activity",
    "record_entity",
    "record_used",
    "record_generated",
]

_LIBRARIES = ("astropy", "numpy", "ccdproc", "sqlite-utils", "xxhash")


def utc_now() -> str:
    """Now, as ISO 8601 UTC text (the archive's time format)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def software_versions() -> dict[str, str]:
    """Versions of Python and the libraries whose behaviour shapes nota's results."""
    versions = {"python": platform.python_version(), "nota": nota.__version__}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def start_activity(conn: sqlite3.Connection, step: str, parameters: dict[str, Any]) -> int:
    """Record that a step started; committed at once so a crash leaves a trace."""
    cursor = conn.execute(
        "INSERT INTO activities (step, parameters_json, nota_version, versions_json, host,"
        " started_at, status) VALUES (?, ?, ?, ?, ?, ?, 'running')",
        (
            step,
            json.dumps(parameters, sort_keys=True, default=str),
            nota.__version__,
            json.dumps(software_versions(), sort_keys=True),
            platform.node(),
            utc_now(),
        ),
    )
    return int(cursor.lastrowid)


def finish_activity(
    conn: sqlite3.Connection, activity_id: int, status: str, message: str | None = None
) -> None:
    """Close an activity with its outcome: ok, partial (some inputs failed) or failed."""
    conn.execute(
        "UPDATE activities SET ended_at = ?, status = ?, message = ? WHERE activity_id = ?",
        (utc_now(), status, message, activity_id),
    )


def record_entity(
    conn: sqlite3.Connection,
    kind: str,
    path: str,
    content_hash: str | None,
    size: int | None,
    file_id: int | None = None,
) -> int:
    """The entity for a file with this content, created on first sight."""
    row = conn.execute(
        "SELECT entity_id FROM entities WHERE path = ? AND content_hash IS ?",
        (path, content_hash),
    ).fetchone()
    if row:
        return int(row[0])
    cursor = conn.execute(
        "INSERT INTO entities (kind, path, content_hash, size, file_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (kind, path, content_hash, size, file_id, utc_now()),
    )
    return int(cursor.lastrowid)


def record_used(
    conn: sqlite3.Connection, activity_id: int, entity_id: int, role: str, note: str | None = None
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO used (activity_id, entity_id, role, note) VALUES (?, ?, ?, ?)",
        (activity_id, entity_id, role, note),
    )


def record_generated(conn: sqlite3.Connection, activity_id: int, entity_id: int, role: str) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO generated (activity_id, entity_id, role) VALUES (?, ?, ?)",
        (activity_id, entity_id, role),
    )
