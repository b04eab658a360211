"""Selections, QC flags, calibration groups and association on the simulated night.

The expected choices are the lecture's, made by hand after looking at every frame; the
simulator's truth says which frames carry which defect.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from nota.archive.association import explain
from nota.archive.database import open_archive, open_readonly
from nota.archive.groups import groups_as_dicts, pin_group, set_override
from nota.pipeline.groups import build_groups
from nota.pipeline.ingest import ingest
from nota.pipeline.qc import run_qc
from nota.cli import app
from nota.simulate import load_truth


def seq(name: str) -> int:
    return int(name[-9:-5])


def grouped(path):
    with open_readonly(path) as archive:
        return groups_as_dicts(archive)


def members(groups, key_part, included=True):
    (group,) = [g for g in groups if g["key"].startswith(key_part)]
    return sorted(seq(m["filename"]) for m in group["members"] if m["included"] == included), group


def test_groups_are_the_lecture_choices(night_db):
    groups = grouped(night_db)
    bias, g = members(groups, "master_bias/2008-04-12")
    assert bias == list(range(1, 11)) and g["usable"]
    nb78, g = members(groups, "master_flat/2008-04-12/NII_658/sky_flat")
    assert nb78 == [46, 47, 48, 49, 50] and g["preferred"]
    out = {seq(m["filename"]): m["reason"] for m in g["members"] if not m["included"]}
    assert set(out) == {44, 45} and all("too_faint" in r for r in out.values())
    nb49, g = members(groups, "master_flat/2008-04-12/661_5/sky_flat")
    assert nb49 == [51, 52, 53, 54, 55, 56] and g["preferred"]
    r_sky, g = members(groups, "master_flat/2008-04-12/R/sky_flat")
    assert r_sky == [57, 58, 59, 60, 61, 62] and g["preferred"]
    assert [seq(m["filename"]) for m in g["members"] if not m["included"]] == [63]
    assert "odd_shape" in [m for m in g["members"] if not m["included"]][0]["reason"]
    # Dome flats are not used where sky flats are good.
    for g in groups:
        if g["flat_kind"] == "dome_flat":
            assert not g["preferred"]


def test_flags_match_the_simulated_defects(night_db, small_night):
    truth = load_truth(small_night.directory)
    db = open_archive(night_db)
    flags = {}
    for name, flag, excludes in db.conn.execute(
        "SELECT f.name, g.flag, g.excludes FROM flags g JOIN files f USING (file_id)"
    ):
        flags.setdefault(seq(name), {})[flag] = excludes
    by_defect = {}
    for frame in truth["frames"]:
        for defect in frame["flags"]:
            by_defect.setdefault(defect, []).append(frame["sequence"])
    for s in by_defect["rotated_filter"]:
        assert flags[s].get("blocked_beam") == 1, s
    for s in by_defect["too_bright"]:
        assert flags[s].get("too_bright") == 1, s
    for s in by_defect["too_faint"]:
        assert flags[s].get("too_faint") == 1, s
    for s in by_defect["star_in_flat"]:
        assert flags[s].get("star") == 0, s  # noted, not excluded
    assert flags[63].get("odd_shape") == 1
    for s in by_defect["saturated_star"]:
        assert "saturated_pixels" in flags[s]
    # Good sky flats carry no excluding flag.
    for s in range(46, 63):
        assert not any(flags.get(s, {}).values()), (s, flags.get(s))


def test_qc_figures_are_numpys_on_the_same_pixels(night_db, small_night):
    db = open_archive(night_db)
    for name in ("ALrd120005.fits", "ALrd120050.fits", "ALrd120103.fits"):
        section, mean, median, std, lo, hi = db.conn.execute(
            "SELECT q.section, q.mean, q.median, q.std, q.min, q.max FROM qc q JOIN files f"
            " USING (file_id) WHERE f.name = ?", (name,)
        ).fetchone()
        data = fits.getdata(small_night.directory / name).astype(np.float64)
        x, y = section.strip("[]").split(",")
        (x1, x2), (y1, y2) = (map(int, x.split(":")), map(int, y.split(":")))
        cut = data[y1 - 1 : y2, x1 - 1 : x2]
        assert mean == pytest.approx(cut.mean(), rel=1e-9)
        assert (lo, hi) == (cut.min(), cut.max())
        sample = cut[::4, ::4]  # the median and robust std come from a 1-in-16 sample
        assert median == pytest.approx(np.median(sample))
        assert std == pytest.approx(1.482602218505602 * np.median(np.abs(sample - np.median(sample))))
        assert median == pytest.approx(np.median(cut), rel=5e-3, abs=1.0)


def test_frames_are_associated_to_their_own_filters_masters(night_db):
    db = open_archive(night_db)
    rows = db.conn.execute(
        "SELECT fr.filename, fr.filter, a.purpose, g.filter, g.purpose, g.night, a.rule"
        " FROM associations a JOIN frames fr USING (file_id)"
        " LEFT JOIN calibration_groups g USING (group_id)"
    ).fetchall()
    kinds = dict(db.conn.execute("SELECT filename, kind FROM frames"))
    targets = {r[0] for r in rows}
    assert targets == {n for n, k in kinds.items() if k in ("standard", "science")}
    for filename, filt, purpose, gfilter, gpurpose, gnight, rule in rows:
        assert gpurpose == purpose and gnight == "2008-04-12" and rule == "same night"
        if purpose == "master_flat":
            assert gfilter == filt
    with open_readonly(night_db) as readonly:
        answer = explain(readonly, "ALrd120103.fits")
    chosen = {c["purpose"]: c["group"] for c in answer["calibrations"]}
    assert chosen == {"master_bias": "master_bias/2008-04-12/4x4",
                      "master_flat": "master_flat/2008-04-12/R/sky_flat/4x4"}
    dome = [o for c in answer["calibrations"] for o in c["not_chosen"] if "R/dome_flat" in o["group"]]
    assert "preferred" in dome[0]["why_not"]


def test_overrides_survive_reingest_and_regrouping(night_db, small_night):
    db = open_archive(night_db)
    set_override(db, "ALrd120047.fits", "exclude", "a satellite trail seen in DS9")
    set_override(db, "ALrd120045.fits", "include", "11 kADU is enough for me")
    # Touch every raw file: ingest re-reads them (same content) and keeps identities.
    for path in small_night.directory.glob("*.fits"):
        os.utime(path)
    report = ingest(db, [small_night.directory])
    assert report.outcomes["unchanged"] == 134
    run_qc(db)
    build_groups(db)
    nb78, group = members(grouped(night_db), "master_flat/2008-04-12/NII_658/sky_flat")
    assert nb78 == [45, 46, 48, 49, 50]
    reasons = {seq(m["filename"]): m["reason"] for m in group["members"]}
    assert reasons[47] == "excluded by user: a satellite trail seen in DS9"
    assert reasons[45].startswith("included by user")


def test_pinned_group(night_db):
    db = open_archive(night_db)
    key = "master_flat/2008-04-12/NII_658/sky_flat/4x4"
    pin_group(db, key, ["ALrd120046.fits", "ALrd120047.fits", "ALrd120048.fits"])
    build_groups(db)
    nb78, group = members(grouped(night_db), key)
    assert nb78 == [46, 47, 48] and group["usable"]
    pin_group(db, key, [])
    build_groups(db)
    assert members(grouped(night_db), key)[0] == [46, 47, 48, 49, 50]


def test_a_frame_with_no_possible_calibration(night_db, small_night, tmp_path):
    source = small_night.directory / "ALrd120103.fits"
    with fits.open(source) as hdul:
        hdul[0].header["ALFLTID"] = 74  # Bessell B: the night has no B flats
        hdul[0].header["OBJECT"] = "GC4496A B 1x300s"
        (tmp_path / "extra").mkdir()
        hdul.writeto(tmp_path / "extra" / "ALrd129999.fits")
    db = open_archive(night_db)
    ingest(db, [tmp_path / "extra"])
    run_qc(db)
    report = build_groups(db)
    assert any("ALrd129999.fits: master_flat" in line for line in report.uncalibratable)
    result = CliRunner().invoke(app, ["--db", str(night_db), "explain", "ALrd129999.fits"])
    assert result.exit_code == 0, result.output
    assert "master_flat: NONE (none: no master flat group with the same" in result.output
    assert "filter differs (R vs the frame's B)" in result.output
    assert "master_bias: master_bias/2008-04-12/4x4 (same night)" in result.output


def test_groups_json_for_scripts(night_db):
    out = CliRunner().invoke(app, ["--db", str(night_db), "groups", "--json"])
    assert out.exit_code == 0, out.output
    groups = json.loads(out.stdout)
    flat = next(g for g in groups if g["purpose"] == "master_flat")
    assert {"id", "purpose", "night", "filter", "flat_kind", "usable", "members"} <= set(flat)
    assert {"filename", "path", "included", "reason"} <= set(flat["members"][0])
    assert isinstance(flat["members"][0]["included"], bool)


def test_selections(night_db):
    runner = CliRunner()

    def run(*args):
        out = runner.invoke(app, ["--db", str(night_db), *args])
        assert out.exit_code == 0, out.output
        return out

    listed = json.loads(run("selection", "list", "--json").stdout)
    shipped = {s["name"] for s in listed}
    assert {"biases", "sky_flats", "dome_flats", "standards", "science"} <= shipped
    names = lambda out: [seq(r["filename"]) for r in json.loads(out.stdout)]
    assert names(run("select", "sky_flats", "-p", "filter=NII_658", "--json")) == list(range(44, 51))
    assert names(run("select", "biases", "-p", "night=2008-04-12", "--json")) == list(range(1, 11))
    # The lecture's selections: EXPTIME > 600, FBFLTID = 78 with exptime 3.5, object ~ 'flat'.
    long = names(run("select", "--where", "exptime > 600", "--json"))
    assert long and all(s >= 88 for s in long)
    assert names(run("select", "--where", "header('FBFLTID') = 78 AND exptime = 3.5", "--json")) == [46]
    flats = names(run("select", "--where", "object REGEXP 'flat'", "--json"))
    assert flats == list(range(11, 64))
    run("selection", "add", "nb78_long", "header('FBFLTID') = 78 AND exptime > :t", "--doc", "long NB78")
    assert names(run("select", "nb78_long", "-p", "t=600", "--json")) == [
        s for s in long if s in names(run("select", "narrow_band_78", "--json"))
    ]
    refused = runner.invoke(app, ["--db", str(night_db), "selection", "add", "evil", "1); DELETE FROM files; --"])
    assert refused.exit_code == 1 and "Error:" in refused.output
    db = open_archive(night_db)
    assert db.conn.execute("SELECT count(*) FROM files").fetchone()[0] == 134


def test_a_regrouping_redraws_only_the_flat_plots_whose_groups_changed(night_db):
    def plots(db):
        return dict(db.conn.execute(
            "SELECT g.group_key, p.plot_id FROM plots p JOIN calibration_groups g USING (group_id)"
            " WHERE p.subject = 'flat_patterns'").fetchall())

    with open_archive(night_db) as db:
        build_groups(db)
        before = plots(db)
        build_groups(db)
        assert plots(db) == before and before  # nothing changed: nothing redrawn
        member = db.one("SELECT f.name, g.group_key FROM group_members m JOIN files f USING (file_id)"
                        " JOIN calibration_groups g USING (group_id) WHERE g.purpose = 'master_flat'"
                        " AND m.included = 1 ORDER BY g.group_key LIMIT 1")
        set_override(db, member["name"], "exclude", "a test")
        build_groups(db)
        after = plots(db)
    assert set(after) == set(before)
    assert {k for k in after if after[k] != before[k]} == {member["group_key"]}
