"""Open the archive database: create it from ``schema.sql``, migrate it, or open it read-only.

Writers get WAL mode (readers such as Datasette keep working while nota writes) and
foreign keys. User SQL gets a separate read-only connection that refuses writes, ATTACH
and extension loading, and stops a query that runs past its time limit.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from importlib import resources
from pathlib import Path

import sqlite_utils

from nota.archive.migrations import MIGRATIONS
from nota.errors import DatabaseError, QueryError

log = logging.getLogger(__name__)

__all__ = [
    "schema_sql",
    "schema_version",
    "open_database",
    "ReadOnlyArchive",
    "transaction",
]


def schema_sql() -> str:
    """The text of ``schema.sql``, shipped inside the package."""
    return resources.files("nota.archive").joinpath("schema.sql").read_text()


def schema_version() -> int:
    """The version ``schema.sql`` declares with ``PRAGMA user_version``."""
    match = re.search(r"PRAGMA\s+user_version\s*=\s*(\d+)", schema_sql())
    if not match:
        raise DatabaseError("schema.sql does not declare PRAGMA user_version")
    return int(match.group(1))


def _register_functions(conn: sqlite3.Connection) -> None:
    def regexp(pattern: str | None, value: object) -> int | None:
        if pattern is None or value is None:
            return None
        return 1 if re.search(pattern, str(value), re.IGNORECASE) else 0

    conn.create_function("regexp", 2, regexp, deterministic=True)


PAGE_SIZE = 16384


def open_database(path: str | Path) -> sqlite_utils.Database:
    """Open (creating or migrating as needed) the archive at ``path`` for writing."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise DatabaseError(f"{path}: directory {path.parent} does not exist")
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        # A new archive's page size (fixed once the file exists): 16 KiB pages make the
        # headers table's B-tree shallower, a tenth off ingest's inserts.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        _register_functions(conn)
        _bring_up_to_date(conn, path)
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path}: not a usable SQLite database ({exc})") from exc
    return sqlite_utils.Database(conn)


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
    if version == 0 and not has_tables:
        log.info("creating archive %s (schema %d)", path, current)
        # One transaction: a failure leaves an empty file, never half a schema.
        conn.executescript("BEGIN;\n" + schema_sql() + "\nCOMMIT;")
        return
    if version == 0:
        raise DatabaseError(f"{path}: an SQLite file that is not a nota archive")
    for target, statements in MIGRATIONS:
        if target <= version:
            continue
        log.info("migrating archive %s to schema %d", path, target)
        conn.executescript(f"BEGIN;\n{statements}\nPRAGMA user_version = {target};\nCOMMIT;")
    if conn.execute("PRAGMA user_version").fetchone()[0] != current:
        raise DatabaseError(f"{path}: no migration reaches schema {current}")


class transaction:
    """``with transaction(db):`` runs the block in one BEGIN IMMEDIATE ... COMMIT."""

    def __init__(self, db: sqlite_utils.Database):
        self.conn = db.conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


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
            open_database(path).conn.close()
        except DatabaseError as exc:
            raise DatabaseError(f"{path}: made by an older nota (schema {version}); open it once with"
                                f" write access to migrate it ({exc})") from exc


class ReadOnlyArchive:
    """A connection for user SQL: reads only, no ATTACH, no extensions, a time limit per query."""

    def __init__(self, path: str | Path, time_limit: float = 10.0):
        path = Path(path)
        if not path.exists():
            raise DatabaseError(f"{path}: no archive here (run `nota ingest` first)")
        ensure_current(path)
        try:
            self.conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            self.conn.execute("PRAGMA query_only = ON")
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{path}: cannot open read-only ({exc})") from exc
        _register_functions(self.conn)
        if hasattr(self.conn, "enable_load_extension"):  # absent where Python was built without it
            self.conn.enable_load_extension(False)
        self.conn.set_authorizer(_authorizer)
        self.time_limit = time_limit
        self._deadline = 0.0
        self.conn.set_progress_handler(self._past_deadline, 10_000)

    def _past_deadline(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def run(self, sql: str, params: dict | tuple = ()) -> tuple[list[str], list[tuple]]:
        """Run one user query; returns (columns, rows). Refusals raise ``QueryError``."""
        self._deadline = time.monotonic() + self.time_limit
        try:
            cursor = self.conn.execute(sql, params)
            columns = [d[0] for d in cursor.description or ()]
            rows = [tuple(r) for r in cursor.fetchall()]
        except (sqlite3.Warning, sqlite3.DatabaseError) as exc:
            raise _query_error(str(exc), self.time_limit) from None
        return columns, rows

    def dicts(self, sql: str, params: dict | tuple = ()) -> list[dict]:
        """``run``, with each row as a dict of column -> value."""
        columns, rows = self.run(sql, params)
        return [dict(zip(columns, row)) for row in rows]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "ReadOnlyArchive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
