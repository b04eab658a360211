"""One command after ingest: `nota reduce` measures and regroups first, only when needed."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from nota.archive.database import open_readonly
from nota.cli import app


def _groupings(db):
    with open_readonly(db) as archive:
        return archive.one("SELECT count(*) AS n FROM activities WHERE step = 'groups'")["n"]


def test_ingest_then_reduce_is_the_whole_path(small_night, tmp_path):
    db = tmp_path / "nota.db"
    runner = CliRunner()
    reduce = ["--db", str(db), "reduce", "--products", str(tmp_path / "products"), "--no-cosmics",
              "--no-stacks", "--no-photometry", "--jobs", "2", "--json"]
    assert runner.invoke(app, ["--db", str(db), "ingest", str(small_night.directory)]).exit_code == 0
    first = runner.invoke(app, reduce)
    assert first.exit_code == 0, first.output
    assert "qc: 134 frame(s) measured" in first.stderr and "groups:" in first.stderr
    built = json.loads(first.stdout)["built"]
    assert {b["kind"] for b in built} == {"master_bias", "master_flat", "reduced"} and len(built) == 60
    # Nothing changed: nothing measured, no regrouping, nothing built.
    again = runner.invoke(app, reduce)
    assert again.exit_code == 0 and again.stderr == "" and json.loads(again.stdout)["built"] == []
    assert _groupings(db) == 1
    # The user's word changes a group: it is rebuilt, and exactly what depends on it.
    assert runner.invoke(app, ["--db", str(db), "exclude", "ALrd120047.fits", "--reason", "trail"]).exit_code == 0
    third = runner.invoke(app, reduce)
    assert third.exit_code == 0 and "groups:" in third.stderr and _groupings(db) == 2
    rebuilt = json.loads(third.stdout)["built"]
    assert rebuilt and {(b["kind"], "NII_658" in b["path"] or "fzt_" in b["path"]) for b in rebuilt} <= {
        ("master_flat", True), ("reduced", True)}
    assert [b for b in rebuilt if b["kind"] == "master_flat"][0]["path"].endswith("NII_658_sky_flat_4x4.fits")


def _late_flat(db, target_dir):
    """One more flat of a usable master-flat group, written under a new name beside the night
    (its pixels a little brighter, taken a minute after the group's last member)."""
    import numpy as np
    from astropy.io import fits
    from astropy.time import Time, TimeDelta

    with open_readonly(db) as archive:
        member = archive.one(
            "SELECT f.name, g.group_id FROM group_members m JOIN files f USING (file_id)"
            " JOIN calibration_groups g USING (group_id)"
            " WHERE g.purpose = 'master_flat' AND g.usable = 1 AND m.included = 1"
            " ORDER BY g.group_key, f.name DESC LIMIT 1")
    with fits.open(target_dir / member["name"], do_not_scale_image_data=True) as hdus:
        for hdu in hdus:
            if hdu.data is not None:
                hdu.data = (hdu.data.astype(np.int32) * 101 // 100 if "BZERO" not in hdu.header
                            else hdu.data + np.int16(7))
        header = hdus[0].header
        header["DATE-OBS"] = (Time(header["DATE-OBS"]) + TimeDelta(60, format="sec")).isot
        hdus.writeto(target_dir / "late_flat.fits")
    return member["group_id"]


def test_simulate_ingest_reduce_then_a_late_flat_rebuilds_its_master_and_its_frames(small_night, tmp_path):
    """The newcomer's path with nothing between, all steps on; then one flat arrives."""
    db = tmp_path / "nota.db"
    runner = CliRunner()
    reduce = ["--db", str(db), "reduce", "--products", str(tmp_path / "products"), "--jobs", "2", "--json"]
    night = tmp_path / "N1"
    shutil.copytree(small_night.directory, night)
    assert runner.invoke(app, ["--db", str(db), "ingest", str(night)]).exit_code == 0
    first = runner.invoke(app, reduce)
    assert first.exit_code == 0, first.output
    kinds = {b["kind"] for b in json.loads(first.stdout)["built"]}
    assert {"master_bias", "master_flat", "reduced", "stack"} <= kinds
    assert json.loads(first.stdout)["calibrations"], "the night's standards gave no calibration"

    group_id = _late_flat(db, night)
    assert runner.invoke(app, ["--db", str(db), "ingest", str(night)]).exit_code == 0
    again = runner.invoke(app, reduce)
    assert again.exit_code == 0, again.output
    rebuilt = json.loads(again.stdout)["built"]
    with open_readonly(db) as archive:
        master = archive.one("SELECT product_id, path, filter FROM products WHERE current = 1"
                             " AND kind = 'master_flat' AND group_id = ?", (group_id,))
        assert archive.one("SELECT count(*) AS n FROM group_members m JOIN files f USING (file_id)"
                           " WHERE m.group_id = ? AND f.name = 'late_flat.fits' AND m.included = 1",
                           (group_id,))["n"] == 1
        users = {r["path"] for r in archive.dicts(
            "SELECT p.path FROM products p JOIN product_inputs i USING (product_id)"
            " WHERE p.current = 1 AND p.kind = 'reduced' AND i.input_product_id = ?", (master["product_id"],))}
    assert [b["path"] for b in rebuilt if b["kind"] == "master_flat"] == [master["path"]]
    assert {b["path"] for b in rebuilt if b["kind"] == "reduced"} == users and users
    assert {b["kind"] for b in rebuilt} <= {"master_flat", "reduced", "stack", "photometric_calibration"}
    with open_readonly(db) as archive:  # a stack is rebuilt only when it stacks those frames
        stacked = {r["path"] for r in archive.dicts("SELECT path FROM products WHERE current = 1 AND kind = 'stack'"
                                                    " AND filter = ?", (master["filter"],))}
    assert {b["path"] for b in rebuilt if b["kind"] == "stack"} <= stacked
