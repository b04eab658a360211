"""The archive handle: one SQLite file, opened for writing (created or migrated) or for reading.

Every reader and writer in ``nota.archive`` takes an ``Archive``. A writer's connection is
in WAL mode (readers such as Datasette keep working while nota writes) with foreign keys;
``archive.transaction()`` is the one way to group changes. A reader's connection
(``open_readonly``) refuses writes, ATTACH and extensions, and stops a query that runs past
its time limit, so user SQL can never change the record.

Plain ``sqlite3`` runs nota's own statements (ingest's batches expand card numbers inside
SQLite with ``json_each``, which no row-dict API expresses); sqlite-utils does what it does
well: inserting a row dict (``archive.insert``) and table introspection.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from nota.archive.migrations import MIGRATIONS
from nota.errors import DatabaseError, QueryError

log = logging.getLogger(__name__)

__all__ = ["Archive", "open_archive", "open_readonly", "schema_sql", "schema_version", "regexp",
           "checkpoints_beside"]

PAGE_SIZE = 16384


def schema_sql() -> str:
    """The text of ``schema.sql``, shipped beside this module (read as a plain file:
    ``importlib.resources`` and the zip support it loads cost a new archive 6 ms)."""
    return Path(__file__).with_name("schema.sql").read_text()


def schema_version() -> int:
    """The version ``schema.sql`` declares with ``PRAGMA user_version``."""
    match = re.search(r"PRAGMA\s+user_version\s*=\s*(\d+)", schema_sql())
    if not match:
        raise DatabaseError("schema.sql does not declare PRAGMA user_version")
    return int(match.group(1))


def regexp(pattern: str | None, value: object) -> int | None:
    """SQL ``x REGEXP pattern``: a case-insensitive search, as the lecture's ``object ~ 'flat'``."""
    if pattern is None or value is None:
        return None
    return 1 if re.search(pattern, str(value), re.IGNORECASE) else 0


