"""nota.open: the archive from Python, each method against an independent truth.

The truth is SQL on the same archive through plain sqlite3, ``CCDData.read`` and
``astropy.io.fits`` on the product files, ``nota calibration --json`` and ``nota reduce``
through the CLI, and the simulator's own catalogue.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.table import Table
from typer.testing import CliRunner

import nota
from nota.archive.products import list_products
from nota.archive.database import open_readonly
from nota.cli import app
from nota.errors import DatabaseError, NotaError, QueryError

NIGHT = "2008-04-12"


@pytest.fixture(scope="module")
def reduced(_reduced):
    """The reduced small night (shared with other tests: nothing here may change it)."""
    db_path, _ = _reduced
    return Path(db_path)


@pytest.fixture(scope="module")
def archive(reduced):
    opened = nota.open(reduced)
    yield opened
    opened.close()


def connect(db: Path) -> sqlite3.Connection:
    """Plain sqlite3, read-only: the truth must not touch the archive either."""
    return sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro", uri=True)


def sql(db: Path, statement: str, params=()) -> list[tuple]:
    conn = connect(db)
    try:
        return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def values(table: Table) -> list[tuple]:
    """A table's rows as plain tuples, masked values as None (as sqlite3 gives NULL)."""
    out = []
    for row in table:
        out.append(tuple(None if np.ma.is_masked(v) else (v.item() if hasattr(v, "item") else v) for v in row))
    return out


def digest(db: Path) -> str:
    """Everything the archive holds, as SQL text, and its file's bytes."""
    conn = connect(db)
    dump = "\n".join(conn.iterdump())
    conn.close()
    return hashlib.sha256(dump.encode()).hexdigest() + hashlib.sha256(db.read_bytes()).hexdigest()


