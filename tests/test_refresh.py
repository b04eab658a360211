"""One command after ingest: `nota reduce` measures and regroups first, only when needed."""

from __future__ import annotations

import json

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
