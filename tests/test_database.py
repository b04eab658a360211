"""The archive database: one schema, migrations that agree with it, and a read-only guard."""

from __future__ import annotations

import sqlite3

import pytest

from nota.archive.database import checkpoints_beside, open_archive, open_readonly, schema_sql, schema_version
from nota.archive.migrations import MIGRATIONS
from nota.errors import DatabaseError, QueryError


def shape(conn: sqlite3.Connection) -> set[tuple[str, str, str]]:
    return {
        (row[0], row[1], " ".join(row[2].split()))
        for row in conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        )
    }


def test_schema_sql_is_what_a_fresh_archive_holds(db_path):
    db = open_archive(db_path)
    reference = sqlite3.connect(":memory:")
    reference.executescript(schema_sql())
    assert shape(db.conn) == shape(reference)
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == schema_version()
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"files", "headers", "observations", "activities", "used"} <= set(db.table_names())
    assert "frames" in db.view_names()


def columns(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Each table's columns (name, type, not null, default, primary key), in order."""
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [tuple(c[1:]) for c in conn.execute(f"PRAGMA table_info({t})")] for t in tables}


def test_an_archive_of_every_older_schema_migrates_to_schema_sql(tmp_path):
    """The two roads: a version-1 archive with data, migrated, equals a fresh one."""
    from pathlib import Path

    old = (Path(__file__).parent / "data" / "schema_v1.sql").read_text()
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(old)
    conn.execute("INSERT INTO files (path, name, directory, status, first_seen_at, indexed_at)"
                 " VALUES ('/x/a.fits', 'a.fits', '/x', 'ok', '2008-04-12T00:00:00', '2008-04-12T00:00:00')")
    conn.commit()
    conn.close()
    db = open_archive(path)
    fresh = sqlite3.connect(":memory:")
    fresh.executescript(schema_sql())
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == schema_version()
    assert columns(db.conn) == columns(fresh)
    assert {n for t, n, _ in shape(db.conn)} == {n for t, n, _ in shape(fresh)}
    assert db.conn.execute("SELECT name FROM files").fetchall() == [("a.fits",)]


def test_a_reader_of_an_older_archive_migrates_it_first(tmp_path):
    """`nota query`, `nota calibration` or `nota serve` on an archive an older nota made."""
    from pathlib import Path

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript((Path(__file__).parent / "data" / "schema_v1.sql").read_text())
    conn.close()
    with open_readonly(path) as archive:
        columns, _ = archive.run("SELECT colour_term_err, colour_index FROM calibrations")
    assert columns == ["colour_term_err", "colour_index"]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == schema_version()


def test_migrations_reach_the_schema_version():
    targets = [target for target, _ in MIGRATIONS]
    assert targets == sorted(targets)
    assert all(t <= schema_version() for t in targets)
    if targets:
        assert targets[-1] == schema_version()


def test_reopening_keeps_the_data(db_path):
    db = open_archive(db_path)
    db.conn.execute("INSERT INTO activities (step, started_at, status) VALUES ('x', 'now', 'ok')")
    db.conn.close()
    assert open_archive(db_path).conn.execute("SELECT count(*) FROM activities").fetchone()[0] == 1


def test_refuses_a_newer_or_foreign_database(tmp_path):
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {schema_version() + 1}")
    conn.close()
    with pytest.raises(DatabaseError, match="newer nota"):
        open_archive(newer)
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(DatabaseError, match="not a nota archive"):
        open_archive(foreign)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(DatabaseError, match="junk.db"):
        open_archive(junk)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO activities (step, started_at, status) VALUES ('x', 'now', 'ok')",
        "DELETE FROM files",
        "DROP TABLE files",
        "CREATE TABLE evil (x)",
        "ATTACH DATABASE ':memory:' AS other",
        "PRAGMA journal_mode = DELETE",
        "SELECT load_extension('/tmp/evil.so')",
        "UPDATE sqlite_master SET sql = 'CREATE TABLE evil (x)' WHERE name = 'files'",
    ],
)
def test_user_sql_cannot_write_or_attach(archive, db_path, sql):
    with open_readonly(db_path) as ro:
        with pytest.raises(QueryError, match="refused|not authorized|SQL error"):
            ro.run(sql)
    assert archive.conn.execute("SELECT count(*) FROM activities").fetchone()[0] == 0
    assert "evil" not in archive.table_names()


def test_user_sql_has_a_time_limit(archive, db_path):
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
    with open_readonly(db_path, time_limit=0.3) as ro:
        with pytest.raises(QueryError, match="time limit"):
            ro.run(endless)
        # The connection is still usable for the next query.
        assert ro.run("SELECT 1 + 1")[1] == [(2,)]


def test_regexp_in_user_sql(archive, db_path):
    with open_readonly(db_path) as ro:
        assert ro.run("SELECT 'Sky Flat evening' REGEXP 'flat', 'Bias' REGEXP 'flat'")[1] == [(1, 0)]


def test_read_only_sql_may_use_table_valued_functions(archive, db_path):
    """json_each (a list of ids as one parameter) reads, as the library's own queries do."""
    with open_readonly(db_path) as ro:
        assert ro.run("SELECT value FROM json_each(?)", ("[3, 1]",))[1] == [(3,), (1,)]


def test_checkpoints_beside_copy_the_log_into_the_file_while_the_writer_goes_on(archive, db_path):
    """Ingest's batches are checkpointed by a thread of their own: the committed pages reach
    the database file before the writer closes, the writer's own checkpointing is off only
    meanwhile, and the thread is gone at the end."""
    import threading

    conn = archive.conn
    conn.execute("CREATE TABLE bulk (n INTEGER, text TEXT)")
    size_before = db_path.stat().st_size
    with checkpoints_beside(archive) as after_commit:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        for batch in range(5):
            with archive.transaction():
                conn.executemany("INSERT INTO bulk VALUES (?, ?)", [(i, "x" * 200) for i in range(2000)])
            after_commit()
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    assert "nota-checkpoint" not in {t.name for t in threading.enumerate()}
    assert db_path.stat().st_size > size_before + 5 * 2000 * 200  # in the file itself, not only the log
    with sqlite3.connect(db_path) as other:  # and whole, from a connection of its own
        assert other.execute("SELECT count(*) FROM bulk").fetchone()[0] == 10_000
