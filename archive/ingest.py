"""Ingest: index every header card of every FITS file under some directories.

``nota ingest N1/`` is the archive's first and most used step. It walks the directories,
hashes each file's bytes, reads every HDU's header without decoding pixels, stores every
card, and normalises the frame for selection. Re-running is cheap: a file whose size and
modification time are unchanged is skipped; a changed file is re-indexed and the change
recorded; a renamed file keeps its identity (and so its overrides) through its content hash.
Bad files are rejected one by one, with a reason, and the batch goes on.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import sqlite_utils
import xxhash

from nota.archive import provenance
from nota.archive.database import transaction
from nota.archive.fitsheader import Card, Hdu, Truncated, read_file_hdus
from nota.archive.frames import missing_keywords, observation_row
from nota.errors import FitsError, NotaError
from nota.instruments import profile_for_header
from nota.parallel import map_in_processes

log = logging.getLogger(__name__)

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fz")
BATCH = 200  # files per transaction: a crash loses at most one batch, never half a file
FIRST_BATCH = 25  # batches grow from this to BATCH, so writing starts while readers warm up
PARALLEL_FROM = 64  # files to read before worker processes pay for their start-up

__all__ = ["FITS_SUFFIXES", "Problem", "IngestReport", "iter_fits", "ingest", "content_hash"]


@dataclass(frozen=True)
class Problem:
    """Something wrong with one file, in one line a user can act on."""

    path: str
    severity: str  # error (file rejected) | warning (file indexed)
    problem: str

    def __str__(self) -> str:
        word = "rejected" if self.severity == "error" else "warning"
        return f"{word} {self.path}: {self.problem}"


@dataclass
class IngestReport:
    """What one ingest run saw and did."""

    activity_id: int
    roots: list[str]
    outcomes: Counter = field(default_factory=Counter)  # new, unchanged, changed, renamed, rejected, missing
    problems: list[Problem] = field(default_factory=list)

    @property
    def files_seen(self) -> int:
        return sum(v for k, v in self.outcomes.items() if k != "missing")

    @property
    def rejected(self) -> int:
        return self.outcomes["rejected"]


def is_fits_name(name: str) -> bool:
    return name.lower().endswith(FITS_SUFFIXES)


_parts = attrgetter("parts")


def iter_fits(paths: Iterable[str | Path]) -> Iterator[Path]:
    """FITS files named or found (recursively) under ``paths``, sorted, absolute."""
    for root in paths:
        root = Path(root).absolute()
        if root.is_file():
            yield root
            continue
        if not root.is_dir():
            raise NotaError(f"{root}: no such file or directory")
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(Path(dirpath) / n for n in filenames if is_fits_name(n))
        yield from sorted(found, key=_parts)  # as Path sorts, without its slow comparisons


_HASH_CHUNK = 1 << 20
_hash_buffers = threading.local()


def content_hash(path: str) -> str | None:
    """XXH3-128 of a file's bytes; None if unreadable.

    The bytes come in 1 MiB pieces into one buffer per thread: copying them from the page
    cache costs less CPU than a memory map's page faults. A 128-bit hash tells one file's
    content from another's (renames, changes, provenance) at memory speed; it is not meant
    to resist deliberate forgery.
    """
    buffer = getattr(_hash_buffers, "buffer", None)
    if buffer is None:
        buffer = _hash_buffers.buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    digest = xxhash.xxh3_128()
    try:
        with open(path, "rb", buffering=0) as stream:
            while n := stream.readinto(buffer):
                digest.update(view[:n])
    except (OSError, ValueError):
        return None
    return digest.hexdigest()


def _layout(hdus: list[Hdu], data_hdu: int | None, path: str) -> str:
    if data_hdu is None:
        layout = "no-image"
    elif hdus[data_hdu].get("ZIMAGE") is True:
        layout = "tile-compressed"
    elif data_hdu == 0 and len(hdus) == 1:
        layout = "simple"
    else:
        layout = "mef"
    return layout + ("+gzip" if path.endswith(".gz") else "")


def merged_header(hdus: list[Hdu], data_hdu: int | None) -> dict[str, Any]:
    """Keyword -> value as a frame sees it: the image HDU's cards over the primary's."""
    if not hdus:
        return {}
    if data_hdu in (None, 0):
        return hdus[0].first_values
    return {**hdus[0].first_values, **hdus[data_hdu].first_values}


_PID_BITS = 22  # Linux process ids are below 2**22 (PID_MAX_LIMIT)
_CARD_NUMBERS_MAX = 500_000  # distinct cards a reader remembers before it starts afresh


class _CardNumbers:
    """Numbers for the distinct cards one reader process has sent in one ingest.

    Most cards repeat exactly from file to file (a frame has about a dozen of its own), so a
    reader sends each distinct card once, then only its number. The writer keeps the cards
    in a temporary table and SQLite expands the numbers into ``headers`` rows in C, with no
    Python per row. In that table a card's id is its number shifted left past the reader's
    process id, so readers never collide.
    """

    _current: "_CardNumbers | None" = None

    def __init__(self, session: str) -> None:
        self.session = session
        self.pid = os.getpid()
        self.numbers: dict[Card, int] = {}
        self.issued = 0

    @classmethod
    def for_session(cls, session: str) -> "_CardNumbers":
        """This process's numbering for one ingest (a forked reader inherits none)."""
        current = cls._current
        if current is None or current.session != session or current.pid != os.getpid():
            current = cls._current = cls(session)
        return current

    def number(self, cards: list[Card], new: list[tuple]) -> str:
        """The cards' numbers as a JSON array; cards not sent before are appended to ``new``."""
        if len(self.numbers) > _CARD_NUMBERS_MAX:
            self.numbers.clear()  # numbers already issued stay valid: none is ever reused
        listed = list(map(self.numbers.get, cards))
        if None in listed:
            listed = [n or self._issue(card, new) for card, n in zip(cards, listed)]
        return json.dumps(listed)

    def _issue(self, card: Card, new: list[tuple]) -> int:
        self.issued += 1
        self.numbers[card] = self.issued
        new.append((self.issued << _PID_BITS | self.pid, *_sql_card(card)))
        return self.issued


