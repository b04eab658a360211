"""Ingest of a whole simulated night: the logbook's frames get the right kind and filter."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from conftest import file_digests
from nota.archive.database import open_archive
from nota.pipeline.ingest import ingest
from nota.simulate import load_truth, simulate_run

FRAME_COLUMNS = "night, kind, filter, filter_ids, exptime, date_obs, airmass, naxis1, naxis2, binning, object"


def test_kinds_and_filters_are_the_logbook_s(small_night, db_path):
    truth = load_truth(small_night.directory)
    raw = sorted(small_night.directory.glob("*.fits"))
    before = file_digests(raw)
    db = open_archive(db_path)
    report = ingest(db, [small_night.directory])
    assert report.outcomes["new"] == len(truth["frames"]) == len(raw)
    got = {name: (kind, filt) for name, kind, filt in db.conn.execute("SELECT filename, kind, filter FROM frames")}
    for frame in truth["frames"]:
        assert got[frame["filename"]] == (frame["kind"], frame["filter"]), frame["filename"]
    # The lecture's quirks survive normalisation.
    obj, filt = db.conn.execute("SELECT object, filter FROM frames WHERE filename = 'ALrd120079.fits'").fetchone()
    assert obj == "HZ44 #79" and filt == "NII_658"
    assert db.conn.execute("SELECT night FROM frames GROUP BY night").fetchall() == [("2008-04-12",)]
    assert file_digests(raw) == before


def test_every_card_of_the_night_is_stored(small_night, db_path):
    db = open_archive(db_path)
    ingest(db, [small_night.directory])
    stored = dict(db.conn.execute(
        "SELECT f.name, count(*) FROM headers h JOIN files f USING (file_id) GROUP BY f.name"
    ))
    for path in sorted(small_night.directory.glob("*.fits"))[::9]:
        with fits.open(path) as hdul:
            assert stored[path.name] == sum(len(h.header) for h in hdul), path.name


def test_mef_and_simple_layouts_give_the_same_frames(small_night, tmp_path, db_path):
    (mef,) = simulate_run(tmp_path / "mef", nights=1, seed=1, small=True, mef=True, only=range(1, 70))
    db = open_archive(db_path)
    ingest(db, [small_night.directory, mef.directory])

    def frames(directory):
        return db.conn.execute(
            f"SELECT filename, {FRAME_COLUMNS} FROM frames WHERE path LIKE ? ORDER BY filename",
            (f"{directory}/%",),
        ).fetchall()

    simple_rows = {r[0]: r for r in frames(small_night.directory)}
    mef_rows = frames(mef.directory)
    assert len(mef_rows) == 69
    for row in mef_rows:
        assert row == simple_rows[row[0]]
    layouts = {r[0] for r in db.conn.execute("SELECT layout FROM files WHERE path LIKE ?", (f"{mef.directory}/%",))}
    assert layouts == {"mef"}
    with fits.open(mef.directory / "ALrd120050.fits") as a, fits.open(small_night.directory / "ALrd120050.fits") as b:
        assert np.array_equal(a[1].data, b[0].data)
