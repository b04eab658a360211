-- The nota archive: one SQLite file per archive.
--
-- This file is the one description of the database's shape. nota applies it to a new
-- database; an older database is brought up to date by the numbered migrations in
-- archive/migrations.py, and a test checks that both roads end in the same schema.
-- Times are ISO 8601 UTC text; *_json columns hold JSON.

PRAGMA user_version = 5;

-- Every file ingest has seen, good or bad.
CREATE TABLE files (
    file_id       INTEGER PRIMARY KEY,
    path          TEXT NOT NULL UNIQUE,   -- absolute path on disk
    name          TEXT NOT NULL,          -- file name without directory
    directory     TEXT NOT NULL,
    size          INTEGER,                -- bytes
    mtime_ns      INTEGER,                -- modification time, ns since the epoch
    content_hash  TEXT,                   -- XXH3-128 of the file's bytes (hex)
    layout        TEXT,                   -- simple | mef | tile-compressed, +gzip when gzipped
    n_hdus        INTEGER,
    data_hdu      INTEGER,                -- index of the HDU that holds the image
    status        TEXT NOT NULL CHECK (status IN ('ok', 'rejected', 'missing')),
    error         TEXT,                   -- why a file was rejected
    first_seen_at TEXT NOT NULL,
    indexed_at    TEXT NOT NULL,
    activity_id   INTEGER REFERENCES activities (activity_id)  -- the ingest that indexed it
);
CREATE INDEX files_content_hash ON files (content_hash);

-- One row per header-data unit.
CREATE TABLE hdus (
    file_id       INTEGER NOT NULL REFERENCES files (file_id) ON DELETE CASCADE,
    hdu           INTEGER NOT NULL,       -- 0 is the primary HDU
    name          TEXT,                   -- EXTNAME, or PRIMARY
    xtension      TEXT,                   -- PRIMARY, IMAGE, BINTABLE, ...
    bitpix        INTEGER,
    naxis1        INTEGER,
    naxis2        INTEGER,
    n_cards       INTEGER NOT NULL,
    header_offset INTEGER NOT NULL,       -- byte offset of the header in the (unzipped) file
    data_offset   INTEGER NOT NULL,
    data_size     INTEGER NOT NULL,       -- bytes, before padding
    PRIMARY KEY (file_id, hdu)
) WITHOUT ROWID;

-- Every header card, in order: COMMENT, HISTORY, blank and repeated keywords included.
CREATE TABLE headers (
    file_id   INTEGER NOT NULL REFERENCES files (file_id) ON DELETE CASCADE,
    hdu       INTEGER NOT NULL,
    position  INTEGER NOT NULL,           -- 1 for the first card of the HDU
    keyword   TEXT NOT NULL,              -- '' for blank cards; 'HIERARCH X Y' kept whole
    value,                                -- typed: TEXT, INTEGER, REAL; logicals as 1/0
    comment   TEXT,
    raw       TEXT,                       -- the value exactly as written in the card
    PRIMARY KEY (file_id, hdu, position)
) WITHOUT ROWID;

-- What users select on, normalised by the instrument profile at ingest.
CREATE TABLE observations (
    file_id     INTEGER PRIMARY KEY REFERENCES files (file_id) ON DELETE CASCADE,
    instrument  TEXT,                     -- profile name, e.g. ALFOSC; NULL if unknown
    night       TEXT,                     -- local date on which the night began
    kind        TEXT NOT NULL,            -- bias, dome_flat, sky_flat, standard, science, focus, unknown
    kind_rule   TEXT NOT NULL,            -- the profile rule that decided the kind
    filter      TEXT,                     -- filter name from the wheel ids; NULL when open
    filter_ids  TEXT,                     -- the wheel ids in the beam, e.g. '76' or '0/78'
    exptime     REAL,                     -- s
    date_obs    TEXT,                     -- start of exposure, UTC
    mjd         REAL,                     -- modified Julian date of date_obs
    airmass     REAL,
    naxis1      INTEGER,                  -- image columns
    naxis2      INTEGER,                  -- image rows
    binning     TEXT,                     -- 'XxY'
    object      TEXT,                     -- the observers' OBJECT
    imagetyp    TEXT,
    ra          REAL,                     -- deg, telescope pointing
    dec         REAL,                     -- deg
    gain        REAL,                     -- e-/ADU
    read_noise  REAL,                     -- e-
    profile      TEXT,                    -- the profile file that read the header (its key)
    profile_hash TEXT REFERENCES profiles (digest),  -- ... and which text of it
    ccd_temp     REAL,                    -- detector temperature, C (CCD-TEMP)
    site_latitude  REAL,                  -- deg north, from the header or the profile
    site_longitude REAL,                  -- deg east
    pixel_scale  REAL                     -- arcsec per (binned) pixel
);

