"""Step parameters: a misspelt key is refused by name; one changed parameter changes the
recipe keys of exactly the products made with it (and of what is made from them)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nota.archive.database import open_archive
from nota.errors import ProfileError
from nota.instruments import profile_named
from nota.pipeline.plan import ReduceOptions, plan_reduction
from nota.pipeline.steps import master_bias
from nota.settings import build


def test_an_unknown_key_is_refused_with_its_name():
    with pytest.raises(ProfileError, match=r"\[reduce.master_bias\]: unknown key 'clip_maxx'"):
        build(master_bias.Params, {"clip_maxx": 800}, where="profile x.toml [reduce.master_bias]", trimsec="[1:2,1:2]")
    with pytest.raises(ProfileError, match="unknown key 'trimsec'"):  # set from the frame, not the profile
        build(master_bias.Params, {"trimsec": "[1:9,1:9]"}, where="p", trimsec="[1:2,1:2]")


def test_a_misspelt_key_in_the_profile_stops_the_plan(night_db, tmp_path, monkeypatch):
    profile = profile_named("ALFOSC")
    broken = replace(profile, reduce={**profile.reduce, "cosmics": {"sigclp": 4.0}})
    monkeypatch.setattr("nota.pipeline.plan.profile_named", lambda name: broken)
    with open_archive(night_db) as archive, pytest.raises(ProfileError, match="unknown key 'sigclp'"):
        plan_reduction(archive, ReduceOptions(products_root=str(tmp_path / "p")))


def _keys(archive, options) -> dict[str, tuple[str, str]]:
    plan = plan_reduction(archive, options)
    return {t.output: (t.step, t.key) for t in plan.tasks + plan.up_to_date}


@pytest.mark.parametrize("table, setting, changed", [
    ("frame", {"flat_min_value": 0.2}, {"reduced", "photometric_calibration", "stack"}),
    ("master_flat", {"combine": "mean"}, {"master_flat", "reduced", "photometric_calibration", "stack"}),
    ("stack", {"high": 5.0}, {"stack"}),
])
def test_one_parameter_changes_exactly_the_keys_that_depend_on_it(night_db, tmp_path, monkeypatch,
                                                                   table, setting, changed):
    options = ReduceOptions(products_root=str(tmp_path / "p"))
    with open_archive(night_db) as archive:
        before = _keys(archive, options)
        profile = profile_named("ALFOSC")
        edited = replace(profile, reduce={**profile.reduce, table: {**profile.reduce.get(table, {}), **setting}})
        monkeypatch.setattr("nota.pipeline.plan.profile_named", lambda name: edited)
        after = _keys(archive, options)
    assert before.keys() == after.keys()
    moved = {step for output, (step, key) in before.items() if after[output][1] != key}
    kept = {step for output, (step, key) in before.items() if after[output][1] == key}
    assert moved == changed
    assert not kept & changed  # every product of a changed step, none of the others
    assert {"master_bias"} <= kept
