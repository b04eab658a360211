"""The small observatory's simulated night (``--camera generic``): real files in tmp_path,
measured pixel by pixel against the truth the simulator writes beside them."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage
from typer.testing import CliRunner

from nota.cli import app
from nota.errors import SimulationError
from nota.simulate import load_truth, simulate_run
from nota.simulate.generic import FOLDERS, true_dark, true_light, truth_map
from nota.simulate.generic.camera import Sensor, dark_rate_map
from nota.simulate.generic.plan import night_plan
from nota.simulate.headers import template_cards

NAME = re.compile(r"^\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[A-Za-z]*_-?\d+\.\d\d_\d+\.\d\ds_\d{4}\.fits$")
# Keywords a cooled camera's programs share with ALFOSC's header: nothing else may appear.
SHARED = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "BZERO", "BSCALE", "DATE-OBS",
          "EXPTIME", "IMAGETYP", "OBJECT", "OBSERVER", "TELESCOP", "INSTRUME", "GAIN", "RA",
          "DEC", "AIRMASS", "EQUINOX"}


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """The whole small night, made once for the module with two worker processes."""
    out = tmp_path_factory.mktemp("cmos")
    calls: list[tuple[int, int]] = []
    summaries = simulate_run(out, small=True, seed=2, jobs=2, camera="generic",
                             on_frame=lambda done, total: calls.append((done, total)))
    summary = summaries[0]
    return summary, load_truth(summary.directory), calls


def frames(truth: dict, **match) -> list[dict]:
    return [f for f in truth["frames"] if all(f[k] == v for k, v in match.items())]


def pixels(summary, row: dict) -> np.ndarray:
    return fits.getdata(summary.directory / row["filename"]).astype(np.float64)


def cosmic_mask(summary, row: dict) -> np.ndarray:
    hits = np.load(summary.truth_dir / row["cosmics"])
    mask = np.zeros(row["shape"], bool)
    mask.ravel()[hits["index"]] = True
    return mask


def hot_mask(truth: dict) -> np.ndarray:
    mask = np.zeros(truth["night"]["shape"], bool)
    for hot in truth["dark"]["hot_pixels"]:
        mask[hot["y"] - 1, hot["x"] - 1] = True
    return mask


def masked_mean(summary, rows: list[dict], minus: np.ndarray | float = 0.0) -> np.ndarray:
    """Mean of frames with each frame's own cosmic-ray pixels left out (from the truth)."""
    stack = np.ma.array([pixels(summary, r) - minus for r in rows],
                        mask=[cosmic_mask(summary, r) for r in rows])
    return stack.mean(axis=0).filled(np.nan)


def test_summary_folders_and_names(night):
    summary, truth, calls = night
    assert summary.name == "N1" and summary.night == "2026-11-30"
    assert summary.n_frames == len(truth["frames"]) == 120
    assert [c[0] for c in calls] == list(range(1, 121)) and calls[-1] == (120, 120)
    on_disk = sorted(p.relative_to(summary.directory).as_posix()
                     for p in summary.directory.rglob("*.fits"))
    assert on_disk == sorted(f["filename"] for f in truth["frames"])
    assert {Path(p).parent.as_posix() for p in on_disk} == set(FOLDERS)
    for path in on_disk:
        name = Path(path).name
        assert NAME.match(name), name
        assert name.count(".") >= 3            # dots inside the name, as N.I.N.A. writes
    assert not list(summary.truth_dir.rglob("*.fits")), "truth must never look like a frame"
    light = frames(truth, kind="science", filter="R", exptime=300.0)[0]
    assert re.match(r"LIGHT/2026-11-30_2\d-\d\d-\d\d_R_-?\d+\.\d0_300\.00s_\d{4}\.fits",
                    light["filename"])