@dataclass
class _Indexed:
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


def _read(task: tuple[str, int, int, bool, str]) -> _Indexed:
    """Hash and parse one file; never raises for bad content, reports it instead."""
    path, size, mtime_ns, hash_it, session = task
    digest = content_hash(path) if hash_it else None
    error = None
    try:
        hdus = read_file_hdus(path)
    except Truncated as exc:
        hdus, error = exc.hdus, str(exc)
    except FitsError as exc:
        hdus, error = [], str(exc)
    except OSError as exc:
        hdus, error = [], f"cannot read: {exc.strerror or exc}"
    warnings = [w for h in hdus for w in h.warnings]
    data_hdu = next((h.index for h in hdus if h.is_image), None)
    observation = None
    if error is None:
        if data_hdu is None:
            warnings.append("no image HDU: indexed, but not a frame")
        else:
            header = merged_header(hdus, data_hdu)
            profile = profile_for_header(header)
            if "NOTAKEY" in header:
                # A product nota made (it carries the raw header): never a raw frame.
                warnings.append("a nota product, not a raw frame: indexed, but not a frame")
                profile, header = None, None
            elif profile is None:
                instrument = header.get("INSTRUME")
                warnings.append(
                    f"no instrument profile for INSTRUME={instrument!r}: kind set to unknown"
                )
            else:
                missing = missing_keywords(header, profile)
                if missing:
                    warnings.append(f"missing keyword(s) {', '.join(missing)}")
            if header is not None:
                observation = observation_row(header, profile)
    hdu_rows = [
        (
            h.index,
            h.name,
            h.xtension,
            _int_or_none(h.get("BITPIX")),
            _int_or_none(h.get("NAXIS1")),
            _int_or_none(h.get("NAXIS2")),
            len(h.cards),
            h.header_offset,
            h.data_offset,
            h.data_size,
        )
        for h in hdus
    ]
    numbers = _CardNumbers.for_session(session)
    new_cards: list[tuple] = []
    card_lists = [
        (h.index, numbers.number(h.cards, new_cards), len(h.cards)) for h in hdus if h.cards
    ]
    layout = _layout(hdus, data_hdu, path) if hdus else None
    return _Indexed(
        path, size, mtime_ns, digest, layout, len(hdus), data_hdu, hdu_rows, card_lists,
        new_cards, numbers.pid, error, warnings, observation,
    )


