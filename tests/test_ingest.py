"""Ingest: every card stored, bad files rejected one by one, re-runs cheap and safe."""

from __future__ import annotations

import gzip
import os
import shutil

import numpy as np
from astropy.io import fits
from typer.testing import CliRunner

from conftest import file_digests
from nota.pipeline.ingest import ingest
from nota.cli import app


def count(db, sql, *params):
    return db.conn.execute(sql, params).fetchone()[0]


def test_every_card_is_stored(archive, write_frame, tmp_path):
    simple = write_frame("ALrd120001.fits")
    mef = write_frame("ALrd120002.fits", mef=True)
    report = ingest(archive, [tmp_path / "raw"])
    assert report.outcomes["new"] == 2 and not report.problems
    for path in (simple, mef):
        with fits.open(path) as hdul:
            expected = [len(h.header) for h in hdul]
        stored = [
            r[0]
            for r in archive.conn.execute(
                "SELECT count(*) FROM headers JOIN files USING (file_id) WHERE path = ?"
                " GROUP BY hdu ORDER BY hdu",
                (str(path),),
            )
        ]
        assert stored == expected
    layouts = dict(archive.conn.execute("SELECT name, layout FROM files"))
    assert layouts == {"ALrd120001.fits": "simple", "ALrd120002.fits": "mef"}


def cards_stored(db, path) -> int:
    return count(db, "SELECT count(*) FROM headers JOIN files USING (file_id) WHERE path = ?", str(path))


def test_every_card_is_stored_in_each_archive_of_one_process(write_frame, tmp_path):
    """Readers send each distinct card once per run: a second run, elsewhere, starts afresh."""
    from nota.archive.database import open_archive

    paths = [write_frame("ALrd120001.fits"), write_frame("ALrd120002.fits", mef=True)]
    expected = [sum(len(h.header) for h in fits.open(p)) for p in paths]
    for name in ("one.db", "two.db"):
        with open_archive(tmp_path / name) as archive:
            ingest(archive, [tmp_path / "raw"], jobs=1)
            assert [cards_stored(archive, p) for p in paths] == expected


def test_cards_first_read_in_a_file_not_stored_again_still_reach_the_next(
    archive, write_frame, tmp_path
):
    """A touched, unchanged file is read but not re-stored; a new file of the same header
    (other pixels) shares all its cards."""
    path = write_frame("ALrd120001.fits")
    ingest(archive, [tmp_path / "raw"])
    other = bytearray(path.read_bytes())
    other[-1] ^= 1
    (tmp_path / "raw" / "copy.fits").write_bytes(bytes(other))
    os.utime(path, ns=(1, 1))
    report = ingest(archive, [tmp_path / "raw"])
    assert report.outcomes == {"new": 1, "unchanged": 1}
    assert cards_stored(archive, tmp_path / "raw" / "copy.fits") == cards_stored(archive, path)


def test_simple_and_mef_give_the_same_frame(archive, write_frame, tmp_path):
    write_frame("a.fits", OBJECT="Sky Flat evening", IMAGETYP="OBJECT", EXPTIME=5.0, FBFLTID=78, ALFLTID=0)
    write_frame("b.fits", mef=True, OBJECT="Sky Flat evening", IMAGETYP="OBJECT", EXPTIME=5.0, FBFLTID=78, ALFLTID=0)
    ingest(archive, [tmp_path / "raw"])
    rows = archive.conn.execute(
        "SELECT night, instrument, kind, filter, exptime, date_obs, mjd, naxis1, naxis2, binning,"
        " object FROM frames ORDER BY filename"
    ).fetchall()
    assert len(rows) == 2 and rows[0] == rows[1]
    assert rows[0][2:4] == ("sky_flat", "NII_658")


