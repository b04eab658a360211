"""Who an archive is and which products roots it owns, so two archives never share files.

An archive gets a random id when it is made (``archive_info``); each folder it writes
products in is recorded in ``products_roots`` and holds a marker with that id
(``pipeline/products_root.py``), so a second archive pointed at it is refused.
"""

from __future__ import annotations

import sqlite3

from nota.archive.database import Archive
from nota.archive.provenance import utc_now

__all__ = ["archive_id", "owned_roots", "record_root", "has_products_under", "products_under", "info", "set_info"]


def info(archive: Archive, key: str) -> str | None:
    row = archive.one("SELECT value FROM archive_info WHERE key = ?", (key,))
    return None if row is None else row["value"]


def set_info(archive: Archive, key: str, value: str) -> None:
    with archive.transaction() as conn:
        conn.execute("INSERT INTO archive_info (key, value) VALUES (?, ?)"
                     " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


def archive_id(archive: Archive) -> str:
    """The archive's own id (made with its schema, or by the migration that added it)."""
    found = info(archive, "archive_id")
    if found is None:  # pragma: no cover - schema.sql and migration 5 both insert it
        raise RuntimeError(f"{archive.path}: archive_info has no archive_id")
    return found


def owned_roots(archive: Archive) -> list[str]:
    """The folders this archive has written products in, oldest first."""
    return [r["root"] for r in archive.dicts("SELECT root FROM products_roots ORDER BY claimed_at, root")]


def record_root(archive: Archive, root: str) -> None:
    with archive.transaction() as conn:
        conn.execute("INSERT OR IGNORE INTO products_roots (root, claimed_at) VALUES (?, ?)", (root, utc_now()))


def has_products_under(archive: Archive, root: str) -> bool:
    """Whether any product this archive recorded lives in ``root`` (an older nota's products/)."""
    return products_under(archive.conn, root)


def products_under(conn: sqlite3.Connection, root: str) -> bool:
    """``has_products_under`` on a bare connection: for an archive of an older schema, read
    before it is opened (and migrated)."""
    prefix = root.rstrip("/") + "/"
    return conn.execute("SELECT 1 FROM products WHERE substr(path, 1, ?) = ? LIMIT 1",
                        (len(prefix), prefix)).fetchone() is not None
