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
    # 3: one provenance model. `used` holds every edge an activity used (raw files by
    #    content, products); a product's inputs are its activity's (the product_inputs view),
    #    so entities and generated go. A reduced frame's cosmic-ray and astrometry figures
    #    move from qc and flags (written by `nota qc` alone now) to its product.
    (3, """
CREATE TABLE used_v3 (
    used_id      INTEGER PRIMARY KEY,
    activity_id  INTEGER NOT NULL REFERENCES activities (activity_id) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    file_id      INTEGER REFERENCES files (file_id),
    product_id   INTEGER REFERENCES products (product_id),
    content_hash TEXT,
    included     INTEGER NOT NULL DEFAULT 1,
    reason       TEXT
);
INSERT INTO used_v3 (activity_id, role, file_id, product_id, content_hash, included, reason)
SELECT p.activity_id, i.role, i.file_id, i.input_product_id, i.content_hash, i.included, i.reason
FROM product_inputs AS i JOIN products AS p USING (product_id)
WHERE p.activity_id IS NOT NULL ORDER BY i.rowid;
INSERT INTO used_v3 (activity_id, role, file_id, product_id, content_hash, included, reason)
SELECT u.activity_id, u.role, e.file_id,
       (SELECT max(p.product_id) FROM products AS p WHERE p.entity_id = e.entity_id),
       e.content_hash, 1, u.note
FROM used AS u JOIN entities AS e USING (entity_id)
WHERE u.activity_id NOT IN (SELECT activity_id FROM products WHERE activity_id IS NOT NULL)
ORDER BY u.activity_id, e.entity_id;

CREATE TABLE products_v3 (
    product_id      INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    night           TEXT,
    filter          TEXT,
    path            TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    size            INTEGER NOT NULL,
    recipe_key      TEXT NOT NULL,
    step            TEXT NOT NULL,
    parameters_json TEXT NOT NULL,
    code_version    INTEGER NOT NULL,
    group_id        INTEGER REFERENCES calibration_groups (group_id) ON DELETE SET NULL,
    file_id         INTEGER REFERENCES files (file_id),
    activity_id     INTEGER REFERENCES activities (activity_id),
    current         INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    exptime         REAL,
    airmass         REAL,
    photzp          REAL,
    cosmic_pixels   INTEGER,
    wcs_status      TEXT,
    wcs_rms_arcsec  REAL,
    wcs_matched     INTEGER
);
INSERT INTO products_v3
SELECT p.product_id, p.kind, p.night, p.filter, p.path, p.content_hash, p.size, p.recipe_key, p.step,
       p.parameters_json, p.code_version, p.group_id, p.file_id, p.activity_id, p.current, p.created_at,
       p.exptime, p.airmass, p.photzp,
       CASE WHEN p.current = 1 AND p.kind = 'reduced' THEN q.cosmic_pixels END,
       CASE WHEN p.current = 1 AND p.kind = 'reduced' AND q.wcs_matched IS NOT NULL THEN
            coalesce((SELECT substr(g.message, 13, instr(g.message, '; the frame is kept') - 13) FROM flags AS g
                      WHERE g.file_id = p.file_id AND g.flag = 'not_solved'), 'solved') END,
       CASE WHEN p.current = 1 AND p.kind = 'reduced' THEN q.wcs_rms_arcsec END,
       CASE WHEN p.current = 1 AND p.kind = 'reduced' THEN q.wcs_matched END
FROM products AS p LEFT JOIN qc AS q ON q.file_id = p.file_id;

DROP VIEW lineage;
DROP TABLE product_inputs;
DROP TABLE used;
DROP TABLE generated;
DROP TABLE products;
DROP TABLE entities;
ALTER TABLE products_v3 RENAME TO products;
ALTER TABLE used_v3 RENAME TO used;
CREATE INDEX products_recipe ON products (recipe_key);
CREATE INDEX products_path ON products (path);
CREATE INDEX used_activity ON used (activity_id);
CREATE INDEX used_file ON used (file_id);
CREATE INDEX used_product ON used (product_id);

CREATE VIEW product_inputs AS
SELECT p.product_id, u.role, u.file_id, u.product_id AS input_product_id, u.content_hash, u.included,
       u.reason, u.used_id
FROM products AS p JOIN used AS u ON u.activity_id = p.activity_id;

CREATE VIEW lineage AS
WITH RECURSIVE ancestry (product_id, depth, role, file_id, input_product_id) AS (
    SELECT product_id, 1, role, file_id, input_product_id FROM product_inputs WHERE included = 1
    UNION ALL
    SELECT a.product_id, a.depth + 1, i.role, i.file_id, i.input_product_id
    FROM ancestry AS a JOIN product_inputs AS i ON i.product_id = a.input_product_id
    WHERE i.included = 1
)
SELECT product_id, depth, role, file_id, input_product_id FROM ancestry;

DELETE FROM flags WHERE source = 'astrometry';
ALTER TABLE flags DROP COLUMN source;
ALTER TABLE qc DROP COLUMN wcs_rms_arcsec;
ALTER TABLE qc DROP COLUMN wcs_matched;
ALTER TABLE qc DROP COLUMN cosmic_pixels;
"""),
    # 4: which profile read each frame (and its text), the detector temperature, the site and
    #    pixel scale per frame; dark groups (exposure, temperature); a flat or dark group's
    #    master bias and a flat group's master dark, chosen as a frame's are.
    (4, """
CREATE TABLE profiles (
    digest      TEXT PRIMARY KEY,
    key         TEXT NOT NULL,
    name        TEXT,
    source      TEXT NOT NULL,
    text        TEXT NOT NULL,
    first_used_at TEXT NOT NULL
);
ALTER TABLE observations ADD COLUMN profile TEXT;
ALTER TABLE observations ADD COLUMN profile_hash TEXT REFERENCES profiles (digest);
ALTER TABLE observations ADD COLUMN ccd_temp REAL;
ALTER TABLE observations ADD COLUMN site_latitude REAL;
ALTER TABLE observations ADD COLUMN site_longitude REAL;
ALTER TABLE observations ADD COLUMN pixel_scale REAL;
ALTER TABLE calibration_groups ADD COLUMN master_bias_group_id INTEGER REFERENCES calibration_groups (group_id) ON DELETE SET NULL;
ALTER TABLE calibration_groups ADD COLUMN master_bias_rule TEXT;
ALTER TABLE calibration_groups ADD COLUMN master_dark_group_id INTEGER REFERENCES calibration_groups (group_id) ON DELETE SET NULL;
ALTER TABLE calibration_groups ADD COLUMN master_dark_rule TEXT;
ALTER TABLE calibration_groups ADD COLUMN exptime REAL;
ALTER TABLE calibration_groups ADD COLUMN ccd_temp REAL;
DROP VIEW frames;
CREATE VIEW frames AS
SELECT
    f.file_id,
    f.name AS filename,
    f.path,
    o.night,
    o.instrument,
    o.kind,
    o.kind_rule,
    o.filter,
    o.filter_ids,
    o.exptime,
    o.date_obs,
    o.mjd,
    o.airmass,
    o.naxis1,
    o.naxis2,
    o.binning,
    o.object,
    o.imagetyp,
    o.ra,
    o.dec,
    o.ccd_temp,
    f.content_hash
FROM files AS f
JOIN observations AS o USING (file_id)
WHERE f.status = 'ok';
"""),
    # 5: an archive's identity and the products roots it owns (an archive of an older
    #    nota claims the products/ its products are in when it next reduces).
    (5, """
CREATE TABLE archive_info (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO archive_info (key, value) VALUES ('archive_id', lower(hex(randomblob(16))));
CREATE TABLE products_roots (
    root       TEXT PRIMARY KEY,
    claimed_at TEXT NOT NULL
) WITHOUT ROWID;
ALTER TABLE plots ADD COLUMN drawn_from TEXT;
CREATE INDEX IF NOT EXISTS files_status ON files (status);
"""),
]