def test_reingest_skips_unchanged_and_records_it(archive, write_frame, tmp_path):
    for i in range(3):
        write_frame(f"ALrd12000{i}.fits")
    ingest(archive, [tmp_path / "raw"])
    cards = count(archive, "SELECT count(*) FROM headers")
    again = ingest(archive, [tmp_path / "raw"])
    assert dict(again.outcomes) == {"unchanged": 3}
    assert count(archive, "SELECT count(*) FROM headers") == cards
    assert count(archive, "SELECT count(*) FROM files") == 3
    assert count(archive, "SELECT count(*) FROM activities WHERE step = 'ingest' AND status = 'ok'") == 2
    assert count(archive, "SELECT count(*) FROM used WHERE activity_id = ? AND role = 'unchanged'", again.activity_id) == 3


def test_changed_file_is_reindexed_and_the_change_recorded(archive, write_frame, tmp_path):
    path = write_frame("ALrd120001.fits", OBJECT="Bias afternoon")
    ingest(archive, [tmp_path / "raw"])
    (file_id, old_hash), = archive.conn.execute("SELECT file_id, content_hash FROM files")
    path.unlink()
    write_frame("ALrd120001.fits", OBJECT="Bias evening")
    report = ingest(archive, [tmp_path / "raw"])
    assert report.outcomes["changed"] == 1
    assert count(archive, "SELECT count(*) FROM files") == 1
    assert archive.conn.execute("SELECT object FROM frames").fetchone()[0] == "Bias evening"
    assert count(archive, "SELECT count(*) FROM headers WHERE keyword = 'OBJECT'") == 1
    note = archive.conn.execute("SELECT reason FROM used WHERE role = 'changed'").fetchone()[0]
    assert old_hash in note
    assert archive.conn.execute("SELECT file_id FROM files").fetchone()[0] == file_id


def test_renamed_file_keeps_its_identity(archive, write_frame, tmp_path):
    path = write_frame("ALrd120001.fits")
    ingest(archive, [tmp_path / "raw"])
    file_id = archive.conn.execute("SELECT file_id FROM files").fetchone()[0]
    moved = path.with_name("AL12001.fits")
    os.rename(path, moved)
    report = ingest(archive, [tmp_path / "raw"])
    assert report.outcomes["renamed"] == 1
    assert archive.conn.execute("SELECT file_id, path FROM files").fetchall() == [(file_id, str(moved))]
    reason, used_file, used_hash = archive.conn.execute(
        "SELECT reason, file_id, content_hash FROM used WHERE role = 'renamed'"
    ).fetchone()
    assert str(path) in reason
    assert (used_file, used_hash) == archive.conn.execute("SELECT file_id, content_hash FROM files").fetchone()


def test_deleted_file_is_marked_missing(archive, write_frame, tmp_path):
    path = write_frame("ALrd120001.fits")
    write_frame("ALrd120002.fits")
    ingest(archive, [tmp_path / "raw"])
    path.unlink()
    report = ingest(archive, [tmp_path / "raw"])
    assert report.outcomes["missing"] == 1
    assert count(archive, "SELECT count(*) FROM frames") == 1


def test_ingesting_one_night_leaves_the_others_alone(archive, write_frame, tmp_path):
    """Ingest reads the rows of the directories it is given only: a night whose name starts
    like another's (N1, N10) is not the other, and what is missing elsewhere stays as it was."""
    write_frame("N1/ALrd120001.fits")
    gone = write_frame("N10/ALrd120002.fits")
    ingest(archive, [tmp_path / "raw"])
    gone.unlink()
    report = ingest(archive, [tmp_path / "raw" / "N1"])
    assert report.outcomes == {"unchanged": 1}
    assert count(archive, "SELECT count(*) FROM files WHERE status = 'ok'") == 2
    assert ingest(archive, [tmp_path / "raw" / "N10"]).outcomes["missing"] == 1