def _read_all(
    tasks: list[tuple[str, int, int, bool, str]], jobs: int | None
) -> Iterator[_Indexed]:
    """Parse files in worker processes when there are enough to pay for them, in order."""
    return map_in_processes(_read, tasks, jobs=jobs, parallel_from=PARALLEL_FROM, chunksize=8)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Ingest makes hundreds of thousands of short-lived objects and no reference cycles;
    the cyclic collector, set off by the allocations, would walk every object the process
    holds over and over (a fifth of the indexing time in a process that has done other
    work). Reference counting still frees everything as it goes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def ingest(
    db: sqlite_utils.Database,
    paths: Iterable[str | Path],
    *,
    hash_content: bool = True,
    jobs: int | None = None,
    on_file: Callable[[int, int, str], None] | None = None,
) -> IngestReport:
    """Index every FITS file under ``paths`` into the archive; returns what happened.

    ``hash_content=False`` indexes headers only: quicker on slow disks, but renamed files
    are then not recognised and provenance has no content hashes. ``jobs`` worker
    processes read the files (default: the cores); only this process writes the database.
    """
    with _no_cycle_collection():
        return _ingest(db, paths, hash_content=hash_content, jobs=jobs, on_file=on_file)


def _ingest(db: sqlite_utils.Database, paths: Iterable[str | Path], *, hash_content: bool,
            jobs: int | None, on_file: Callable[[int, int, str], None] | None) -> IngestReport:
    roots = [str(Path(p).absolute()) for p in paths]
    files = list(iter_fits(roots))
    conn = db.conn
    activity_id = provenance.start_activity(
        conn, "ingest", {"paths": roots, "hash_content": hash_content}
    )
    report = IngestReport(activity_id, roots)
    known = {
        row[0]: row[1:]
        for row in conn.execute(
            "SELECT path, file_id, size, mtime_ns, content_hash, status FROM files"
        )
    }
    seen_paths = {str(p) for p in files}
    # Files the archive knew under these roots that are no longer where they were:
    # candidates for a rename, else missing.
    gone_by_hash: dict[str, list[tuple[int, str]]] = {}
    for path, (file_id, _, _, digest, status) in known.items():
        if path not in seen_paths and any(_under(path, r) for r in roots) and not os.path.exists(path):
            gone_by_hash.setdefault(digest, []).append((file_id, path))
    # Decide from a stat what needs reading; unchanged files cost one stat.
    plan: list[tuple[str, os.stat_result | None, tuple | None]] = []
    for path_obj in files:
        path = str(path_obj)
        try:
            st = os.stat(path)
        except OSError as exc:
            report.problems.append(Problem(path, "error", f"cannot stat: {exc.strerror}"))
            report.outcomes["rejected"] += 1
            continue
        previous = known.get(path)
        unchanged = (
            previous is not None
            and previous[1] == st.st_size
            and previous[2] == st.st_mtime_ns
            and previous[4] == "ok"
        )
        plan.append((path, None if unchanged else st, previous))
    session = uuid.uuid4().hex  # names this run's card numbering in every reader
    tasks = [
        (path, st.st_size, st.st_mtime_ns, hash_content, session) for path, st, _ in plan if st
    ]
    parsed = _read_all(tasks, jobs)
    # Rows are consistent by construction; checking each card's parent costs more than
    # the insert itself. Enforcement comes back on when ingest ends.
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("DROP TABLE IF EXISTS temp.ingest_cards")
    conn.execute(
        "CREATE TEMP TABLE ingest_cards"
        " (card_id INTEGER PRIMARY KEY, keyword, value, comment, raw)"
    )
    try:
        batch: list[tuple[str, _Indexed | None, tuple | None]] = []
        batch_size = FIRST_BATCH
        for n, (path, st, previous) in enumerate(plan, 1):
            batch.append((path, next(parsed) if st else None, previous))
            if len(batch) >= batch_size:
                _write_batch(conn, activity_id, batch, gone_by_hash, report)
                batch, batch_size = [], min(2 * batch_size, BATCH)
            if on_file:
                on_file(n, len(plan), path)
        _write_batch(conn, activity_id, batch, gone_by_hash, report)
        with transaction(db):
            for entries in gone_by_hash.values():
                for file_id, path in entries:
                    conn.execute(
                        "UPDATE files SET status = 'missing', indexed_at = ? WHERE file_id = ?",
                        (provenance.utc_now(), file_id),
                    )
                    report.outcomes["missing"] += 1
            status = "partial" if report.rejected else "ok"
            provenance.finish_activity(conn, activity_id, status, _summary_line(report))
    except BaseException:
        provenance.finish_activity(conn, activity_id, "failed", "interrupted")
        raise
    finally:
        parsed.close()
        conn.execute("DROP TABLE IF EXISTS temp.ingest_cards")
        conn.execute("PRAGMA foreign_keys = ON")
    return report


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _summary_line(report: IngestReport) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(report.outcomes.items())) or "no files"


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
        self.entities: list[tuple] = []
        self.used: list[tuple] = []
        self.problems: list[tuple] = []