def test_import_nota_stays_light_and_open_reads_nothing_yet(tmp_path):
    code = ("import sys, nota; heavy = sorted({m.split('.')[0] for m in sys.modules} & {'astropy', 'numpy'});"
            " print(heavy, callable(nota.open))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True"
    missing = tmp_path / "none.db"
    opened = nota.open(missing)  # opening creates nothing: the first read says there is no archive
    assert not missing.exists()
    with pytest.raises(DatabaseError, match="no archive here"):
        opened.frames()
    assert not missing.exists()


def test_frames_are_rows_of_the_frames_view(archive, reduced):
    table = archive.frames(kind="science", filter="R", night=NIGHT)
    conn = connect(reduced)
    cursor = conn.execute("SELECT * FROM frames WHERE kind = 'science' AND filter = 'R' AND night = ?"
                          " ORDER BY night, date_obs, filename", (NIGHT,))
    expected = cursor.fetchall()
    assert table.colnames == [d[0] for d in cursor.description]
    conn.close()
    assert len(expected) >= 3 and values(table) == expected
    assert values(archive.frames(kind="science", filter="76")) == expected  # the wheel id names it too
    assert len(archive.frames()) == sql(reduced, "SELECT count(*) FROM frames")[0][0]


def test_frames_by_header_values_as_the_lecture_filters_them(archive, reduced):
    # The lecture's ic1.files_filtered(FBFLTID=78, exptime=3.5) and EXPTIME > 600.
    table = archive.frames(where="header('FBFLTID') = 78 AND exptime = :t", t=3.5)
    expected = sql(reduced, "SELECT f.filename FROM frames f JOIN headers h USING (file_id)"
                            " WHERE h.keyword = 'FBFLTID' AND h.value = 78 AND f.exptime = 3.5 ORDER BY filename")
    assert list(table["filename"]) == [r[0] for r in expected] == ["ALrd120046.fits"]
    long = archive.frames(kind="science", where="exptime > 600")
    assert set(long["filename"]) == {r[0] for r in sql(
        reduced, "SELECT filename FROM frames WHERE kind = 'science' AND exptime > 600")}
    assert len(long) > 0 and all(long["exptime"] > 600)
    with pytest.raises(QueryError):
        archive.frames(where="no_such_column = 1")


def test_select_runs_a_stored_selection_with_its_parameters(archive, reduced):
    (condition,), = sql(reduced, "SELECT condition FROM selections WHERE name = 'sky_flats'")
    table = archive.select("sky_flats", night=NIGHT, filter="R")
    expected = sql(reduced, f"SELECT filename FROM frames WHERE ({condition}) ORDER BY night, date_obs, filename",
                   {"night": NIGHT, "filter": "R"})
    assert list(table["filename"]) == [r[0] for r in expected] and len(table) >= 6
    assert table.meta["selection"] == "sky_flats" and "sky flats" in table.meta["doc"].lower()
    assert len(archive.select("sky_flats")) > len(table)  # parameters not given are NULL: all nights, filters
    with pytest.raises(QueryError, match="not used by this selection"):
        archive.select("sky_flats", exptime=3)
    with pytest.raises(QueryError, match="no selection named"):
        archive.select("no_such_selection")


def test_products_are_list_products(archive, reduced):
    table = archive.products()
    with open_readonly(reduced) as db:
        expected = list_products(db)
    assert list(table["id"]) == [p["id"] for p in expected]
    assert list(table["recipe_key"]) == [p["recipe_key"] for p in expected]
    assert [list(v) for v in table["input_files"]] == [p["input_files"] for p in expected]
    flats = archive.products(kind="master_flat")
    assert sorted(flats["id"]) == sorted(r[0] for r in sql(
        reduced, "SELECT product_id FROM products WHERE current = 1 AND kind = 'master_flat'"))
    assert set(flats["filter"]) == {"R", "NII_658", "661_5"}


def test_read_a_reduced_frame_is_ccddata_read_of_its_file(archive, reduced):
    (path, key, product_id), = sql(reduced, "SELECT p.path, p.recipe_key, p.product_id FROM products p"
                                            " WHERE p.current = 1 AND p.path LIKE '%/fzt_ALrd120103.fits'")
    ccd = archive.read("fzt_ALrd120103.fits")
    truth = CCDData.read(path, hdu_uncertainty="UNCERT", hdu_mask="MASK")
    np.testing.assert_array_equal(ccd.data, truth.data)
    np.testing.assert_array_equal(ccd.uncertainty.array, truth.uncertainty.array)
    np.testing.assert_array_equal(ccd.mask, truth.mask)
    assert ccd.header == truth.header and ccd.unit == truth.unit == "adu"
    with fits.open(path) as hdul:  # and what is in the file, read without CCDData
        np.testing.assert_array_equal(ccd.data, hdul[0].data)
        np.testing.assert_array_equal(ccd.uncertainty.array, hdul["UNCERT"].data)
        np.testing.assert_array_equal(ccd.mask, hdul["MASK"].data.astype(bool))
    assert ccd.header["NOTAKEY"] == key and ccd.mask.any() and (ccd.uncertainty.array > 0).all()
    for other in (product_id, str(product_id), path, key):  # every name nota lineage takes
        np.testing.assert_array_equal(archive.read(other).data, ccd.data)


def test_read_a_raw_frame_is_its_pixels_in_adu(archive, reduced):
    (path,), = sql(reduced, "SELECT path FROM frames WHERE filename = 'ALrd120103.fits'")
    raw = archive.read("ALrd120103.fits")
    with fits.open(path) as hdul:
        np.testing.assert_array_equal(raw.data, hdul[0].data)
        assert raw.header["OBJECT"] == hdul[0].header["OBJECT"] == "GC4496A R 3x300s"
    assert raw.unit == "adu" and raw.data.max() == 65535  # saturated, as the lecture's 103
    np.testing.assert_array_equal(archive.read(path).data, raw.data)
    with pytest.raises(NotaError, match="no product"):
        archive.read("no_such_frame.fits")


def test_lineage_is_the_tree_of_the_lineage_view(archive, reduced):
    table = archive.lineage("master_flat_2008-04-12_NII_658_sky_flat_4x4.fits")
    (product_id,), = sql(reduced, "SELECT product_id FROM products WHERE current = 1"
                                  " AND path LIKE '%/master_flat_2008-04-12_NII_658_sky_flat_4x4.fits'")
    assert table["depth"][0] == 0 and table["id"][0] == product_id
    # Every included node below the top is a (depth, role, ancestor) pair of the view.
    below = [(int(r["depth"]), r["role"], None if np.ma.is_masked(r["file_id"]) else int(r["file_id"]),
              None if np.ma.is_masked(r["id"]) else int(r["id"])) for r in table[1:] if r["included"]]
    view = sql(reduced, "SELECT depth, role, file_id, input_product_id FROM lineage WHERE product_id = ?",
               (product_id,))
    key = lambda r: tuple("" if v is None else str(v) for v in r)  # noqa: E731
    assert sorted(below, key=key) == sorted(view, key=key)
    # The first two NB#78 sky flats are left out, as the lecture leaves them out, and say why.
    left_out = table[~table["included"]]
    assert list(left_out["name"]) == ["ALrd120044.fits", "ALrd120045.fits"]
    assert all(reason.startswith("too_faint") for reason in left_out["reason"])
    expected = sql(reduced, "SELECT f.name FROM group_members m JOIN files f USING (file_id)"
                            " JOIN calibration_groups g USING (group_id) WHERE g.purpose = 'master_flat'"
                            " AND g.filter = 'NII_658' AND g.flat_kind = 'sky_flat' AND m.included = 0 ORDER BY f.name")
    assert [r[0] for r in expected] == list(left_out["name"])


def test_calibration_is_nota_calibration_json(archive, reduced):
    out = CliRunner().invoke(app, ["--db", str(reduced), "calibration", "--json"])
    assert out.exit_code == 0, out.output
    (expected,) = [c for c in json.loads(out.stdout) if c["night"] == NIGHT and c["filter"] == "R"]
    solution = archive.calibration(NIGHT, "R")
    for name in ("id", "night", "filter", "magnitude_system", "zp", "zp_err", "k", "k_err", "colour_term",
                 "colour_term_err", "colour_index", "rms", "n_used", "n_rejected", "airmass_min", "airmass_max",
                 "method"):
        assert getattr(solution, name) == expected[name], name
    assert solution.stars_used == tuple((s["star"], s["frame"]) for s in expected["stars_used"])
    (cov,), = sql(reduced, "SELECT cov_zp_k FROM calibrations WHERE calibration_id = ?", (expected["id"],))
    assert solution.cov_zp_k == cov
    with pytest.raises(NotaError, match="no photometric calibration"):
        archive.calibration(NIGHT, "B")


def test_a_calibrated_magnitude_is_the_photzp_one_and_the_truth(archive, small_night):
    from nota.reduce.aperture import measure_star
    from nota.simulate import load_truth

    ccd = archive.read("fzt_ALrd120103.fits")
    solution = archive.calibration(NIGHT, "R")
    (section,) = [re.search(r"trimmed \[(\d+):\d+,(\d+):\d+\]", h) for h in ccd.header["HISTORY"] if "trimmed" in h]
    x1, y1 = int(section.group(1)), int(section.group(2))
    frame = next(f for f in load_truth(small_night.directory)["frames"] if f["filename"] == "ALrd120103.fits")
    checked = 0
    for star in (s for s in frame["stars"] if 15.5 < s["mag"] < 17.0):
        m = measure_star(ccd, star["x"] - x1, star["y"] - y1)
        if m.flags:
            continue
        mag = solution.magnitude(m.mag, ccd.header["PHOTAIRM"])
        # The same number the pipeline's PHOTZP gives (PHOTZP is written to 4 decimals) ...
        assert mag == pytest.approx(-2.5 * np.log10(m.flux) + ccd.header["PHOTZP"], abs=2e-4)
        # ... and the star's true AB magnitude, within its photometric and calibration errors.
        error = np.hypot(m.mag_err, solution.magnitude_error(ccd.header["PHOTAIRM"]))
        assert abs(mag - star["mag"]) < max(4 * error, 0.03), star["id"]
        checked += 1
    assert checked >= 5
    assert 0 < solution.magnitude_error(1.2) < 0.05


def test_reads_change_nothing_and_writes_are_refused(reduced):
    before = digest(reduced)
    with nota.open(reduced) as opened:
        opened.frames(kind="bias")
        opened.frames(where="object REGEXP 'flat'")
        opened.select("science", night=NIGHT)
        opened.selections()
        opened.products(kind="reduced")
        opened.read("fzt_ALrd120103.fits")
        opened.read("ALrd120103.fits")
        opened.lineage("fzt_ALrd120103.fits")
        opened.calibration(NIGHT, "R")
        opened.query("SELECT count(*) FROM headers")
        for statement in ("DELETE FROM selections", "UPDATE products SET current = 0",
                          "CREATE TABLE mine (x)", "ATTACH DATABASE ':memory:' AS other"):
            with pytest.raises(QueryError, match="refused|read-only"):
                opened.query(statement)
        with pytest.raises(sqlite3.DatabaseError):  # the connection itself, not only the guard
            opened._db.conn.execute("INSERT INTO overrides (file_id, action, reason) VALUES (1, 'exclude', 'x')")
    assert digest(reduced) == before


def test_ingest_writes_and_select_works_before_any_grouping(small_night, tmp_path):
    db = tmp_path / "fresh.db"
    opened = nota.open(db)
    report = opened.ingest(small_night.directory)
    n_files = len(list(Path(small_night.directory).glob("*.fits")))
    assert report.outcomes["new"] == n_files == sql(db, "SELECT count(*) FROM files WHERE status = 'ok'")[0][0]
    assert sql(db, "SELECT count(*) FROM selections")[0][0] == 0  # ingest stores none; the profile's still run
    biases = opened.select("biases", night=NIGHT)
    assert list(biases["filename"]) == [r[0] for r in sql(
        db, "SELECT filename FROM frames WHERE kind = 'bias' ORDER BY night, date_obs, filename")]
    assert len(biases) == 10
    assert opened.ingest(small_night.directory).outcomes["unchanged"] == n_files
    opened.close()


def test_reduce_makes_what_nota_reduce_would(night_db, _reduced):
    """The command's own plan (--dry-run) lists what archive.reduce then builds, and after it
    the command finds nothing to do; the products are those of the session's reduction."""
    runner = CliRunner()
    planned = runner.invoke(app, ["--db", str(night_db), "reduce", "--dry-run", "--json"])
    assert planned.exit_code == 0, planned.output
    to_build = json.loads(planned.stdout)["to_build"]
    opened = nota.open(night_db)
    assert {t.key for t in opened.reduce(dry_run=True).tasks} == {t["key"] for t in to_build}
    report = opened.reduce(jobs=2)
    assert not report.failed, report.failed
    assert sorted((b["kind"], b["path"], b["key"]) for b in report.built) == sorted(
        (t["kind"], t["output"], t["key"]) for t in to_build if t["kind"] != "photometric_calibration")
    assert {c["filter"] for c in report.calibrations} == {"R", "NII_658", "661_5"}
    again = runner.invoke(app, ["--db", str(night_db), "reduce", "--dry-run", "--json"])
    assert json.loads(again.stdout)["to_build"] == []
    assert opened.reduce().built == []
    # The same recipes as the session's reduction of the same night (run_plan directly).
    reference, _ = _reduced
    key_of = "SELECT kind, recipe_key FROM products WHERE current = 1 ORDER BY kind, recipe_key"
    assert sql(night_db, key_of) == sql(reference, key_of)
    assert len(opened.products(kind="reduced")) == len(opened.frames(where="kind IN ('science', 'standard')"))
    opened.close()


def test_reduce_takes_the_commands_defaults(night_db, tmp_path, monkeypatch):
    """NOTA_PRODUCTS chooses where products go for archive.reduce as for nota reduce; an
    argument overrides it."""
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("NOTA_PRODUCTS", str(elsewhere))
    cli = CliRunner().invoke(app, ["--db", str(night_db), "reduce", "--dry-run", "--json"])
    assert cli.exit_code == 0, cli.output
    planned = sorted(t["output"] for t in json.loads(cli.stdout)["to_build"] if t["output"].endswith(".fits"))
    opened = nota.open(night_db)
    outputs = sorted(t.output for t in opened.reduce(dry_run=True).tasks if t.output.endswith(".fits"))
    assert outputs == planned and len(outputs) > 50
    assert all(o.startswith(str(elsewhere) + "/") for o in outputs)
    chosen = tmp_path / "chosen"
    assert all(t.output.startswith(str(chosen) + "/")
               for t in opened.reduce(dry_run=True, products=chosen).tasks if t.output.endswith(".fits"))