def test_same_seed_writes_the_same_bytes(night, tmp_path):
    summary, _, _ = night
    result = CliRunner().invoke(app, ["simulate", str(tmp_path), "--camera", "generic",
                                      "--small", "--seed", "2", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "N1: night 2026-11-30, 120 frames" in result.output
    ours = sorted(p.relative_to(summary.directory) for p in summary.directory.rglob("*")
                  if p.is_file())
    theirs = sorted(p.relative_to(tmp_path / "N1") for p in (tmp_path / "N1").rglob("*")
                    if p.is_file())
    assert ours == theirs
    for rel in ours:
        assert (summary.directory / rel).read_bytes() == (tmp_path / "N1" / rel).read_bytes(), rel
    other, _ = dark_rate_map(3, Sensor(4))
    assert not np.array_equal(other, truth_map(summary.directory, "dark_rate.npy"))


def test_every_frame_type_with_its_header(night):
    summary, truth, _ = night
    kinds = Counter((f["kind"], f["folder"]) for f in truth["frames"])
    assert kinds == {("bias", "BIAS"): 20, ("dark", "DARK"): 30, ("sky_flat", "FLAT"): 21,
                     ("dark", "DARKFLAT"): 15, ("science", "LIGHT"): 25,
                     ("standard", "LIGHT"): 6, ("spectrum", "LIGHT"): 3}
    alfosc = {c.keyword for hdu in template_cards() for c in hdu}
    for row in truth["frames"]:
        with fits.open(summary.directory / row["filename"], do_not_scale_image_data=True) as hdul:
            h = hdul[0].header
            assert h["BITPIX"] == 16 and h["BZERO"] == 32768 and len(hdul) == 1
        assert (h["NAXIS2"], h["NAXIS1"]) == (502, 752) and "BIASSEC" not in h
        assert not (set(h) & alfosc) - SHARED
        assert h["IMAGETYP"] == row["imagetyp"] and h["SWCREATE"] == row["software"]
        assert h["EXPTIME"] == h["EXPOSURE"] == row["exptime"]
        assert h["CCD-TEMP"] == row["ccd_temp"] and h["SET-TEMP"] == row["set_temp"]
        assert abs(row["ccd_temp"] - row["set_temp"]) <= 0.3 + 1e-9
        assert h.get("FILTER") == row["filter_written"]
        assert h["XBINNING"] == h["YBINNING"] == 4 and h["XPIXSZ"] == pytest.approx(18.52)
        assert h["GAIN"] == 100 and h["OFFSET"] == 50 and h["EGAIN"] == pytest.approx(0.8)
        assert h["SITELAT"] == "+40 27 04" and h["SITELONG"] == "-03 43 35"
        assert h["FOCALLEN"] == 2737.0 and h["INSTRUME"] == "ZWO ASI294MM Pro"
        if row["folder"] == "LIGHT":
            assert re.fullmatch(r"\d\d \d\d \d\d\.\d\d", h["OBJCTRA"])
            assert re.fullmatch(r"[+-]\d\d \d\d \d\d\.\d", h["OBJCTDEC"])
            assert h["OBJECT"] == row["object"]
    written = {f["imagetyp"] for f in truth["frames"]}
    assert {"Bias Frame", "Dark Frame", "Flat Field", "Light Frame", "LIGHT", "DARK",
            "DARKFLAT"} <= written
    assert {f["filter_written"] for f in frames(truth, filter="Ha")} == {"Ha", "Halpha"}
    assert {f["exptime"] for f in frames(truth, kind="bias")} == {0.0}
    darks = frames(truth, kind="dark", folder="DARK")
    assert Counter((f["exptime"], f["set_temp"]) for f in darks) == {
        (300.0, -10.0): 10, (120.0, -10.0): 10, (600.0, -10.0): 5, (300.0, -5.0): 5}
    flat_times = {(f["filter"], f["exptime"]) for f in frames(truth, kind="sky_flat")}
    assert flat_times == {(f["filter"], f["exptime"]) for f in frames(truth, folder="DARKFLAT")}
    assert {f["filter"] for f in frames(truth, kind="science")} == {"V", "R", "Ha"}
    assert {f["exptime"] for f in frames(truth, kind="science")} == {120.0, 300.0}
    assert {f["filter_written"] for f in frames(truth, kind="spectrum")} == {"Grism"}


def test_dark_level_grows_linearly_with_exposure_and_temperature(night):
    summary, truth, _ = night
    gain = truth["night"]["gain"]
    pattern = truth_map(summary.directory, "bias_pattern.npy")
    hot = hot_mask(truth)
    measured = {}
    for row in frames(truth, kind="dark"):
        keep = ~hot & ~cosmic_mask(summary, row)
        above = (pixels(summary, row) - row["bias_level"] - pattern)[keep].mean()
        expected = (true_dark(summary.directory, row["ccd_temp"], row["exptime"])[keep].mean()
                    / gain)
        assert above == pytest.approx(expected, rel=0.005, abs=0.15), row["filename"]
        measured[row["filename"]] = (row, above)
    # The rate per second at the reference temperature is one number for every exposure.
    cold = [(r["exptime"], a / r["dark_factor"]) for r, a in measured.values()
            if r["folder"] == "DARK" and r["set_temp"] == -10.0]
    slope, intercept = np.polyfit([t for t, _ in cold], [a for _, a in cold], 1)
    rates = truth_map(summary.directory, "dark_rate.npy")
    assert slope == pytest.approx(rates[~hot].mean() / gain, rel=0.005)
    assert abs(intercept) < 0.2
    # Five degrees warmer: 2**(5/6) = 1.78 times the dark current, as the truth says.
    warm = np.mean([a for r, a in measured.values() if r["set_temp"] == -5.0])
    cool = np.mean([a for r, a in measured.values()
                    if r["set_temp"] == -10.0 and r["exptime"] == 300.0 and r["folder"] == "DARK"])
    factors = [np.mean([r["dark_factor"] for r, _ in measured.values()
                        if r["set_temp"] == t and r["exptime"] == 300.0 and r["folder"] == "DARK"])
               for t in (-5.0, -10.0)]
    assert warm / cool == pytest.approx(factors[0] / factors[1], rel=0.01)
    assert 1.6 < warm / cool < 2.0
    assert truth["dark"]["doubling_temperature"] == 6.0


def test_hot_pixels_are_where_the_truth_says(night):
    summary, truth, _ = night
    bias = np.median([pixels(summary, r) for r in frames(truth, kind="bias")], axis=0)
    darks = frames(truth, kind="dark", folder="DARK", exptime=300.0, set_temp=-10.0)
    master = np.median([pixels(summary, r) for r in darks], axis=0) - bias
    local = ndimage.median_filter(master, 5)
    found = set(zip(*np.nonzero(master - local > np.maximum(50.0, 0.5 * local))))
    listed = {(h["y"] - 1, h["x"] - 1) for h in truth["dark"]["hot_pixels"]}
    assert 250 <= len(listed) <= 350
    assert found <= listed
    assert len(found) >= 0.95 * len(listed)
    factor = np.mean([r["dark_factor"] for r in darks])
    gain = truth["night"]["gain"]
    rates = truth_map(summary.directory, "dark_rate.npy")
    for h in truth["dark"]["hot_pixels"]:
        y, x = h["y"] - 1, h["x"] - 1
        expected = rates[y, x] * factor * 300.0 / gain
        assert h["rate"] >= 10 * truth["dark"]["mean_rate"] * 0.999
        if expected + 600 < 65535:
            assert master[y, x] == pytest.approx(expected, rel=0.1, abs=10.0)


def test_flats_are_bright_unsaturated_and_follow_the_response(night):
    summary, truth, _ = night
    bias = np.mean([pixels(summary, r) for r in frames(truth, kind="bias")], axis=0)
    for band in ("V", "R", "Ha"):
        flats = frames(truth, kind="sky_flat", filter=band)
        dark = np.median([pixels(summary, r) for r in frames(truth, folder="DARKFLAT",
                                                             filter=band)], axis=0) - bias
        normalised = []
        for row in flats:
            data = pixels(summary, row)
            assert row["n_saturated"] == 0 and data.max() < 65535
            assert 15000 < np.median(data - bias) < 33000
            normalised.append((data - bias - dark) / np.median(data - bias - dark))
        flat = np.median(normalised, axis=0)
        response = truth_map(summary.directory, f"response_{band}.npy")
        ratio = ndimage.uniform_filter(flat / (response / np.median(response)), 15)
        assert np.std(ratio[20:-20, 20:-20]) < 0.01       # the twilight's own gradient


def expected_residual(summary, light: dict, biases: list[dict], darks: list[dict],
                      scale: float, response: np.ndarray, gain: float) -> np.ndarray:
    """What a light keeps after (raw - master bias - scale x master dark) / flat, in e-,
    from the truth alone: the bias levels' drift and the dark current's temperature jitter."""
    mean_bias = np.mean([r["bias_level"] for r in biases])
    dark_bias = np.mean([r["bias_level"] for r in darks])
    dark_e = np.mean([true_dark(summary.directory, r["ccd_temp"], r["exptime"]) for r in darks],
                     axis=0)
    own = true_dark(summary.directory, light["ccd_temp"], light["exptime"])
    level = light["bias_level"] - mean_bias - scale * (dark_bias - mean_bias)
    return (level * gain + own - scale * dark_e) / response


def test_dark_subtracted_light_recovers_sky_and_stars(night):
    summary, truth, _ = night
    gain, read_noise = truth["night"]["gain"], truth["night"]["read_noise"]
    light = frames(truth, kind="science", filter="Ha")[0]
    assert light["exptime"] == 300.0 and light["set_temp"] == -10.0
    biases = frames(truth, kind="bias")
    bias = masked_mean(summary, biases)
    darks = frames(truth, kind="dark", folder="DARK", set_temp=-10.0)
    response = truth_map(summary.directory, "response_Ha.npy")
    raw = pixels(summary, light)
    sky_stars = true_light(summary.directory, light["filename"])
    dark_e = true_dark(summary.directory, light["ccd_temp"], light["exptime"])
    keep = ~hot_mask(truth) & ~cosmic_mask(summary, light) & (raw < 65535)
    sigma = np.sqrt(sky_stars * response + dark_e + 1.2 * read_noise**2) / response
    for exptime, scale in ((300.0, 1.0), (600.0, 0.5)):   # exact, and scaled from longer
        used = [r for r in darks if r["exptime"] == exptime]
        dark = masked_mean(summary, used, bias)
        residual = ((raw - bias - scale * dark) * gain / response - sky_stars)[keep]
        left = expected_residual(summary, light, biases, used, scale, response, gain)[keep]
        assert residual.mean() == pytest.approx(left.mean(), abs=0.3)
        assert abs(residual.mean()) < 3.0
        assert 0.95 < np.std((residual - left) / sigma[keep]) < 1.15
    undarked = ((raw - bias) * gain / response - sky_stars)[keep]
    assert undarked.mean() == pytest.approx((dark_e / response)[keep].mean(), rel=0.02)
    assert undarked.mean() > 40.0                  # the dark current is there to be measured


def test_grism_frames_are_dispersed(night):
    summary, truth, _ = night
    for row in frames(truth, kind="spectrum"):
        spectrum, stars = row["light"]["spectrum"], row["light"]["stars"]
        star = next(s for s in stars if s["id"].endswith("-std"))
        x, y = int(round(star["x"])) - 1, int(round(star["y"])) - 1
        start, length = int(spectrum["start_px"]), int(spectrum["length_px"])
        data = pixels(summary, row) - row["bias_level"]
        span = slice(x + start + length // 4, x + start + 3 * length // 4)
        beside = np.median(np.r_[data[y - 15, span], data[y + 15, span]])
        assert np.median(data[y, span]) > beside + 500        # the first-order trace
        assert data[y, x] > beside + 500                      # the zeroth order
        farther = np.median(np.r_[data[y - 40, span], data[y + 40, span]])
        assert beside == pytest.approx(farther, rel=0.03)     # beside the trace: the sky


def test_styles_swap_on_even_nights():
    one, two = (night_plan(n, np.random.default_rng([1, n, 1, 77])) for n in (1, 2))
    assert [p.kind for p in one] == [p.kind for p in two]
    assert {p.style for p in one if p.kind == "bias"} == {"maxim"}
    assert {(p.imagetyp, p.exptime) for p in two if p.kind == "bias"} == {("BIAS", 3e-5)}
    assert all(a.style != b.style for a, b in zip(one, two))


def test_camera_choice_is_checked(tmp_path):
    with pytest.raises(SimulationError, match="camera"):
        simulate_run(tmp_path, camera="sbig")
    with pytest.raises(SimulationError, match="mef"):
        simulate_run(tmp_path, camera="generic", mef=True)