_FILE_COLUMNS = (
    "path, name, directory, size, mtime_ns, content_hash, layout, n_hdus, data_hdu, status,"
    " error, indexed_at, activity_id"
)


def _write_batch(conn, activity_id: int, batch, gone_by_hash, report: IngestReport) -> None:
    """Write a batch of files in one transaction, one statement per table."""
    if not batch:
        return
    now = provenance.utc_now()
    rows = _BatchRows()
    next_id = (conn.execute("SELECT max(file_id) FROM files").fetchone()[0] or 0) + 1
    for path, ix, previous in batch:
        if ix is None:  # unchanged since the last ingest: one stat was enough
            file_id, size, _, digest, _ = previous
            rows.entities.append(("raw", path, digest, size, file_id, now))
            rows.used.append((activity_id, "unchanged", None, path, digest))
            report.outcomes["unchanged"] += 1
            continue
        # Readers send each card once: keep its definition whatever becomes of this file.
        rows.new_cards.extend(ix.new_cards)
        file_id, role, note = _identify(ix, previous, gone_by_hash)
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
        rows.entities.append(("raw", ix.path, ix.digest, ix.size, file_id, now))
        if ix.error:
            rows.used.append((activity_id, "rejected", ix.error, ix.path, ix.digest))
            rows.problems.append((activity_id, file_id, ix.path, "error", ix.error, now))
            report.problems.append(Problem(ix.path, "error", ix.error))
            report.outcomes["rejected"] += 1
        else:
            rows.used.append((activity_id, role, note, ix.path, ix.digest))
            report.outcomes[role] += 1
        for warning in ix.warnings:
            rows.problems.append((activity_id, file_id, ix.path, "warning", warning, now))
            report.problems.append(Problem(ix.path, "warning", warning))
    conn.execute("BEGIN IMMEDIATE")
    try:
        _execute_batch(conn, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _identify(ix: _Indexed, previous, gone_by_hash) -> tuple[int | None, str, str | None]:
    """(file_id or None for a new file, role, note) for a file that was read."""
    if previous is not None:
        if previous[3] == ix.digest:
            return previous[0], "unchanged", None  # touched, same bytes
        return previous[0], "changed", f"content was {previous[3]}"
    if ix.digest and gone_by_hash.get(ix.digest):
        file_id, old_path = gone_by_hash[ix.digest].pop(0)
        return file_id, "renamed", f"was {old_path}"
    return None, "new", None


def _gather_content(rows: _BatchRows, file_id: int, ix: _Indexed, replace: bool) -> None:
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


def _execute_batch(conn, rows: _BatchRows) -> None:
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
        f" ON c.card_id = (j.value << {_PID_BITS} | ?4)",
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
    conn.executemany(
        "INSERT OR IGNORE INTO entities (kind, path, content_hash, size, file_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows.entities,
    )
    conn.executemany(
        "INSERT OR REPLACE INTO used (activity_id, entity_id, role, note)"
        " SELECT ?, entity_id, ?, ? FROM entities WHERE path = ? AND content_hash IS ?",
        rows.used,
    )
    conn.executemany(
        "INSERT INTO problems (activity_id, file_id, path, severity, problem, at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows.problems,
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _sql_card(card: Card) -> Card:
    """SQLite has no complex numbers: store those as text."""
    return card if type(card.value) is not complex else card._replace(value=str(card.value))
