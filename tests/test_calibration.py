"""The night's photometric calibration as a step of the reduction, recorded in the archive."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import copy_database
from nota.archive.calibration import calibrate_nights, list_calibrations
from nota.archive.database import open_database
from nota.cli import app
from test_zeropoint import night  # noqa: F401  (the truth per filter, in reduced-frame units)


@pytest.fixture(scope="module")
def calibrated(_reduced, tmp_path_factory):
    db_path, _ = _reduced
    path = copy_database(db_path, tmp_path_factory.mktemp("calibration") / "cal.db")
    report = calibrate_nights(open_database(path))
    return path, report


def test_each_filter_is_calibrated_against_the_truth(calibrated, night):  # noqa: F811
    path, report = calibrated
    assert not report.failed and len(report.made) == 3
    _, expected = night
    for c in list_calibrations(path):
        zp, k = expected[c["filter"]]
        assert c["magnitude_system"] == "AB" and c["method"].startswith("zero point and extinction fitted; ")
        assert abs(c["k"] - k) < 0.02, c
        assert abs(c["zp"] - zp) < 0.02, c
        assert c["n_used"] >= 8 and len(c["stars_used"]) == c["n_used"]
        assert {s["star"] for s in c["stars_used"]} == {"HZ 44", "BD+75 325", "Feige 34"}


def test_calibration_is_recorded_and_not_redone(calibrated):
    path, _ = calibrated
    db = open_database(path)
    again = calibrate_nights(db)
    assert again.made == [] and again.up_to_date == 3
    activities = db.conn.execute(
        "SELECT count(*) FROM activities WHERE step = 'photometric_calibration' AND status = 'ok'"
    ).fetchone()[0]
    assert activities == 3
    used = db.conn.execute(
        "SELECT count(*) FROM used u JOIN activities a USING (activity_id) WHERE a.step = 'photometric_calibration'"
    ).fetchone()[0]
    assert used == db.conn.execute("SELECT count(*) FROM frames WHERE kind = 'standard'").fetchone()[0]
    plots = db.conn.execute("SELECT count(*) FROM plots WHERE subject = 'photometric_calibration'").fetchone()[0]
    assert plots == 3
    out = CliRunner().invoke(app, ["--db", str(path), "calibration", "--json"])
    assert out.exit_code == 0
    solution = json.loads(out.stdout)
    assert {"night", "filter", "zp", "zp_err", "k", "k_err", "colour_term", "rms", "stars_used", "magnitude_system"} <= set(solution[0])