class Archive:
    """An open archive: its path and connection, writable or read-only."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, readonly: bool, time_limit: float = 10.0):
        self.path = path
        self.conn = conn
        self.readonly = readonly
        self.time_limit = time_limit
        self._deadline = float("inf")
        self._utils = None
        conn.create_function("regexp", 2, regexp, deterministic=True)
        if readonly:
            conn.set_progress_handler(self._past_deadline, 10_000)

    # Transactions -----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``with archive.transaction() as conn:``: the block in one BEGIN IMMEDIATE ... COMMIT.

        Inside another transaction the block simply joins it, so writers compose.
        """
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # Reading ----------------------------------------------------------------------------

    def _past_deadline(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def run(self, sql: str, params: dict | tuple = ()) -> tuple[list[str], list[tuple]]:
        """Run one query; returns (columns, rows). On a read-only archive refusals and the
        time limit raise ``QueryError``."""
        if not self.readonly:
            cursor = self.conn.execute(sql, params)
            return [d[0] for d in cursor.description or ()], [tuple(r) for r in cursor.fetchall()]
        self._deadline = time.monotonic() + self.time_limit
        try:
            cursor = self.conn.execute(sql, params)
            columns = [d[0] for d in cursor.description or ()]
            rows = [tuple(r) for r in cursor.fetchall()]
        except (sqlite3.Warning, sqlite3.DatabaseError) as exc:
            raise _query_error(str(exc), self.time_limit) from None
        finally:
            self._deadline = float("inf")
        return columns, rows

    def dicts(self, sql: str, params: dict | tuple = ()) -> list[dict[str, Any]]:
        """``run``, with each row as a dict of column -> value."""
        columns, rows = self.run(sql, params)
        return [dict(zip(columns, row)) for row in rows]

    def one(self, sql: str, params: dict | tuple = ()) -> dict[str, Any] | None:
        """The first row as a dict, or None."""
        found = self.dicts(sql, params)
        return found[0] if found else None

    # sqlite-utils for what it does well ---------------------------------------------------

    @property
    def _db(self):
        if self._utils is None:
            import sqlite_utils

            self._utils = sqlite_utils.Database(self.conn, execute_plugins=False)
        return self._utils

    def insert(self, table: str, row: dict[str, Any]) -> int:
        """Insert one row dict; returns its rowid."""
        return int(self._db[table].insert(row).last_rowid)

    def table_names(self) -> list[str]:
        return self._db.table_names()

    def view_names(self) -> list[str]:
        return self._db.view_names()

    # Lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_archive(path: str | Path) -> Archive:
    """Open (creating or migrating as needed) the archive at ``path`` for writing."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise DatabaseError(f"{path}: directory {path.parent} does not exist")
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        # A new archive's page size (fixed once the file exists): 16 KiB pages make the
        # headers table's B-tree shallower, a tenth off ingest's inserts.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        _write_ahead_log(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        _bring_up_to_date(conn, path)
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path}: not a usable SQLite database ({exc})") from exc
    return Archive(path, conn, readonly=False)


@contextmanager
def checkpoints_beside(archive: Archive) -> Iterator[Callable[[], None]]:
    """Copy the write-ahead log into the database file from a thread of its own, for a long
    run of transactions (ingest's batches).

    SQLite's own checkpoint stops the writer every 1,000 pages to copy them and wait for the
    disk; a passive checkpoint on another connection does the same beside it (SQLite allows
    one writer and one checkpointer at once), and the thread waits for the disk without the
    GIL. Yields ``nudge``, to call after each commit. At the end the thread takes one last
    checkpoint (the writer's close then has nothing to copy) and the writer's own
    checkpoints resume.
    """
    conn = archive.conn
    try:
        checkpointer = sqlite3.connect(archive.path, timeout=0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error:  # no second connection (an unusual file system): SQLite's own checkpoints
        yield lambda: None
        return
    import threading

    wake, done = threading.Event(), threading.Event()

    def run() -> None:
        while True:
            wake.wait()
            wake.clear()
            last = done.is_set()  # the end: one more, so the writer's close finds nothing to copy
            try:
                checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # busy or failing: the writer's own checkpoint will do it
                log.debug("background checkpoint: %s", exc)
            if last:
                return

    every = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    thread = threading.Thread(target=run, name="nota-checkpoint", daemon=True)
    thread.start()
    try:
        yield wake.set
    finally:
        done.set()
        wake.set()
        thread.join()
        checkpointer.close()
        conn.execute(f"PRAGMA wal_autocheckpoint = {int(every)}")


def _write_ahead_log(conn: sqlite3.Connection, patience: float = 30.0) -> None:
    """Switch to WAL, waiting for the lock: SQLite answers "database is locked" at once here
    (no busy timeout) while another process is making the same new archive."""
    deadline = time.monotonic() + patience
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _bring_up_to_date(conn: sqlite3.Connection, path: Path) -> None:
    current = schema_version()
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == current:
        return
    if version > current:
        raise DatabaseError(
            f"{path}: made by a newer nota (schema {version}, this nota knows {current})"
        )
    has_tables = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
    ).fetchone()[0]
    if version == 0 and has_tables:  # tables and version are committed together: read it again,
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may just have made them
        if version == current:
            return
    if version == 0 and not has_tables:
        log.info("creating archive %s (schema %d)", path, current)
        # One transaction, taken before reading: of two processes creating one archive at
        # once, the second waits, finds the tables made and uses them; a failure leaves an
        # empty file, never half a schema.
        try:
            conn.executescript("BEGIN IMMEDIATE;\n" + schema_sql() + "\nCOMMIT;")
        except sqlite3.OperationalError:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if conn.execute("PRAGMA user_version").fetchone()[0] != current:
                raise
        return
    if version == 0:
        raise DatabaseError(f"{path}: an SQLite file that is not a nota archive")
    # Foreign keys stay off while tables are rebuilt (a dropped table must not cascade);
    # the migrated data is checked against them before the transaction commits.
    conn.execute("PRAGMA foreign_keys = OFF")
    for target, statements in MIGRATIONS:
        if target <= version:
            continue
        log.info("migrating archive %s to schema %d", path, target)
        try:
            # executescript commits what is pending first, so the script opens its own
            # transaction; it stays open for the checks below.
            conn.executescript("BEGIN IMMEDIATE;\n" + statements)
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise DatabaseError(f"{path}: migration to schema {target} broke {len(broken)} references")
            conn.execute(f"PRAGMA user_version = {target}")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    if conn.execute("PRAGMA user_version").fetchone()[0] != current:
        raise DatabaseError(f"{path}: no migration reaches schema {current}")


# Read-only connections for user SQL -------------------------------------------------------

_ALLOWED_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}
_ALLOWED_PRAGMAS = {"table_info", "table_xinfo", "index_list", "index_info", "foreign_key_list"}
_REFUSED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}


def _authorizer(action: int, arg1, arg2, db_name, trigger) -> int:
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _REFUSED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master" and trigger is None and arg2 in (
            "type", "name", "tbl_name", "rootpage", "sql"):
        # What SQLite asks when a table-valued function (json_each) is first used; the
        # connection is read-only (mode=ro, query_only), so nothing can be written.
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _ALLOWED_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def ensure_current(path: str | Path) -> None:
    """Migrate an archive an older nota made before reading it: readers expect this schema.

    Only the schema changes (in its own transaction); a reader never writes data.
    """
    path = Path(path)
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.close()
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path}: cannot open read-only ({exc})") from exc
    if 0 < version < schema_version():
        try:
            open_archive(path).close()
        except DatabaseError as exc:
            raise DatabaseError(f"{path}: made by an older nota (schema {version}); open it once with"
                                f" write access to migrate it ({exc})") from exc


def open_readonly(path: str | Path, time_limit: float = 10.0) -> Archive:
    """An archive for reading and user SQL: no writes, no ATTACH, no extensions, a time limit."""
    path = Path(path)
    if not path.exists():
        raise DatabaseError(f"{path}: no archive here (run `nota ingest` first)")
    ensure_current(path)
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        conn.execute("PRAGMA query_only = ON")
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path}: cannot open read-only ({exc})") from exc
    if hasattr(conn, "enable_load_extension"):  # absent where Python was built without it
        conn.enable_load_extension(False)
    conn.set_authorizer(_authorizer)
    return Archive(path, conn, readonly=True, time_limit=time_limit)


def _query_error(message: str, limit: float) -> QueryError:
    if "interrupted" in message:
        return QueryError(f"query stopped after its {limit:g} s time limit")
    if "not authorized" in message or "prohibited" in message:
        return QueryError(
            "refused: queries here are read-only (no writes, ATTACH, PRAGMA or extensions)"
        )
    if "readonly" in message or "read-only" in message:
        return QueryError("refused: the archive is opened read-only for queries")
    return QueryError(f"SQL error: {message}")
