"""Selections: named SQL conditions over the ``frames`` view, stored in the archive.

The lecture builds its lists with ``files_filtered(imagetyp='bias')``, ``EXPTIME > 600``,
``FBFLTID=78`` and "object contains flat", then edits them by hand. A selection is that
condition with a name and a sentence saying what it is for. The instrument profile ships
the usual ones (``nota/instruments/<profile>/selections/*.sql``); users add or override
their own. Selections may take parameters (``:night``, ``:filter``); a parameter not given
is NULL, so ``(:night IS NULL OR night = :night)`` makes it optional.

``header('KEYWORD')`` in a condition is the value of any raw header card of the frame
(its image HDU's, else the primary's), so no one needs to know the card table's layout.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nota.archive.database import Archive, open_readonly
from nota.archive.provenance import utc_now
from nota.errors import NotaError, QueryError

if TYPE_CHECKING:
    from nota.instruments import Profile

log = logging.getLogger(__name__)

__all__ = [
    "Selection",
    "expand_header_calls",
    "shipped_selections",
    "sync_shipped_selections",
    "add_selection",
    "list_selections",
    "get_selection",
    "select",
    "selected_file_ids",
    "selection_condition",
    "frames_query",
]

_HEADER_CALL = re.compile(r"\bheader\(\s*'([^']+)'\s*\)", re.IGNORECASE)
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Selection:
    name: str
    condition: str
    doc: str
    source: str

    @property
    def parameters(self) -> list[str]:
        return sorted(set(_PARAMETER.findall(_strip_strings(self.condition))))


def _strip_strings(sql: str) -> str:
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def expand_header_calls(sql: str) -> str:
    """Rewrite ``header('KEY')`` into a lookup of that card for the frame being selected."""

    def lookup(match: re.Match) -> str:
        keyword = match.group(1).strip().upper().replace("'", "''")
        return (
            "(SELECT h.value FROM headers AS h JOIN files AS hf ON hf.file_id = h.file_id"
            " WHERE h.file_id = frames.file_id AND h.keyword = '" + keyword + "'"
            " AND h.hdu IN (0, coalesce(hf.data_hdu, 0)) ORDER BY h.hdu DESC, h.position LIMIT 1)"
        )

    return _HEADER_CALL.sub(lookup, sql)


def frames_query(condition: str, columns: str = "*", order: str = "night, date_obs, filename") -> str:
    """The SELECT over ``frames`` for a condition (``header()`` calls expanded)."""
    return f"SELECT {columns} FROM frames WHERE ({expand_header_calls(condition)}) ORDER BY {order}"


def shipped_selections(profile: Profile) -> list[Selection]:
    """The selections an instrument profile ships, from the ``selections/*.sql`` files beside it."""
    folder = profile.selections_dir
    if folder is None or not folder.is_dir():
        return []
    profile_key = profile.key
    found = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".sql"):
            continue
        lines = entry.read_text().splitlines()
        doc = " ".join(ln.lstrip("-").strip() for ln in lines if ln.startswith("--"))
        condition = "\n".join(ln for ln in lines if ln.strip() and not ln.startswith("--"))
        found.append(
            Selection(entry.name.removesuffix(".sql"), condition.strip(), doc, f"profile:{profile_key}")
        )
    return found


def sync_shipped_selections(archive: Archive) -> None:
    """Store the profiles' selections; a user's selection of the same name is left alone."""
    from nota.instruments import available_profiles, load_profile  # profiles only when wanted

    now = utc_now()
    with archive.transaction() as conn:
        for key in available_profiles():
            for s in shipped_selections(load_profile(key)):
                conn.execute(
                    "INSERT INTO selections (name, condition, doc, source, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                    " condition = excluded.condition, doc = excluded.doc, updated_at = excluded.updated_at"
                    " WHERE selections.source = excluded.source AND selections.condition != excluded.condition",
                    (s.name, s.condition, s.doc, s.source, now, now),
                )


def _check(archive: Archive, condition: str) -> None:
    """Refuse a condition that is not valid read-only SQL over frames: it runs once on a
    read-only handle of the same archive, where any write is refused."""
    params = {p: None for p in Selection("x", condition, "", "").parameters}
    with open_readonly(archive.path) as readonly:
        readonly.run(frames_query(condition, "count(*)", "1") + " LIMIT 1", params)


def add_selection(archive: Archive, name: str, condition: str, doc: str = "") -> Selection:
    """Store (or replace) a user's selection, after checking it runs."""
    if not _NAME.match(name):
        raise QueryError(f"selection name {name!r}: use lower-case letters, digits and _")
    if ";" in _strip_strings(condition):
        raise QueryError("a selection is one condition (no ';')")
    _check(archive, condition)
    now = utc_now()
    with archive.transaction() as conn:
        conn.execute(
            "INSERT INTO selections (name, condition, doc, source, created_at, updated_at)"
            " VALUES (?, ?, ?, 'user', ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " condition = excluded.condition, doc = excluded.doc, source = 'user',"
            " updated_at = excluded.updated_at",
            (name, condition, doc, now, now),
        )
    return Selection(name, condition, doc, "user")


def list_selections(archive: Archive) -> list[Selection]:
    """Every stored selection, by name."""
    _, rows = archive.run("SELECT name, condition, doc, source FROM selections ORDER BY name")
    return [Selection(*row) for row in rows]


def get_selection(archive: Archive, name: str) -> Selection:
    """A stored selection by name; the known names in the error when there is none."""
    _, rows = archive.run("SELECT name, condition, doc, source FROM selections WHERE name = ?", (name,))
    if not rows:
        known = ", ".join(s.name for s in list_selections(archive))
        raise QueryError(f"no selection named {name!r} (known: {known or 'none'})")
    return Selection(*rows[0])


def _bind(condition: str, params: dict[str, Any]) -> dict[str, Any]:
    wanted = Selection("x", condition, "", "").parameters
    unknown = set(params) - set(wanted)
    if unknown:
        raise QueryError(
            f"parameter(s) {', '.join(sorted(unknown))} not used by this selection"
            f" (it takes {', '.join(wanted) or 'none'})"
        )
    return {p: params.get(p) for p in wanted}


def select(
    archive: Archive,
    condition: str,
    params: dict[str, Any] | None = None,
    columns: str = "*",
) -> tuple[list[str], list[tuple]]:
    """The frames a condition selects (user SQL: give a read-only archive)."""
    return archive.run(frames_query(condition, columns), _bind(condition, params or {}))


def selection_condition(archive: Archive, name: str) -> str:
    """The SQL condition of a stored selection, for steps the profile drives by name."""
    row = archive.conn.execute("SELECT condition FROM selections WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotaError(f"the profile needs a selection named {name!r}: see `nota selection list`")
    return row[0]


def selected_file_ids(archive: Archive, condition: str, params: dict[str, Any] | None = None) -> list[int]:
    """file_ids a condition selects, in the selection's order (night, date_obs, filename)."""
    sql = frames_query(condition, "file_id")
    try:
        return [r[0] for r in archive.conn.execute(sql, _bind(condition, params or {}))]
    except sqlite3.DatabaseError as exc:
        raise QueryError(f"selection failed: {exc}") from None
