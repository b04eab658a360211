"""``nota profile``: list, show, check, draft and sections on real files, writing no archive.

The generic simulated night (and its truth) stands for a small observatory's camera, the
frame ccdproc ships for a real SAAO CCD, and frames built here for what neither has: ESO's
DPR keywords and a flat whose header sections lie about where the light falls.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ccdproc
import numpy as np
import pytest
from astropy.io import fits
from PIL import Image
from typer.testing import CliRunner

from nota.cli import app
from nota.instruments import load_profile_file
from nota.instruments.search import SHIPPED
from conftest import file_digests

SAAO_FRAME = Path(ccdproc.__file__).parent / "tests" / "data" / "a8280271.fits"
SUBCOMMANDS = ("list", "show", "check", "draft", "sections")


def nota(*args: str, code: int = 0):
    """Run ``nota ARGS`` and check its exit status; the result for its output."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def nota_json(*args: str):
    return json.loads(nota(*args, "--json").stdout)


@pytest.fixture(scope="module")
def generic_night(tmp_path_factory):
    """The generic simulated night on disk: (its directory, its truth's frames by file name)."""
    from nota.simulate import simulate_run

    (night,) = simulate_run(tmp_path_factory.mktemp("generic"), small=True, camera="generic")
    truth = json.loads((night.truth_dir / "truth.json").read_text())
    return night.directory, {row["filename"]: row for row in truth["frames"]}


def _kinds_and_filters(report) -> dict[str, tuple[str, str | None]]:
    return {f["file"]: (f["kind"], f["filter"]) for f in report["frames"]}


# check -----------------------------------------------------------------------------------------


def test_check_reads_the_generic_night_as_its_truth_and_writes_nothing(generic_night, tmp_path):
    directory, truth = generic_night
    before = file_digests(directory.rglob("*.fits"))
    report = nota_json("profile", "check", "generic", directory)
    assert set(_kinds_and_filters(report)) == set(truth)
    for name, (kind, filter_name) in _kinds_and_filters(report).items():
        assert (kind, filter_name) == (truth[name]["kind"], truth[name]["filter"]), name
    assert report["unmatched"] == [] and report["kinds"]["dark"] == 45
    light = next(f for f in report["frames"] if f["kind"] == "science")
    assert light["binning"] == "4x4" and light["gain"] == pytest.approx(0.8) and light["ccd_temp"] is not None
    assert light["trimsec"] == f"[1:{light['naxis1']},1:{light['naxis2']}]" and light["biassec"] is None
    assert light["rule"].startswith("IMAGETYP says light")
    lacking = {m["keyword"]: m["frames_lacking"] for m in report["missing_keywords"]}
    assert lacking["FRAMETYP"] == len(truth) and "IMAGETYP" not in lacking
    assert file_digests(directory.rglob("*.fits")) == before
    assert not (tmp_path / "nota.db").exists()  # NOTA_DB points there: no archive was made