-- The instrument profiles that read frames: which file, and its text, as it was.
CREATE TABLE profiles (
    digest      TEXT PRIMARY KEY,         -- hash of the text
    key         TEXT NOT NULL,            -- its name: alfosc, generic, or the user's file's stem
    name        TEXT,                     -- the instrument it describes ([instrument] name)
    source      TEXT NOT NULL,            -- where it was read from
    text        TEXT NOT NULL,
    first_used_at TEXT NOT NULL
);
CREATE INDEX observations_night_kind ON observations (night, kind, filter);

-- Provenance: every run of a step is an activity; what it used is in `used`, what it made
-- names it (products.activity_id, calibrations.activity_id). After W3C PROV's core.
CREATE TABLE activities (
    activity_id     INTEGER PRIMARY KEY,
    step            TEXT NOT NULL,        -- ingest, qc, groups, master_bias, reduced, ...
    parameters_json TEXT,                 -- the arguments the step ran with
    nota_version    TEXT,
    versions_json   TEXT,                 -- versions of the libraries that did the work
    host            TEXT,
    started_at      TEXT NOT NULL,        -- when the work started (the row is made then)
    ended_at        TEXT,                 -- when it ended; NULL while running or after a crash
    status          TEXT NOT NULL CHECK (status IN ('running', 'ok', 'partial', 'failed')),
    message         TEXT                  -- the outcome in words; a bug's traceback
);

-- What went wrong with which file, and when: one line a user can act on.
CREATE TABLE problems (
    problem_id  INTEGER PRIMARY KEY,
    activity_id INTEGER REFERENCES activities (activity_id),
    file_id     INTEGER REFERENCES files (file_id) ON DELETE CASCADE,
    path        TEXT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('error', 'warning')),
    problem     TEXT NOT NULL,
    at          TEXT NOT NULL
);

-- The frames users select from: one row per good file, normalised.
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

