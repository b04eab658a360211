"""Files and their headers in the archive: the writer ingest hands every file it read to.

Ingest's readers (the pipeline's ``ingest``) turn each file into an ``IndexedFile``: rows
ready to be written, its header cards as numbers into the distinct cards its reader has
sent. This module is the other side: it decides a file's identity (new, changed, renamed
through its content hash, unchanged), writes a batch of files in one transaction with one
``executemany`` per table, and lets SQLite expand the card numbers into ``headers`` rows
(``json_each``), so no Python runs per card. It also reads back what the archive knows
of the files and marks the ones that are gone.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, NamedTuple

from nota.archive.database import Archive
from nota.archive.frames import header_cards
from nota.archive.provenance import utc_now

log = logging.getLogger(__name__)

__all__ = ["IndexedFile", "KnownFile", "Seen", "Written", "PID_BITS", "known_files", "card_table",
           "write_batch", "mark_missing", "IndexedContents"]

PID_BITS = 22  # a card's id is its reader's number for it shifted past the reader's process id
# (Linux process ids are below 2**22, PID_MAX_LIMIT), so readers never collide.


@dataclass(frozen=True)
class IndexedFile:
    """The parsed facts of one file, as rows ready to be written (picklable, compact)."""

    path: str
    size: int
    mtime_ns: int
    digest: str | None
    layout: str | None
    n_hdus: int
    data_hdu: int | None
    hdu_rows: list[tuple]  # hdus table rows without file_id
    card_lists: list[tuple[int, str, int]]  # (hdu, JSON array of card numbers, cards)
    new_cards: list[tuple]  # (card id, keyword, value, comment, raw) first sent with this file
    reader: int  # the process id that numbered the cards
    error: str | None
    warnings: list[str]
    observation: dict[str, Any] | None


class KnownFile(NamedTuple):
    """What the archive knew of a path before this ingest."""

    file_id: int
    size: int | None
    mtime_ns: int | None
    content_hash: str | None
    status: str


class Seen(NamedTuple):
    """One file of a batch: its path, what was read (None: unchanged, not read) and what was known."""

    path: str
    indexed: IndexedFile | None
    known: KnownFile | None


@dataclass
class Written:
    """What a batch did: outcomes by role and the problems, as (path, severity, problem)."""

    outcomes: Counter = field(default_factory=Counter)
    problems: list[tuple[str, str, str]] = field(default_factory=list)


class IndexedContents:
    """The path of each content indexed (by hash), for telling a copy from a new frame.

    Looked up one hash at a time, through the index on ``files.content_hash``, as new files
    arrive: reading the whole table first would cost every ingest (and every cycle of ``nota
    watch``) time in proportion to the archive. ``setdefault`` notes a content of the batch
    being written, before its rows are in the table.
    """

    # "+status": not by the index on status, which nearly every file matches (SQLite would
    # take it over the hash's and read the whole table for each new file).
    SQL = "SELECT min(path) FROM files WHERE content_hash = ? AND +status = 'ok'"

    def __init__(self, archive: Archive) -> None:
        self._conn = archive.conn
        self._paths: dict[str, str | None] = {}

    def get(self, digest: str) -> str | None:
        if digest not in self._paths:
            self._paths[digest] = self._conn.execute(self.SQL, (digest,)).fetchone()[0]
        return self._paths[digest]

    def setdefault(self, digest: str, path: str) -> str:
        if self.get(digest) is None:
            self._paths[digest] = path
        return self._paths[digest]


def known_files(archive: Archive, under: Iterable[str] | None = None) -> dict[str, KnownFile]:
    """Every file the archive has seen, by path; only those under the directories ``under``
    when given (a range of the unique index on ``path`` each: ingesting one night into the
    archive of a decade reads that night's rows, not the decade's)."""
    sql = "SELECT path, file_id, size, mtime_ns, content_hash, status FROM files"
    if under is None:
        return {row[0]: KnownFile(*row[1:]) for row in archive.conn.execute(sql)}
    known: dict[str, KnownFile] = {}
    for root in under:
        prefix = root.rstrip(os.sep) + os.sep
        after = prefix[:-1] + chr(ord(os.sep) + 1)  # the first text past every path under prefix
        rows = archive.conn.execute(f"{sql} WHERE path = ? OR (path >= ? AND path < ?)", (root, prefix, after))
        known.update((row[0], KnownFile(*row[1:])) for row in rows)
    return known


@contextmanager
def card_table(archive: Archive) -> Iterator[None]:
    """The temporary table of the cards readers have sent, for one ingest.

    Foreign keys are off meanwhile: the rows are consistent by construction, and checking
    each card's parent costs more than the insert itself. They are back on at the end.
    """
    conn = archive.conn
    conn.execute("PRAGMA foreign_keys = OFF")
    temp_store = conn.execute("PRAGMA temp_store").fetchone()[0]
    conn.execute("DROP TABLE IF EXISTS temp.ingest_cards")
    conn.execute("PRAGMA temp_store = MEMORY")  # a few MB of cards: a temporary file only slows it
    conn.execute("CREATE TEMP TABLE ingest_cards (card_id INTEGER PRIMARY KEY, keyword, value, comment, raw)")
    try:
        yield
    finally:
        conn.execute("DROP TABLE IF EXISTS temp.ingest_cards")
        conn.execute(f"PRAGMA temp_store = {int(temp_store)}")
        conn.execute("PRAGMA foreign_keys = ON")


def mark_missing(archive: Archive, file_ids: list[int]) -> None:
    """Files the archive knew that are no longer where they were (nor anywhere else)."""
    now = utc_now()
    with archive.transaction() as conn:
        conn.executemany(
            "UPDATE files SET status = 'missing', indexed_at = ? WHERE file_id = ?",
            [(now, file_id) for file_id in file_ids],
        )


class _BatchRows:
    """Rows of one batch, gathered per table so each table gets one executemany."""

    def __init__(self) -> None:
        self.new_files: list[tuple] = []
        self.updated_files: list[tuple] = []
        self.replaced: list[tuple] = []  # (file_id,) whose content rows are replaced
        self.hdus: list[tuple] = []
        self.new_cards: list[tuple] = []  # card numbers' definitions, from every file read
        self.card_lists: list[tuple] = []  # (file_id, hdu, JSON array of card numbers, reader)
        self.n_cards = 0
        self.observations: dict[tuple, list[tuple]] = {}
        self.used: list[tuple] = []
        self.problems: list[tuple] = []


_FILE_COLUMNS = (
    "path, name, directory, size, mtime_ns, content_hash, layout, n_hdus, data_hdu, status,"
    " error, indexed_at, activity_id"
)


def write_batch(
    archive: Archive, activity_id: int, batch: list[Seen], gone_by_hash: dict[str, list[tuple[int, str]]],
    present_by_hash: IndexedContents | dict[str, str] | None = None,
) -> Written:
    """Write a batch of files in one transaction, one statement per table.

    ``gone_by_hash`` holds the files no longer where they were, by content: a file read
    with one of those contents is that file renamed (and leaves the list).
    ``present_by_hash`` holds the path of each content indexed and still on disk: a new
    file with the same bytes is a copy, recorded but rejected, so a frame never counts
    twice in a master or gets two products (it grows with the batch's new files).
    """
    present_by_hash = {} if present_by_hash is None else present_by_hash
    written = Written()
    if not batch:
        return written
    now = utc_now()
    rows = _BatchRows()
    next_id = (archive.conn.execute("SELECT max(file_id) FROM files").fetchone()[0] or 0) + 1
    for path, ix, previous in batch:
        if ix is None:  # unchanged since the last ingest: one stat was enough
            rows.used.append((activity_id, "unchanged", previous.file_id, previous.content_hash, None))
            written.outcomes["unchanged"] += 1
            continue
        # Readers send each card once: keep its definition whatever becomes of this file.
        rows.new_cards.extend(ix.new_cards)
        file_id, role, note = _identify(ix, previous, gone_by_hash)
        original = present_by_hash.get(ix.digest) if ix.digest and not ix.error else None
        if role in ("new", "changed") and original not in (None, ix.path) and os.path.exists(original):
            ix = replace(ix, error=f"the same bytes as {original}: a copy, indexed once")
        elif ix.digest and not ix.error:
            present_by_hash.setdefault(ix.digest, ix.path)
        file_row = (
            ix.path, os.path.basename(ix.path), os.path.dirname(ix.path), ix.size, ix.mtime_ns,
            ix.digest, ix.layout, ix.n_hdus, ix.data_hdu, "rejected" if ix.error else "ok",
            ix.error, now, activity_id,
        )
        if file_id is None:
            file_id, next_id = next_id, next_id + 1
            rows.new_files.append((file_id, *file_row, now))
        else:
            rows.updated_files.append((*file_row, file_id))
        if role in ("new", "changed"):
            _gather_content(rows, file_id, ix, replace=role == "changed")
        _gather_outcome(rows, written, activity_id, file_id, ix, role, note, now)
    with archive.transaction() as conn:
        _execute_batch(conn, rows)
    return written


def _gather_outcome(rows: _BatchRows, written: Written, activity_id: int, file_id: int,
                    ix: IndexedFile, role: str, note: str | None, now: str) -> None:
    if ix.error:
        rows.used.append((activity_id, "rejected", file_id, ix.digest, ix.error))
        rows.problems.append((activity_id, file_id, ix.path, "error", ix.error, now))
        written.problems.append((ix.path, "error", ix.error))
        written.outcomes["rejected"] += 1
    else:
        rows.used.append((activity_id, role, file_id, ix.digest, note))
        written.outcomes[role] += 1
    for warning in ix.warnings:
        rows.problems.append((activity_id, file_id, ix.path, "warning", warning, now))
        written.problems.append((ix.path, "warning", warning))


def _identify(ix: IndexedFile, previous: KnownFile | None,
              gone_by_hash: dict[str, list[tuple[int, str]]]) -> tuple[int | None, str, str | None]:
    """(file_id or None for a new file, role, note) for a file that was read."""
    if previous is not None:
        if previous.content_hash == ix.digest and previous.status == "ok":
            return previous.file_id, "unchanged", None  # touched, same bytes
        if previous.content_hash == ix.digest:  # rejected before (a copy whose original went): index it now
            return previous.file_id, "changed", "indexed again"
        return previous.file_id, "changed", f"content was {previous.content_hash}"
    if ix.digest and gone_by_hash.get(ix.digest):
        file_id, old_path = gone_by_hash[ix.digest].pop(0)
        return file_id, "renamed", f"was {old_path}"
    return None, "new", None


def _gather_content(rows: _BatchRows, file_id: int, ix: IndexedFile, replace: bool) -> None:
    if replace:
        rows.replaced.append((file_id,))
    rows.hdus.extend((file_id, *r) for r in ix.hdu_rows)
    for hdu, numbers, n_cards in ix.card_lists:
        rows.card_lists.append((file_id, hdu, numbers, ix.reader))
        rows.n_cards += n_cards
    if ix.observation is not None:
        rows.observations.setdefault(tuple(ix.observation), []).append(
            (file_id, *ix.observation.values())
        )


def _execute_batch(conn: sqlite3.Connection, rows: _BatchRows) -> None:
    for table in ("headers", "hdus", "observations"):
        conn.executemany(f"DELETE FROM {table} WHERE file_id = ?", rows.replaced)
    conn.executemany(
        f"INSERT INTO files (file_id, {_FILE_COLUMNS}, first_seen_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows.new_files,
    )
    assignments = ", ".join(f"{c.strip()} = ?" for c in _FILE_COLUMNS.split(","))
    conn.executemany(f"UPDATE files SET {assignments} WHERE file_id = ?", rows.updated_files)
    conn.executemany(
        "INSERT INTO hdus (file_id, hdu, name, xtension, bitpix, naxis1, naxis2, n_cards,"
        " header_offset, data_offset, data_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows.hdus,
    )
    conn.executemany("INSERT INTO temp.ingest_cards VALUES (?, ?, ?, ?, ?)", rows.new_cards)
    # One statement per HDU turns its card numbers into rows, in order (CROSS JOIN keeps
    # json_each the outer loop).
    inserted = conn.executemany(
        "INSERT INTO headers (file_id, hdu, position, keyword, value, comment, raw)"
        " SELECT ?1, ?2, j.key + 1, c.keyword, c.value, c.comment, c.raw"
        " FROM json_each(?3) AS j CROSS JOIN temp.ingest_cards AS c"
        f" ON c.card_id = (j.value << {PID_BITS} | ?4)",
        rows.card_lists,
    ).rowcount
    if inserted != rows.n_cards:  # a card number without its card: never store a file short
        raise RuntimeError(f"ingest stored {inserted} header cards of {rows.n_cards}")
    for columns, values in rows.observations.items():
        conn.executemany(
            f"INSERT INTO observations (file_id, {', '.join(columns)})"
            f" VALUES (?, {', '.join('?' * len(columns))})",
            values,
        )
    # Provenance: what this ingest used, one row per file (role, content, note). Written
    # here in one statement per batch, as every other table of the batch.
    conn.executemany(
        "INSERT INTO used (activity_id, role, file_id, content_hash, reason) VALUES (?, ?, ?, ?, ?)",
        rows.used,
    )
    conn.executemany(
        "INSERT INTO problems (activity_id, file_id, path, severity, problem, at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows.problems,
    )


# Profiles and re-normalising ---------------------------------------------------------------


def register_profiles(archive: Archive, profiles: list[dict[str, Any]]) -> None:
    """The profiles that may read this ingest's frames, with their text (once per text)."""
    now = utc_now()
    with archive.transaction() as conn:
        conn.executemany(
            "INSERT OR IGNORE INTO profiles (digest, key, name, source, text, first_used_at)"
            " VALUES (:digest, :key, :name, :source, :text, :now)",
            [{**p, "now": now} for p in profiles])


def frames_read_by(archive: Archive, file_ids: list[int]) -> dict[int, tuple[str | None, str | None]]:
    """(profile key, profile hash) that read each of these frames."""
    rows = archive.run("SELECT file_id, profile, profile_hash FROM observations"
                       " WHERE file_id IN (SELECT value FROM json_each(?))", (str(sorted(file_ids)),))[1]
    return {file_id: (key, digest) for file_id, key, digest in rows}


def merged_header(archive: Archive, file_id: int) -> dict[str, Any]:
    """Keyword -> value as the frame sees it (its image HDU's cards over the primary's; the
    first card of a keyword), from the stored cards: what the profile reads."""
    primary, image = header_cards(archive, file_id)
    values: dict[str, Any] = {}
    for keyword, value, _ in (*image, *primary):
        if keyword not in ("COMMENT", "HISTORY", "") and keyword not in values:
            values[keyword] = value
    return values


def replace_observation(archive: Archive, file_id: int, row: dict[str, Any]) -> None:
    """A frame's normalised facts, read again (its profile changed)."""
    with archive.transaction() as conn:
        conn.execute("DELETE FROM observations WHERE file_id = ?", (file_id,))
        conn.execute(f"INSERT INTO observations (file_id, {', '.join(row)}) VALUES (?, {', '.join('?' * len(row))})",
                     (file_id, *row.values()))
