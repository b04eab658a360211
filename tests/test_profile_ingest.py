"""Ingest through the user's profiles: found, named, refused when malformed, followed when edited."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from nota.archive.database import open_archive, open_readonly
from nota.cli import app
from nota.instruments import load_profile


def _alfosc_text() -> str:
    return Path(load_profile("alfosc").source).read_text()


def _ingest(db_path, *args):
    return CliRunner().invoke(app, ["--db", str(db_path), "ingest", *map(str, args), "--json"])


def _kinds(db_path) -> dict[str, tuple]:
    with open_readonly(db_path) as archive:
        return {r["filename"]: (r["kind"], r["profile"]) for r in archive.dicts(
            "SELECT f.filename, f.kind, o.profile FROM frames f JOIN observations o USING (file_id)")}


def test_a_profile_in_nota_profiles_is_found_and_recorded(write_frame, db_path, tmp_path, monkeypatch):
    folder = tmp_path / "profiles"
    folder.mkdir()
    # The user's copy of ALFOSC's profile, with a rule of their own: focus frames are ignored.
    text = _alfosc_text().replace('kind = "focus"', 'kind = "ignored"', 1)
    (folder / "alfosc.toml").write_text(text)
    monkeypatch.setenv("NOTA_PROFILES", str(folder))
    write_frame("ALrd120063.fits", OBJECT="focus run", IMAGETYP="", EXPTIME=5.0)
    out = _ingest(db_path, tmp_path / "raw")
    assert out.exit_code == 0, out.output
    assert _kinds(db_path)["ALrd120063.fits"] == ("ignored", "alfosc")
    with open_readonly(db_path) as archive:
        stored = archive.dicts("SELECT p.text, p.source FROM profiles p JOIN observations o"
                               " ON o.profile_hash = p.digest")
    assert stored[0]["text"] == text and stored[0]["source"] == str(folder / "alfosc.toml")


def test_profile_file_reads_every_frame_and_an_edit_renormalises(write_frame, db_path, tmp_path):
    mine = tmp_path / "mycam.toml"
    mine.write_text(_alfosc_text())
    write_frame("ALrd120063.fits", OBJECT="focus run", IMAGETYP="", EXPTIME=5.0)
    write_frame("ALrd120001.fits")
    assert _ingest(db_path, tmp_path / "raw", "--profile", mine).exit_code == 0
    assert _kinds(db_path)["ALrd120063.fits"] == ("focus", "mycam")
    # The user fixes their profile; the files are unchanged: their cards are read again.
    mine.write_text(_alfosc_text().replace('kind = "focus"', 'kind = "ignored"', 1))
    out = _ingest(db_path, tmp_path / "raw", "--profile", mine)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["outcomes"]["renormalised"] == 2
    assert _kinds(db_path)["ALrd120063.fits"] == ("ignored", "mycam")
    plain = CliRunner().invoke(app, ["--db", str(db_path), "ingest", str(tmp_path / "raw"), "--profile", str(mine)])
    assert "2 unchanged" in plain.output and "renormalised" not in plain.output  # nothing changed again


def test_a_malformed_profile_is_one_line_and_ingests_nothing(write_frame, db_path, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(_alfosc_text().replace("[detector]", "[detector]\nsaturaton = 60000", 1))
    write_frame("ALrd120001.fits")
    out = CliRunner().invoke(app, ["--db", str(db_path), "ingest", str(tmp_path / "raw"), "--profile", str(bad)])
    assert out.exit_code == 1
    (line,) = [ln for ln in out.output.splitlines() if ln.strip()]
    assert line.startswith("Error: ") and "bad.toml" in line and "saturaton" in line
    with open_archive(db_path) as archive:
        assert archive.one("SELECT count(*) AS n FROM files")["n"] == 0