-- Selections: named SQL conditions over the frames view (and header('KEYWORD')).
CREATE TABLE selections (
    name        TEXT PRIMARY KEY,
    condition   TEXT NOT NULL,            -- a WHERE condition; may use :night, :filter, ...
    doc         TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL,            -- profile:<name> for shipped ones, user for yours
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Quality figures, measured once per file content on the profile's useful section.
CREATE TABLE qc (
    file_id            INTEGER PRIMARY KEY REFERENCES files (file_id) ON DELETE CASCADE,
    content_hash       TEXT,              -- the content these figures describe
    section            TEXT,              -- FITS section measured
    n_pixels           INTEGER,
    mean               REAL,              -- ADU, raw
    median             REAL,              -- ADU, raw
    std                REAL,              -- ADU, robust (1.4826 x MAD)
    min                REAL,              -- ADU
    max                REAL,              -- ADU
    saturated_fraction REAL,              -- of the section's pixels at or above saturation
    bias_level         REAL,              -- ADU, median of the overscan (BIASSEC)
    signal             REAL,              -- ADU above the overscan level: median - bias_level
    pattern_json       TEXT,              -- flats: coarse normalised illumination grid
    bright_sources     INTEGER,           -- flats: compact sources well above the sky (stars)
    measured_at        TEXT NOT NULL,
    activity_id        INTEGER REFERENCES activities (activity_id)
);

-- Why a frame may be unfit: each flag carries its figure and the profile's threshold.
CREATE TABLE flags (
    flag_id     INTEGER PRIMARY KEY,
    file_id     INTEGER NOT NULL REFERENCES files (file_id) ON DELETE CASCADE,
    flag        TEXT NOT NULL,            -- odd_shape, too_faint, too_bright, pattern_mismatch, ...
    figure      REAL,
    threshold   REAL,
    excludes    INTEGER NOT NULL,         -- 1: keeps the frame out of calibration groups
    message     TEXT NOT NULL,
    activity_id INTEGER REFERENCES activities (activity_id)  -- the qc run that raised it
);
CREATE INDEX flags_file ON flags (file_id);

-- The user's word, which outlives re-ingest and re-grouping.
CREATE TABLE overrides (
    file_id     INTEGER PRIMARY KEY REFERENCES files (file_id) ON DELETE CASCADE,
    action      TEXT NOT NULL CHECK (action IN ('include', 'exclude')),
    reason      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- Groups pinned to an explicit list of frames.
CREATE TABLE group_pins (
    group_key   TEXT NOT NULL,
    file_id     INTEGER NOT NULL REFERENCES files (file_id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (group_key, file_id)
);

-- Frames combined into one master: a master bias per night and readout, a master flat
-- per night, filter and flat kind.
CREATE TABLE calibration_groups (
    group_id    INTEGER PRIMARY KEY,
    group_key   TEXT NOT NULL UNIQUE,     -- stable name, e.g. master_flat/2008-04-12/R/sky_flat/550x513/4x4
    purpose     TEXT NOT NULL,            -- master_bias, master_dark, master_flat
    night       TEXT NOT NULL,
    instrument  TEXT,
    filter      TEXT,
    flat_kind   TEXT,                     -- sky_flat, dome_flat (master_flat only)
    naxis1      INTEGER,
    naxis2      INTEGER,
    binning     TEXT,
    selection   TEXT,                     -- the selection its candidates came from
    n_members   INTEGER NOT NULL,
    n_included  INTEGER NOT NULL,
    usable      INTEGER NOT NULL,         -- 1 when it has enough good frames
    preferred   INTEGER NOT NULL,         -- 1 for the group frames of its night and filter get
    note        TEXT NOT NULL,            -- why (not) usable / preferred, in words
    members_hash TEXT NOT NULL,           -- identifies the included membership
    built_at    TEXT NOT NULL,
    activity_id INTEGER REFERENCES activities (activity_id),
    master_bias_group_id INTEGER REFERENCES calibration_groups (group_id) ON DELETE SET NULL,  -- a flat or dark group's bias
    master_bias_rule TEXT,                -- the rule that chose it (as a frame's association), or why none
    master_dark_group_id INTEGER REFERENCES calibration_groups (group_id) ON DELETE SET NULL,  -- a flat group's dark
    master_dark_rule TEXT,
    exptime     REAL,                     -- s: a dark group's exposure time
    ccd_temp    REAL                      -- C: a dark group's median detector temperature
);

CREATE TABLE group_members (
    group_id    INTEGER NOT NULL REFERENCES calibration_groups (group_id) ON DELETE CASCADE,
    file_id     INTEGER NOT NULL REFERENCES files (file_id) ON DELETE CASCADE,
    included    INTEGER NOT NULL,
    reason      TEXT NOT NULL,            -- which flag or override decided, or 'good'
    PRIMARY KEY (group_id, file_id)
) WITHOUT ROWID;

-- Which master each frame to be calibrated gets, and the rule that decided.
CREATE TABLE associations (
    file_id     INTEGER NOT NULL REFERENCES files (file_id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,            -- master_bias, master_dark, master_flat
    group_id    INTEGER REFERENCES calibration_groups (group_id) ON DELETE SET NULL,
    rule        TEXT NOT NULL,            -- same night / nearest night within N days / none: why
    PRIMARY KEY (file_id, purpose)
) WITHOUT ROWID;

-- Products: masters and reduced frames, registered only once their file is complete.
CREATE TABLE products (
    product_id      INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,        -- master_bias, master_flat, reduced, stack
    night           TEXT,
    filter          TEXT,
    path            TEXT NOT NULL,
    content_hash    TEXT NOT NULL,        -- XXH3-128 of the product file
    size            INTEGER NOT NULL,
    recipe_key      TEXT NOT NULL,        -- step, parameters, code version and inputs, hashed
    step            TEXT NOT NULL,
    parameters_json TEXT NOT NULL,
    code_version    INTEGER NOT NULL,
    group_id        INTEGER REFERENCES calibration_groups (group_id) ON DELETE SET NULL,
    file_id         INTEGER REFERENCES files (file_id),  -- the raw frame of a reduced product
    activity_id     INTEGER REFERENCES activities (activity_id),  -- the run that made it
    current         INTEGER NOT NULL,     -- 0 once a rebuild superseded it
    created_at      TEXT NOT NULL,
    exptime         REAL,                 -- s; a stack's: the sum of its exposures
    airmass         REAL,                 -- mid-exposure, from pointing and time; a stack's: exposure-weighted mean
    photzp          REAL,                 -- header PHOTZP: AB mag = -2.5 log10(ADU) + photzp, when calibrated
    cosmic_pixels   INTEGER,              -- reduced frame: pixels cleaned of cosmic rays (L.A.Cosmic, CRMASK)
    wcs_status      TEXT,                 -- reduced frame: 'solved', or why not (NOTAWCS); NULL when not tried
    wcs_rms_arcsec  REAL,                 -- reduced frame: astrometric residual rms of matched stars
    wcs_matched     INTEGER               -- reduced frame: stars matched to the reference catalogue
);
CREATE INDEX products_recipe ON products (recipe_key);
CREATE INDEX products_path ON products (path);

-- What each activity used: raw files (with the content they had) and products. A
-- product's inputs are what its activity used; ingest lists every file it saw.
CREATE TABLE used (
    used_id      INTEGER PRIMARY KEY,
    activity_id  INTEGER NOT NULL REFERENCES activities (activity_id) ON DELETE CASCADE,
    role         TEXT NOT NULL,           -- member, raw, master_bias, master_flat, exposure, standard,
                                          -- reduced, stack; for ingest: new, unchanged, changed, renamed, rejected
    file_id      INTEGER REFERENCES files (file_id),
    product_id   INTEGER REFERENCES products (product_id),
    content_hash TEXT,                    -- the content used
    included     INTEGER NOT NULL DEFAULT 1,  -- members left out stay listed, with why
    reason       TEXT                     -- why left out; for ingest, e.g. the old path of a renamed file
);
CREATE INDEX used_activity ON used (activity_id);
CREATE INDEX used_file ON used (file_id);
CREATE INDEX used_product ON used (product_id);

-- What each product was made from: what the activity that made it used.
CREATE VIEW product_inputs AS
SELECT p.product_id, u.role, u.file_id, u.product_id AS input_product_id, u.content_hash, u.included,
       u.reason, u.used_id
FROM products AS p JOIN used AS u ON u.activity_id = p.activity_id;

-- A product's ancestry, one row per (product, ancestor) pair at any depth.
CREATE VIEW lineage AS
WITH RECURSIVE ancestry (product_id, depth, role, file_id, input_product_id) AS (
    SELECT product_id, 1, role, file_id, input_product_id FROM product_inputs WHERE included = 1
    UNION ALL
    SELECT a.product_id, a.depth + 1, i.role, i.file_id, i.input_product_id
    FROM ancestry AS a JOIN product_inputs AS i ON i.product_id = a.input_product_id
    WHERE i.included = 1
)
SELECT product_id, depth, role, file_id, input_product_id FROM ancestry;

-- Pictures: a preview of every frame and product, made when nota reads its pixels.
CREATE TABLE previews (
    preview_id   INTEGER PRIMARY KEY,
    file_id      INTEGER REFERENCES files (file_id) ON DELETE CASCADE,
    product_id   INTEGER REFERENCES products (product_id) ON DELETE CASCADE,
    size         TEXT NOT NULL,           -- thumb (128 px) or view (384 px)
    content_hash TEXT,                    -- the content pictured
    png          BLOB NOT NULL,
    made_at      TEXT NOT NULL,
    UNIQUE (file_id, product_id, size)
);
CREATE INDEX previews_file ON previews (file_id, size);
CREATE INDEX previews_product ON previews (product_id, size);

-- Plots a person would rather look at than read: bias histograms, flat patterns, masters,
-- the night's statistics against time.
CREATE TABLE plots (
    plot_id     INTEGER PRIMARY KEY,
    subject     TEXT NOT NULL,            -- bias_histograms, flat_patterns, master, night_statistics
    title       TEXT NOT NULL,
    night       TEXT,
    group_id    INTEGER REFERENCES calibration_groups (group_id) ON DELETE CASCADE,
    product_id  INTEGER REFERENCES products (product_id) ON DELETE CASCADE,
    calibration_id INTEGER REFERENCES calibrations (calibration_id) ON DELETE CASCADE,
    png         BLOB NOT NULL,
    made_at     TEXT NOT NULL,
    drawn_from  TEXT                      -- digest of what it was drawn from: unchanged, not redrawn
);

-- The photometric solution of each night and filter, from its standard stars:
-- m_catalogue - m_instrumental = zp - k * airmass, m_instrumental = -2.5 log10(ADU/s)
-- on the reduced frames.
CREATE TABLE calibrations (
    calibration_id   INTEGER PRIMARY KEY,
    night            TEXT NOT NULL,
    filter           TEXT NOT NULL,
    magnitude_system TEXT NOT NULL,       -- AB
    zp               REAL,                -- mag
    zp_err           REAL,
    k                REAL,                -- extinction, mag/airmass
    k_err            REAL,
    cov_zp_k         REAL,
    colour_term      REAL,                -- mag per mag of colour_index; NULL when not fitted (method says why)
    rms              REAL,                -- of the standards used, mag
    n_used           INTEGER,
    n_rejected       INTEGER,
    airmass_min      REAL,
    airmass_max      REAL,
    method           TEXT NOT NULL,       -- k fitted, or fixed from the site curve and why
    recipe_key       TEXT NOT NULL,       -- the standards' products and the code version, hashed
    activity_id      INTEGER REFERENCES activities (activity_id),
    current          INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    colour_term_err  REAL,
    colour_index     TEXT                 -- the catalogue colour the term multiplies, e.g. 'B-V'
);

CREATE TABLE standard_measurements (
    calibration_id   INTEGER NOT NULL REFERENCES calibrations (calibration_id) ON DELETE CASCADE,
    product_id       INTEGER REFERENCES products (product_id),
    star             TEXT,
    airmass          REAL,
    m_instrumental   REAL,                -- -2.5 log10(ADU/s)
    m_instrumental_err REAL,
    m_catalogue      REAL,                -- AB, synthetic photometry of the CALSPEC spectrum
    used             INTEGER NOT NULL,
    note             TEXT
);

-- Sources measured on a reduced frame (nota photometry), calibrated with its night's solution.
CREATE TABLE sources (
    source_id        INTEGER PRIMARY KEY,
    product_id       INTEGER NOT NULL REFERENCES products (product_id) ON DELETE CASCADE,
    file_id          INTEGER REFERENCES files (file_id),
    x                REAL,                -- 0-based pixel of the reduced frame
    y                REAL,
    ra               REAL,                -- deg, from the frame's solved WCS (NULL when unsolved)
    dec              REAL,
    flux             REAL,                -- ADU in the aperture, sky subtracted
    flux_err         REAL,
    mag_instrumental REAL,                -- -2.5 log10(ADU/s)
    mag              REAL,                -- calibrated: mag_instrumental + zp - k * airmass
    mag_err          REAL,                -- photometric and calibration errors together
    magnitude_system TEXT,                -- AB
    line_flux        REAL,                -- narrow bands: erg/s/cm2 in the passband
    flags            TEXT,
    calibration_id   INTEGER REFERENCES calibrations (calibration_id),
    activity_id      INTEGER REFERENCES activities (activity_id)
);
CREATE INDEX sources_product ON sources (product_id);

-- Who this archive is: an id its products roots are claimed with, so two archives never
-- write into one folder (archive/ownership.py).
CREATE TABLE archive_info (
    key   TEXT PRIMARY KEY,               -- archive_id, last_check_at, ...
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO archive_info (key, value) VALUES ('archive_id', lower(hex(randomblob(16))));

-- The folders this archive's products are written in: each holds a marker naming it.
CREATE TABLE products_roots (
    root       TEXT PRIMARY KEY,          -- absolute path
    claimed_at TEXT NOT NULL
) WITHOUT ROWID;

-- The frames view keeps status = 'ok' files: its counts and facets read this narrow index,
-- not every file row (bench/scale.py: a fifth of the frames page's SQL at 12,000 frames).
CREATE INDEX IF NOT EXISTS files_status ON files (status);