def test_a_copy_in_another_night_is_found_by_its_content(archive, write_frame, tmp_path):
    """Copies are told by content across the whole archive, not only the night ingested."""
    original = write_frame("N1/ALrd120001.fits")
    ingest(archive, [tmp_path / "raw" / "N1"])
    (tmp_path / "raw" / "N2").mkdir()
    shutil.copy(original, tmp_path / "raw" / "N2" / "ALrd120001.fits")
    report = ingest(archive, [tmp_path / "raw" / "N2"])
    assert report.outcomes == {"rejected": 1} and "a copy" in report.problems[0].problem


def test_a_copy_is_looked_up_through_the_hash_index(archive):
    """One index search per new file, whatever the archive's size (not a scan of its files)."""
    from nota.archive.files import IndexedContents

    plan = " ".join(str(row) for row in archive.conn.execute("EXPLAIN QUERY PLAN " + IndexedContents.SQL, ("x",)))
    assert "files_content_hash" in plan, plan


def make_bad_files(write_frame, tmp_path):
    """One file for each way input goes wrong; returns {name: expected words}."""
    raw = tmp_path / "raw"
    good = write_frame("ALrd120001.fits")
    (raw / "empty.fits").write_bytes(b"")
    (raw / "notfits.fits").write_text("SIMPLE? no, a text file someone named .fits\n" * 100)
    data = good.read_bytes()
    (raw / "truncated.fits").write_bytes(data[: len(data) // 2])
    (raw / "noend.fits").write_bytes(data[:2880].replace(b"END" + b" " * 77, b"X" * 80))
    (raw / "badgzip.fits.gz").write_bytes(b"\x1f\x8b garbage")
    write_frame("nonascii.fits")
    raw_bytes = bytearray((raw / "nonascii.fits").read_bytes())
    pos = raw_bytes.index(b"written by the nota")
    raw_bytes[pos : pos + 7] = "wr\xeftten".encode("latin-1")
    (raw / "nonascii.fits").write_bytes(bytes(raw_bytes))
    write_frame("badvalue.fits")
    raw_bytes = bytearray((raw / "badvalue.fits").read_bytes())
    pos = raw_bytes.index(b"AIRMASS =")
    raw_bytes[pos : pos + 80] = b"AIRMASS = 1.2.3 oops".ljust(80)
    (raw / "badvalue.fits").write_bytes(bytes(raw_bytes))
    header = fits.Header([("INSTRUME", "ALFOSC_FASU"), ("OBJECT", "no exposure time")])
    fits.PrimaryHDU(np.zeros((8, 8), np.uint16), header=header).writeto(raw / "missing.fits")
    header = fits.Header([("INSTRUME", "WFC"), ("OBJECT", "elsewhere")])
    fits.PrimaryHDU(np.zeros((8, 8), np.uint16), header=header).writeto(raw / "unknown.fits")
    return {
        "empty.fits": ("error", "empty"),
        "notfits.fits": ("error", "not a FITS file"),
        "truncated.fits": ("error", "truncated"),
        "noend.fits": ("error", "no END card"),
        "badgzip.fits.gz": ("error", "gzip"),
        "nonascii.fits": ("warning", "non-ASCII"),
        "badvalue.fits": ("warning", "AIRMASS"),
        "missing.fits": ("warning", "missing keyword(s) EXPTIME, DATE-OBS"),
        "unknown.fits": ("warning", "no instrument profile"),
    }


def test_bad_input_gets_one_line_each_and_the_batch_goes_on(write_frame, tmp_path, db_path):
    expected = make_bad_files(write_frame, tmp_path)
    raw = tmp_path / "raw"
    before = file_digests(sorted(raw.iterdir()))
    result = CliRunner().invoke(app, ["--db", str(db_path), "ingest", str(raw)])
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines() if hasattr(result, "stderr") else result.output.splitlines()
    for name, (severity, words) in expected.items():
        matching = [ln for ln in lines if name in ln]
        assert matching, f"no line names {name}"
        assert words in matching[0], matching[0]
        assert matching[0].startswith("rejected" if severity == "error" else "warning")
    # Raw files are opened read-only and never changed.
    assert file_digests(sorted(raw.iterdir())) == before
    from nota.archive.database import open_archive

    db = open_archive(db_path)
    rows = dict(db.conn.execute("SELECT name, status FROM files"))
    assert rows["ALrd120001.fits"] == "ok"
    for name, (severity, _) in expected.items():
        assert rows[name] == ("rejected" if severity == "error" else "ok"), name
        assert db.conn.execute(
            "SELECT count(*) FROM problems WHERE path LIKE ? AND severity = ?", (f"%/{name}", severity)
        ).fetchone()[0] >= 1
    kinds = dict(db.conn.execute("SELECT filename, kind FROM frames"))
    assert kinds["unknown.fits"] == "unknown" and kinds["ALrd120001.fits"] == "bias"
    # The unparsable value is kept verbatim, nothing lost.
    assert db.conn.execute(
        "SELECT raw FROM headers JOIN files USING (file_id) WHERE name = 'badvalue.fits' AND keyword = 'AIRMASS'"
    ).fetchone()[0] == "1.2.3 oops"


def test_compressed_layouts(archive, write_frame, tmp_path):
    plain = write_frame("ALrd120001.fits")
    gz = tmp_path / "raw" / "ALrd120002.fits.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    with fits.open(plain) as hdul:
        comp = fits.CompImageHDU(hdul[0].data, header=hdul[0].header)
        fits.HDUList([fits.PrimaryHDU(), comp]).writeto(tmp_path / "raw" / "ALrd120003.fz")
    report = ingest(archive, [tmp_path / "raw"])
    assert report.outcomes["new"] == 3 and not [p for p in report.problems if p.severity == "error"]
    layouts = dict(archive.conn.execute("SELECT name, layout FROM files"))
    assert layouts["ALrd120002.fits.gz"] == "simple+gzip"
    assert layouts["ALrd120003.fz"] == "tile-compressed"
    shapes = set(archive.conn.execute("SELECT naxis1, naxis2, kind FROM frames"))
    assert shapes == {(550, 513, "bias")}


def test_a_missing_directory_is_a_clear_error(tmp_path, db_path):
    result = CliRunner().invoke(app, ["--db", str(db_path), "ingest", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "nowhere: no such file or directory" in result.output
    assert "Traceback" not in result.output


def test_copies_are_distinct_files_with_one_content(archive, write_frame, tmp_path):
    path = write_frame("ALrd120001.fits")
    shutil.copy(path, tmp_path / "raw" / "copy.fits")
    ingest(archive, [tmp_path / "raw"])
    hashes = [r[0] for r in archive.conn.execute("SELECT content_hash FROM files")]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    # The copy is recorded but is not a second frame: it would count twice in a master.
    status, error = archive.conn.execute("SELECT status, error FROM files WHERE name = 'copy.fits'").fetchone()
    assert status == "rejected" and str(path) in error and "copy" in error
    assert count(archive, "SELECT count(*) FROM frames") == 1
    # With the original gone, the copy is the frame.
    path.unlink()
    ingest(archive, [tmp_path / "raw"])
    assert [r[0] for r in archive.conn.execute("SELECT filename FROM frames")] == ["copy.fits"]
    assert count(archive, "SELECT count(*) FROM headers JOIN files USING (file_id) WHERE name = 'copy.fits'") > 10


def test_no_hash_indexes_headers_only(write_frame, tmp_path, db_path):
    write_frame("ALrd120001.fits")
    result = CliRunner().invoke(app, ["--db", str(db_path), "ingest", "--no-hash", str(tmp_path / "raw")])
    assert result.exit_code == 0, result.output
    from nota.archive.database import open_readonly

    with open_readonly(db_path) as archive:
        assert archive.run("SELECT content_hash, (SELECT count(*) FROM headers) > 10 FROM files")[1] == [(None, 1)]
