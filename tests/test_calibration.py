"""The night's photometric calibration as a step of the reduction, recorded in the archive."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import copy_database
from nota.archive.calibrations import list_calibrations
from nota.archive.database import open_archive, open_readonly
from nota.cli import app
from nota.pipeline.plan import plan_reduction
from nota.pipeline.run import run_plan
from test_zeropoint import night  # noqa: F401  (the truth per filter, in reduced-frame units)


def calibrate(path, options):
    """Run only the plan's photometric calibrations; returns (report, solutions up to date)."""
    with open_archive(path) as archive:
        plan = plan_reduction(archive, options)
        plan.tasks[:] = [t for t in plan.tasks if t.step == "photometric_calibration"]
        report = run_plan(archive, plan, options, jobs=1)
    return report, len([t for t in plan.up_to_date if t.step == "photometric_calibration"])


def solutions(path) -> list[dict]:
    with open_readonly(path) as archive:
        return list_calibrations(archive)


@pytest.fixture(scope="module")
def calibrated(_reduced, tmp_path_factory):
    """The reduced night's archive (nota reduce calibrated it) and a second calibration run."""
    db_path, options = _reduced
    path = copy_database(db_path, tmp_path_factory.mktemp("calibration") / "cal.db")
    return path, calibrate(path, options), options


def test_each_filter_is_calibrated_against_the_truth(calibrated, night):  # noqa: F811
    path, (report, up_to_date), _ = calibrated
    # nota reduce made them, between the standards and the science frames: nothing to redo.
    assert not report.failed and report.calibrations == [] and up_to_date == 3
    _, expected = night
    for c in solutions(path):
        zp, k = expected[c["filter"]]
        assert c["magnitude_system"] == "AB" and c["method"].startswith("zero point and extinction fitted; ")
        assert abs(c["k"] - k) < 0.02, c
        assert abs(c["zp"] - zp) < 0.02, c
        assert c["n_used"] >= 8 and len(c["stars_used"]) == c["n_used"]
        assert {s["star"] for s in c["stars_used"]} == {"HZ 44", "BD+75 325", "Feige 34"}


def test_calibration_is_recorded_and_not_redone(calibrated):
    path, _, options = calibrated
    again, up_to_date = calibrate(path, options)
    assert again.calibrations == [] and up_to_date == 3
    db = open_archive(path)
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


def test_colour_term_is_null_and_the_method_says_why(calibrated):
    """HZ 44, BD+75 325 and Feige 34 are all hot: 0.01 mag apart in V-R, too close for c."""
    path, _, _ = calibrated
    out = CliRunner().invoke(app, ["--db", str(path), "calibration", "--json"])
    assert out.exit_code == 0
    solutions = {c["filter"]: c for c in json.loads(out.stdout)}
    r = solutions["R"]
    assert r["colour_term"] is None and r["colour_term_err"] is None and r["colour_index"] == "V-R"
    assert r["method"] == ("zero point and extinction fitted; "
                           "colour term not fitted: standards span 0.01 mag in V-R (< 0.3)")
    for band in ("NII_658", "661_5"):
        assert solutions[band]["colour_term"] is None and solutions[band]["colour_index"] is None
        assert solutions[band]["method"].endswith(f"colour term not fitted: no colour index for {band}")
    db = open_archive(path)
    assert db.conn.execute(
        "SELECT count(*) FROM calibrations WHERE current = 1 AND colour_term IS NULL").fetchone()[0] == 3


def test_a_colour_term_given_in_the_profile_is_used(calibrated, night, tmp_path, monkeypatch):  # noqa: F811
    """A user's colour term for R changes the recipe: R is redone with it, the others are not."""
    from dataclasses import replace

    from nota.instruments import profile_named

    alfosc = profile_named("ALFOSC")
    given = replace(alfosc, photometry={**alfosc.photometry, "fixed_colour_term": {"R": [0.03, 0.01]}})
    monkeypatch.setattr("nota.pipeline.plan.profile_named", lambda name: given)
    path = copy_database(calibrated[0], tmp_path / "given.db")
    report, up_to_date = calibrate(path, calibrated[2])
    assert [m["filter"] for m in report.calibrations] == ["R"] and up_to_date == 2
    r = {c["filter"]: c for c in solutions(path)}["R"]
    assert r["colour_term"] == 0.03 and r["colour_term_err"] == pytest.approx(0.01)
    assert r["method"] == "zero point and extinction fitted; colour term fixed at 0.030 in V-R, as given"
    # ZP is now for V-R = 0: the one without a colour term minus c times the standards'
    # mean colour (-0.334); k stays the truth's.
    before = {c["filter"]: c for c in solutions(calibrated[0])}["R"]
    assert r["zp"] == pytest.approx(before["zp"] + 0.03 * 0.334, abs=0.002)
    assert r["k"] == pytest.approx(night[1]["R"][1], abs=0.02)


def test_a_filter_the_table_lacks_fails_alone(calibrated, tmp_path):
    """Standards in a filter nota has no passband for: that night/filter fails with a
    message, the others stay calibrated (no traceback)."""
    path = copy_database(calibrated[0], tmp_path / "unknown.db")
    db = open_archive(path)
    db.conn.execute("UPDATE observations SET filter = 'Z_unknown' WHERE filter = 'R' AND kind = 'standard'")
    db.close()
    report, up_to_date = calibrate(path, calibrated[2])
    assert [where for where, _ in report.failed] == ["calibration 2008-04-12/Z_unknown"]
    assert "Z_unknown" in report.failed[0][1] and "Traceback" not in report.failed[0][1]
    assert up_to_date == 2


def test_a_master_combined_by_threads_is_the_one_combined_alone():
    """``median_combine`` with threads (a master handed out while workers are idle) gives
    the very same master, uncertainty, mask and counts, rejections and all-rejected pixels
    included, for the median and the mean."""
    import numpy as np

    from nota.reduce.combine import median_combine

    rng = np.random.default_rng(3)
    stack = rng.normal(1000, 30, (9, 301, 257)).astype(np.uint16)
    stack[2, 10:20, 5:9] = 65000
    stack[:, 50, 60] = 65000  # every frame rejected here: NaN, masked
    for method in ("median", "mean"):
        alone = median_combine(stack, method=method, clip_max=60000, memory_bytes=2**20)
        for threads in (2, 3):
            shared = median_combine(stack, method=method, clip_max=60000, memory_bytes=2**20, threads=threads)
            for part in ("data", "uncertainty", "mask", "frames_used"):
                assert np.array_equal(getattr(alone, part), getattr(shared, part), equal_nan=True), (method, part)
        assert alone.mask[50, 60] and not alone.mask[0, 0]
