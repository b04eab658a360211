"""Calibrations across nights: a run whose biases were all taken on its first afternoon.

Night two's flats take night one's master bias by the rules a science frame's bias is
chosen by (same readout; the same night, else the nearest within the validity window),
and say so; outside the window they fail with a message naming it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from conftest import copy_database
from nota.archive.association import explain
from nota.archive.database import open_archive, open_readonly
from nota.archive.groups import set_override
from nota.pipeline.groups import build_groups
from nota.pipeline.ingest import ingest
from nota.pipeline.plan import ReduceOptions, plan_reduction
from nota.pipeline.qc import run_qc
from nota.pipeline.run import run_plan


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory):
    """Two simulated nights; night two's biases are excluded (as if never taken)."""
    from nota.simulate import simulate_run

    out = tmp_path_factory.mktemp("two")
    nights = simulate_run(out, nights=2, seed=3, small=True, only={1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 57, 58, 59, 60, 61, 62, 103})
    path = out / "two.db"
    with open_archive(path) as archive:
        ingest(archive, [n.directory for n in nights])
        run_qc(archive)
        second = nights[1].night
        for (name,) in archive.run("SELECT filename FROM frames WHERE kind = 'bias' AND night = ?", (second,))[1]:
            set_override(archive, name, "exclude", "no biases on night two")
        build_groups(archive)
    return path, nights


def test_night_two_uses_night_one_master_bias_and_says_so(two_nights, tmp_path):
    path, nights = two_nights
    first, second = nights[0].night, nights[1].night
    options = ReduceOptions(products_root=str(tmp_path / "products"), cosmics=False, stacks=False, photometry=False)
    with open_archive(path) as archive:
        plan = plan_reduction(archive, options)
        assert not plan.impossible, [t.failure for t in plan.impossible]
        report = run_plan(archive, plan, options, jobs=2)
        assert not report.failed, report.failed
        flat_bias = archive.dicts(
            "SELECT f.night AS flat_night, b.night AS bias_night FROM product_inputs i"
            " JOIN products f USING (product_id) JOIN products b ON b.product_id = i.input_product_id"
            " WHERE f.kind = 'master_flat' AND i.role = 'master_bias'")
    assert {(r["flat_night"], r["bias_night"]) for r in flat_bias} == {(first, first), (second, first)}
    with open_readonly(path) as archive:
        flat = archive.one("SELECT filename FROM frames WHERE kind = 'sky_flat' AND night = ?", (second,))
        said = explain(archive, flat["filename"])
    (member,) = [m for m in said["member_of"] if m["group"].startswith("master_flat/")]
    assert member["master_bias"].startswith(f"master_bias/{first}/")
    assert member["master_bias_rule"].startswith(f"nearest night with a usable group: {first}, 1 day(s) away")


def test_outside_the_validity_window_flats_fail_naming_it(two_nights, tmp_path, monkeypatch):
    import nota.archive.association as association

    path, nights = two_nights
    settings = association.group_settings

    def one_night_only(profile):
        found = settings(profile)
        return replace(found, validity_days={**found.validity_days, "master_bias": 0})

    monkeypatch.setattr(association, "group_settings", one_night_only)
    copy = copy_database(path, tmp_path / "copy.db")
    with open_archive(copy) as archive:
        build_groups(archive)
        plan = plan_reduction(archive, ReduceOptions(products_root=str(tmp_path / "p"), photometry=False))
    failures = [t.failure for t in plan.impossible if t.step == "master_flat"]
    assert failures and all("none within 0 day(s)" in f for f in failures), failures
