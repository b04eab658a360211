"""Numbered migrations that bring an older archive up to ``schema.sql``.

Each entry is (target version, SQL); it runs in one transaction that also sets
``PRAGMA user_version``. A new database skips them all: it is made from ``schema.sql``
directly. When ``schema.sql`` changes, bump its ``user_version`` and append the SQL that
takes the previous version there; ``tests/test_database.py`` checks the two roads agree.
"""

from __future__ import annotations

# Version 1 is the first published schema: nothing to migrate from yet.
MIGRATIONS: list[tuple[int, str]] = []