def test_check_as_a_table_names_unmatched_frames_and_missing_keywords(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, imagetyp in (("a.fits", "Light Frame"), ("b.fits", "Mystery")):
        header = fits.Header({"IMAGETYP": imagetyp, "EXPTIME": 10.0, "DATE-OBS": "2024-01-01T20:00:00"})
        fits.PrimaryHDU(np.zeros((8, 8), np.int16), header).writeto(raw / name)
    out = nota("profile", "check", "generic", raw).output
    assert "no rule matched: 1 frame(s)" in out and "b.fits" in out
    assert "EGAIN" in out and "frames lacking" in out


def test_check_with_a_malformed_profile_fails_in_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[instrument]\nname = "X"\ncolour = "blue"\n')
    result = nota("profile", "check", bad, tmp_path, code=1)
    assert result.output.strip().count("\n") == 0
    assert "bad.toml" in result.output and "instrument.colour" in result.output


# draft -----------------------------------------------------------------------------------------


def test_draft_of_the_generic_night_reads_it_as_the_shipped_generic_profile(generic_night, tmp_path):
    directory, truth = generic_night
    out = tmp_path / "asi294.toml"
    frames = sorted(str(p) for p in directory.rglob("*.fits"))
    found = nota_json("profile", "draft", *frames, "--out", out)
    profile = load_profile_file(out)
    assert profile.name == "ZWO ASI294MM Pro" and profile.match == {"INSTRUME": "^(ZWO ASI294MM Pro)$"}
    assert profile.shape == tuple(found["shape"]) and found["binnings"] == {"4x4": len(truth)}
    assert profile.keywords["gain"] == ("EGAIN",)  # not N.I.N.A.'s GAIN, the dial setting
    suggested = {t["value"]: t["suggests"] for t in found["frame_types"]}
    assert suggested["Bias Frame"] == "bias" and suggested["DARKFLAT"] == "dark" and suggested["LIGHT"] == "science"
    text = out.read_text()
    keys = [line for line in text.splitlines() if "=" in line and not line.startswith(("#", "["))]
    assert keys and all("  # " in line for line in keys)  # a comment on every key
    drafted = nota_json("profile", "check", out, directory)
    shipped = nota_json("profile", "check", "generic", directory)
    # The draft carries the convention's [standards], so even the standard star's frames
    # come out as `standard`: every frame has the shipped profile's kind and filter.
    assert _kinds_and_filters(drafted) == _kinds_and_filters(shipped)
    assert drafted["unmatched"] == []


def test_draft_refuses_to_overwrite(generic_night, tmp_path):
    directory, _ = generic_night
    out = tmp_path / "mine.toml"
    out.write_text("# mine\n")
    result = nota("profile", "draft", directory, "--out", out, code=1)
    assert "exists" in result.output and out.read_text() == "# mine\n"


def test_draft_of_the_real_saao_frame_is_a_profile_that_reads_it(tmp_path):
    out = tmp_path / "saao.toml"
    found = nota_json("profile", "draft", SAAO_FRAME, "--out", out)
    assert found["instrument"] == ["STE3 CCD"] and found["shape"] == [536, 520]
    profile = load_profile_file(out)
    assert profile.detector["trimsec"] == "[17:528,1:520]" and profile.detector["biassec"] == "[4:13,1:520]"
    assert profile.keywords["gain"] == ("GAIN",) and profile.keywords["time_obs"] == ("UT",)
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(SAAO_FRAME, raw)
    (frame,) = nota_json("profile", "check", out, raw)["frames"]
    assert (frame["kind"], frame["filter"], frame["gain"], frame["exptime"]) == ("science", "48", 1.9, 150.04)
    assert frame["trimsec"] == "[17:528,1:520]"


def _eso_frame(path: Path, dpr_type: str, tech: str, obj: str) -> None:
    header = fits.Header()
    header["INSTRUME"] = "EFOSC"
    header["DATE-OBS"] = "2019-03-04T01:02:03.456"
    header["EXPTIME"] = 0.0 if dpr_type == "BIAS" else 30.0
    header["OBJECT"] = obj
    header["HIERARCH ESO DPR TYPE"] = dpr_type
    header["HIERARCH ESO DPR TECH"] = tech
    header["HIERARCH ESO DET WIN1 BINX"] = 2
    fits.PrimaryHDU(np.zeros((10, 12), np.uint16), header).writeto(path)


def test_draft_reads_eso_dpr_keywords(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    frames = {"b.fits": ("BIAS", "IMAGE", "BIAS"), "f.fits": ("FLAT,SKY", "IMAGE", "FLAT"),
              "d.fits": ("FLAT,LAMP", "IMAGE", "FLAT"), "s.fits": ("OBJECT", "SPECTRUM", "NGC 1"),
              "a.fits": ("LAMP,WAVE", "SPECTRUM", "HE-AR"), "o.fits": ("OBJECT", "IMAGE", "NGC 1")}
    for name, (dpr_type, tech, obj) in frames.items():
        _eso_frame(raw / name, dpr_type, tech, obj)
    found = nota_json("profile", "draft", raw, "--out", tmp_path / "efosc.toml")
    assert {c["keyword"] for c in found["conventions"]} >= {"HIERARCH ESO DPR TYPE", "HIERARCH ESO DPR TECH"}
    kinds = {f["file"]: f["kind"] for f in nota_json("profile", "check", tmp_path / "efosc.toml", raw)["frames"]}
    assert kinds == {"b.fits": "bias", "f.fits": "sky_flat", "d.fits": "dome_flat", "s.fits": "spectrum",
                     "a.fits": "arc", "o.fits": "science"}


# sections --------------------------------------------------------------------------------------

LIGHT_FROM, LIGHT_TO = 16, 190  # 1-based columns the light really falls on
SECTIONS_PROFILE = """
[instrument]
name = "TESTCAM"
match = { INSTRUME = "^TESTCAM$" }

[detector]
shape = [200, 100]
biassec = "[5:24,1:100]"    # the header's "prescan": columns 16-24 of it carry light
trimsec = "[20:200,1:100]"  # runs into the unexposed strip 191-200

[[kinds]]
kind = "sky_flat"
rule = "IMAGETYP says flat"
imagetyp = "flat"
"""


def _frame(path: Path, data: np.ndarray, imagetyp: str) -> Path:
    header = fits.Header({"INSTRUME": "TESTCAM", "IMAGETYP": imagetyp, "DATE-OBS": "2024-01-01T18:00:00"})
    fits.PrimaryHDU(data.astype(np.uint16), header).writeto(path)
    return path


@pytest.fixture
def lying_sections(tmp_path):
    """(profile, flat, bias): a flat lit in columns 16-190 (a soft edge at 15 and 191), its bias,
    and a profile whose BIASSEC covers lit columns and whose TRIMSEC reaches the dark strip."""
    rng = np.random.default_rng(3)
    bias = 1000 + rng.normal(0, 5, (100, 200))
    column = np.arange(1, 201)
    light = np.where((column >= LIGHT_FROM) & (column <= LIGHT_TO), 20000.0, 0.0)
    light[LIGHT_FROM - 2] = light[LIGHT_TO] = 3000.0  # the light's edges are not knife-sharp
    vignetting = 1 - 0.1 * ((np.arange(100)[:, None] - 50) / 50) ** 2
    flat = 1000 + light[None, :] * vignetting + rng.normal(0, 30, (100, 200))
    profile = tmp_path / "testcam.toml"
    profile.write_text(SECTIONS_PROFILE)
    return profile, _frame(tmp_path / "flat.fits", flat, "FLAT"), _frame(tmp_path / "bias.fits", bias, "BIAS")


def test_sections_finds_the_true_edges_and_warns_about_the_lying_sections(lying_sections, tmp_path):
    profile, flat, bias = lying_sections
    png = tmp_path / "sections.png"
    found = nota_json("profile", "sections", profile, flat, bias, "--out", png)
    assert abs(found["columns"]["first"] - LIGHT_FROM) <= 2 and abs(found["columns"]["last"] - LIGHT_TO) <= 2
    assert (found["rows"]["first"], found["rows"]["last"]) == (1, 100)
    assert found["columns"]["dark_level"] == pytest.approx(1000, abs=5)
    biassec, trimsec = found["warnings"]
    assert biassec.startswith("BIASSEC [5:24,1:100] overlaps the light") and "columns 16-24" in biassec
    assert trimsec.startswith("TRIMSEC [20:200,1:100] reaches into unlit columns 191-200")
    with Image.open(png) as picture:
        assert picture.format == "PNG" and picture.size == (800, 600)
    text = nota("profile", "sections", profile, flat, bias)
    assert "light in columns 16-190 of 200" in text.stdout and "warning: BIASSEC" in text.output


def test_sections_without_a_bias_takes_the_unexposed_strip_for_the_level(lying_sections):
    profile, flat, _ = lying_sections
    found = nota_json("profile", "sections", profile, flat)
    assert (found["columns"]["first"], found["columns"]["last"]) == (LIGHT_FROM, LIGHT_TO)
    assert len(found["warnings"]) == 2 and found["png"] is None


# list and show ---------------------------------------------------------------------------------


def test_list_shows_the_search_order_with_shadowed_and_malformed_profiles(tmp_path, monkeypatch):
    mine = tmp_path / "profiles"
    mine.mkdir()
    shutil.copy(SHIPPED / "alfosc.toml", mine / "alfosc.toml")
    (mine / "broken.toml").write_text("[instrument]\n")
    monkeypatch.setenv("NOTA_PROFILES", str(mine))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    entries = nota_json("profile", "list")
    alfosc = [e for e in entries if e["key"] == "alfosc"]
    assert [e["source"] for e in alfosc] == [str(mine / "alfosc.toml"), str(SHIPPED / "alfosc.toml")]
    assert alfosc[0]["shadowed_by"] is None and alfosc[1]["shadowed_by"] == str(mine / "alfosc.toml")
    assert "INSTRUME ~ ^ALFOSC" in alfosc[0]["matches"]
    generic = next(e for e in entries if e["key"] == "generic")
    assert generic["fallback"] and generic["matches"].startswith("fallback: IMAGETYP ~")
    broken = next(e for e in entries if e["key"] == "broken")
    assert "instrument.name: missing" in broken["error"]
    assert "shadowed" in nota("profile", "list").output


def test_show_prints_the_file_and_its_facts():
    out = nota("profile", "show", "generic").output
    assert out.startswith(f"# {SHIPPED / 'generic.toml'}") and "[[kinds]]" in out
    facts = nota_json("profile", "show", "alfosc")
    assert facts["name"] == "ALFOSC" and facts["detector"]["trimsec"] == "[61:2100,21:2032]"
    assert facts["kinds"][0]["kind"] and "FBFLTID" in facts["filters"]["wheels"]
    nota("profile", "show", "nosuchcamera", code=1)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_profile_command_has_help_with_an_example(command):
    out = nota("profile", command, "--help").output
    assert "Example:" in out and "nota profile" in out.split("Example:")[1]


def test_sections_are_stored_as_a_plot_in_the_archive(tmp_path):
    """With an archive at --db, the drawing joins its plots (nota serve shows them)."""
    import numpy as np
    from astropy.io import fits
    from typer.testing import CliRunner

    from nota.archive.database import open_archive, open_readonly
    from nota.cli import app

    data = np.full((60, 120), 500, np.uint16)
    data[:, 20:110] = 20000  # light from column 21 to 110
    flat = tmp_path / "flat.fits"
    fits.PrimaryHDU(data, header=fits.Header({"IMAGETYP": "Flat Field", "EXPTIME": 2.0, "FILTER": "V",
                                              "DATE-OBS": "2026-11-30T17:00:00"})).writeto(flat)
    db = tmp_path / "nota.db"
    open_archive(db).close()
    out = CliRunner().invoke(app, ["--db", str(db), "profile", "sections", "generic", str(flat)])
    assert out.exit_code == 0, out.output
    with open_readonly(db) as archive:
        (plot,) = archive.dicts("SELECT subject, title, length(png) AS size FROM plots")
    assert plot["subject"] == "sections" and "flat.fits" in plot["title"] and plot["size"] > 1000
