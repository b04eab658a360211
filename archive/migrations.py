"""Numbered migrations that bring an older archive up to ``schema.sql``.

Each entry is (target version, SQL); it runs in one transaction that also sets
``PRAGMA user_version``. A new database skips them all: it is made from ``schema.sql``
directly. When ``schema.sql`` changes, bump its ``user_version``, append the SQL that
takes the previous version there, and keep a copy of the previous schema in
``tests/data/schema_v<N>.sql``: ``tests/test_database.py`` checks the two roads agree.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    # 2: cosmic-ray counts in qc; stacks' exposure, airmass and the PHOTZP of products;
    #    the colour term's error and colour index in calibrations.
    (2, """
ALTER TABLE qc ADD COLUMN cosmic_pixels INTEGER;
ALTER TABLE products ADD COLUMN exptime REAL;
ALTER TABLE products ADD COLUMN airmass REAL;
ALTER TABLE products ADD COLUMN photzp REAL;
ALTER TABLE calibrations ADD COLUMN colour_term_err REAL;
ALTER TABLE calibrations ADD COLUMN colour_index TEXT;
"""),
]
