"""The run of the step table: a bug in a step keeps its traceback, activities span the work."""

from __future__ import annotations

import logging

from nota.archive.database import open_archive
from nota.pipeline.plan import ReduceOptions, plan_reduction
from nota.pipeline.run import run_plan


def _one_frame(archive, options, name="fzt_ALrd120103.fits"):
    plan = plan_reduction(archive, options)
    plan.tasks[:] = [t for t in plan.tasks if t.step.startswith("master") or t.output.endswith(name)]
    return plan


def test_a_bug_in_a_step_is_recorded_with_its_traceback(night_db, tmp_path, monkeypatch, caplog):
    def broken(frame):
        return 1 / 0

    monkeypatch.setattr("nota.pipeline.steps.reduce_frame.attach_noise", broken)
    options = ReduceOptions(products_root=str(tmp_path / "products"), cosmics=False)
    with open_archive(night_db) as archive, caplog.at_level(logging.INFO, logger="nota.pipeline.run"):
        report = run_plan(archive, _one_frame(archive, options), options, jobs=1)
        (message,) = [r[0] for r in archive.conn.execute(
            "SELECT message FROM activities WHERE step = 'reduced' AND status = 'failed'")]
    ((output, error),) = report.failed
    assert output.endswith("fzt_ALrd120103.fits")
    assert error == "ZeroDivisionError: division by zero"  # one line for the user ...
    assert "Traceback" in message and "in broken" in message  # ... the traceback on the activity
    assert any("Traceback" in r.getMessage() for r in caplog.records)  # and in the log (-v)


def test_activities_span_the_work(night_db, tmp_path):
    options = ReduceOptions(products_root=str(tmp_path / "products"), cosmics=False)
    with open_archive(night_db) as archive:
        report = run_plan(archive, _one_frame(archive, options), options, jobs=1)
        assert not report.failed
        rows = archive.dicts(
            "SELECT a.step, a.status, a.started_at, a.ended_at, p.created_at FROM activities a"
            " JOIN products p USING (activity_id) WHERE p.current = 1")
    assert {r["step"] for r in rows} == {"master_bias", "master_flat", "reduced"}
    for r in rows:
        # Made when the work started, closed when it ended: the product is registered between.
        assert r["status"] == "ok" and r["started_at"] <= r["created_at"] <= r["ended_at"]


def test_every_night_and_filter_with_standards_gets_a_solution(night_db, tmp_path):
    """A filter whose standards were observed but no science frame was: still calibrated."""
    options = ReduceOptions(products_root=str(tmp_path / "products"), cosmics=False, stacks=False)
    with open_archive(night_db) as archive:
        archive.conn.execute("DELETE FROM associations WHERE file_id IN (SELECT file_id FROM frames"
                             " WHERE kind = 'science' AND filter = '661_5')")
        plan = plan_reduction(archive, options)
        solutions = {t.filter for t in plan.tasks if t.step == "photometric_calibration"}
        assert "661_5" in solutions
        assert not [t for t in plan.tasks if t.step == "reduced" and t.filter == "661_5" and t.params.photometry]
        # Make the masters, the 661_5 standards and the solutions only (the rest is not the point).
        plan.tasks[:] = [t for t in plan.tasks if t.step in ("master_bias", "master_flat", "photometric_calibration")
                         or (t.step == "reduced" and t.filter == "661_5")]
        report = run_plan(archive, plan, options, jobs=2)
        made = archive.dicts("SELECT filter, n_used FROM calibrations WHERE current = 1")
    assert not [f for f in report.failed if "661_5" in f[0]], report.failed
    assert {"661_5"} <= {m["filter"] for m in made} and all(m["n_used"] >= 3 for m in made if m["filter"] == "661_5")
