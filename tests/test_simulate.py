"""The night simulator: real files in tmp_path, checked against the lecture's logbook and
against the truth the simulator writes beside them."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from scipy import ndimage

from nota.errors import SimulationError
from nota.instruments import load_profile
from nota.simulate import load_truth, simulate_run
from nota.standards import canonical_name, read_oke_table, synthetic_magnitudes

# The lecture's logbook of night 1: sequence -> counts (kADU) at the flats' centre.
LOGBOOK_FLATS = {
    21: 9, 22: 39, **{s: 24 for s in range(23, 33)},
    44: 3, 45: 11, 46: 27, 47: 30, 48: 29, 49: 32, 50: 31,
    51: 30, 52: 30, 53: 28, 54: 18, 55: 24, 56: 24,
    57: 26, 58: 24, 59: 27, 60: 27, 61: 28, 62: 27,
}
# The lecture's bias table (means of trimmed frames, truncated to integers).
LECTURE_BIAS_MEANS = (353, 355, 357, 358, 358, 358, 358, 358, 358, 358)
STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE",
              "XTENSION", "PCOUNT", "GCOUNT", "EXTNAME", "IMAGEID", "INHERIT"}


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A whole small night, made once for the module with two worker processes."""
    out = tmp_path_factory.mktemp("sim")
    calls: list[tuple[int, int]] = []
    summaries = simulate_run(out, small=True, seed=1, jobs=2,
                             on_frame=lambda done, total: calls.append((done, total)))
    return summaries[0], load_truth(summaries[0].directory), calls


def frame_of(truth: dict, seq: int) -> dict:
    return next(f for f in truth["frames"] if f["sequence"] == seq)


def trimmed(data: np.ndarray, binning: int = 4) -> np.ndarray:
    """The lecture's useful area, [20:-20, 60:2100] unbinned."""
    return data[20 // binning: -20 // binning, 60 // binning: 2100 // binning]


def test_summary_and_progress(night):
    summary, truth, calls = night
    assert summary.name == "N1" and summary.night == "2008-04-12"
    assert 125 <= summary.n_frames <= 135
    assert len(truth["frames"]) == summary.n_frames
    assert calls[-1] == (summary.n_frames, summary.n_frames)
    assert [c[0] for c in calls] == list(range(1, summary.n_frames + 1))
    files = sorted(p.name for p in summary.directory.glob("*.fits"))
    assert files[0] == "ALrd120001.fits" and len(files) == summary.n_frames
    assert not list(summary.truth_dir.rglob("*.fits")), "truth must never look like a frame"


def test_raw_layout_is_16_bit_unsigned(night):
    summary, truth, _ = night
    for seq in (1, 44, 63, 103):
        path = summary.directory / frame_of(truth, seq)["filename"]
        with fits.open(path, do_not_scale_image_data=True) as hdul:
            header = hdul[0].header
            assert header["BITPIX"] == 16 and header["BZERO"] == 32768
        data = fits.getdata(path)
        assert data.dtype == np.uint16
        expected = (200, 200) if seq == 63 else (513, 550)
        assert data.shape == expected
        assert "FILTER" not in header and "CTYPE1" in header and header["CTYPE1"] == "X"
        assert header["DETXBIN"] == header["DETYBIN"] == 4
        assert header["INSTRUME"] == "ALFOSC_FASU" and header["TELESCOP"] == "NOT"
        assert header["GAIN"] == pytest.approx(0.73) and header["RDNOISE"] == pytest.approx(3.65)
    header = fits.getheader(summary.directory / "ALrd120001.fits")
    assert header["BIASSEC"] == "[2:13,1:513]"
    assert header["IMAGETYP"] == "BIAS" and header["EXPTIME"] == 0
    assert fits.getheader(summary.directory / "ALrd120011.fits")["IMAGETYP"] == "OBJECT"


def test_same_seed_same_bytes_whatever_the_jobs(night, tmp_path):
    summary, truth, _ = night
    again = simulate_run(tmp_path / "again", small=True, seed=1, jobs=1, only={1, 44, 79, 103})
    assert again[0].n_frames == 4
    for seq in (1, 44, 79, 103):
        name = frame_of(truth, seq)["filename"]
        assert (again[0].directory / name).read_bytes() == (summary.directory / name).read_bytes()
    other = simulate_run(tmp_path / "other", small=True, seed=2, jobs=1, only={1})
    name = "ALrd120001.fits"
    assert (other[0].directory / name).read_bytes() != (summary.directory / name).read_bytes()


def test_mef_has_the_same_pixels_and_cards(night, tmp_path):
    summary, _, _ = night
    mef = simulate_run(tmp_path / "mef", small=True, seed=1, mef=True, only={22, 79}, jobs=1)
    for name in ("ALrd120022.fits", "ALrd120079.fits"):
        with fits.open(mef[0].directory / name) as m, fits.open(summary.directory / name) as s:
            assert len(m) == 2 and len(s) == 1
            assert m[0].data is None and m[1].name == "IM1"
            np.testing.assert_array_equal(m[1].data, s[0].data)
            merged = [(c.keyword, c.value) for h in (m[0].header, m[1].header) for c in h.cards
                      if c.keyword not in STRUCTURAL]
            simple = [(c.keyword, c.value) for c in s[0].header.cards
                      if c.keyword not in STRUCTURAL]
            assert merged == simple
            assert "TELESCOP" in m[0].header and "GAIN" in m[1].header
            assert "GAIN" not in m[0].header


def test_logbook_quirks(night):
    summary, truth, _ = night
    d = summary.directory
    window = fits.getheader(d / "ALrd120063.fits")
    assert (window["NAXIS1"], window["NAXIS2"]) == (200, 200)
    assert window["DETWIN1"] == "[701:1500, 629:1428]"
    assert window["OBJECT"] == "Sky Flat evening"
    assert frame_of(truth, 63)["kind"] == "sky_flat" and "window" in frame_of(truth, 63)["flags"]
    typo = fits.getheader(d / "ALrd120079.fits")
    assert typo["OBJECT"] == "HZ44 #79"
    assert typo["FBFLTID"] == 78 and typo["ALFLTID"] == 0
    assert frame_of(truth, 79)["filter"] == "NII_658"
    assert fits.getheader(d / "ALrd120103.fits")["OBJECT"] == "GC4496A R 3x300s"
    assert fits.getheader(d / "ALrd120122.fits")["EXPTIME"] == 180
    for seq in range(33, 43):
        assert "rotated_filter" in frame_of(truth, seq)["flags"]
    assert "rotated_filter" not in frame_of(truth, 43)["flags"]


def test_rotated_filter_changes_the_illumination(night):
    summary, _, _ = night
    rotated = trimmed(fits.getdata(summary.directory / "ALrd120033.fits").astype(float))
    correct = trimmed(fits.getdata(summary.directory / "ALrd120043.fits").astype(float))
    ratio = (rotated / rotated.mean()) / (correct / correct.mean())
    ny, nx = ratio.shape
    # The tilted filter's edge darkens one corner by far more than any flat-to-flat change.
    corners = [ratio[: ny // 4, : nx // 4], ratio[: ny // 4, -nx // 4:],
               ratio[-ny // 4:, : nx // 4], ratio[-ny // 4:, -nx // 4:]]
    assert min(np.median(c) for c in corners) < 0.6


def test_flat_counts_follow_the_logbook(night):
    summary, truth, _ = night
    for seq, kadu in LOGBOOK_FLATS.items():
        f = frame_of(truth, seq)
        data = fits.getdata(summary.directory / f["filename"]).astype(float)
        ny, nx = data.shape
        centre = data[ny // 2 - 20: ny // 2 + 20, nx // 2 - 20: nx // 2 + 20]
        level = np.median(centre) - f["bias_level"]
        assert level == pytest.approx(kadu * 1000, rel=0.10), seq
    assert "too_bright" in frame_of(truth, 22)["flags"]
    assert "too_faint" in frame_of(truth, 44)["flags"]


def test_bias_statistics_match_the_lecture(night):
    summary, truth, _ = night
    maxima = []
    rn_adu = truth["night"]["read_noise"] / truth["night"]["gain"]
    for seq, lecture_mean in zip(range(1, 11), LECTURE_BIAS_MEANS):
        f = frame_of(truth, seq)
        assert f["kind"] == "bias" and f["filter"] is None and f["exptime"] == 0
        data = trimmed(fits.getdata(summary.directory / f["filename"]).astype(float))
        assert int(data.mean()) in (lecture_mean - 1, lecture_mean, lecture_mean + 1)
        clipped = data[np.abs(data - np.median(data)) < 5 * 5.0]
        assert 4.0 < clipped.std() < 6.0
        assert clipped.std() == pytest.approx(rn_adu, rel=0.15)
        maxima.append(data.max())
        assert f["cosmic_rays"] >= 1
    assert max(maxima) > 800, "some biases carry cosmic-ray hits"


def test_cosmic_ray_pixels_are_recorded(night):
    summary, truth, _ = night
    f = frame_of(truth, 98)
    assert 100 < f["cosmic_rays"] < 600
    hits = np.load(summary.truth_dir / "cosmics" / "ALrd120098.npz")
    assert hits["index"].size == f["cosmic_pixels"]
    data = fits.getdata(summary.directory / f["filename"]).astype(float).ravel()
    strong = hits["index"][hits["adu"] > 300]
    assert np.median(data[strong]) > np.median(data) + 200


def test_saturated_star_in_103(night):
    summary, truth, _ = night
    data = fits.getdata(summary.directory / "ALrd120103.fits")
    assert data.max() == 65535
    ys, xs = np.nonzero(data == 65535)
    assert (xs > 60 // 4).all() and (xs < 2100 // 4).all(), "saturation comes from a star"
    assert "saturated_star" in frame_of(truth, 103)["flags"]
    assert frame_of(truth, 103)["n_saturated"] == xs.size


def test_kinds_and_filters_agree_with_headers(night):
    summary, truth, _ = night
    filters = load_profile("alfosc").filters
    expected = {1: "bias", 11: "dome_flat", 44: "sky_flat", 63: "sky_flat", 64: "focus",
                79: "standard", 83: "standard", 87: "standard", 98: "science",
                103: "science", 113: "science", 119: "science", 122: "science"}
    for seq, kind in expected.items():
        assert frame_of(truth, seq)["kind"] == kind, seq
    for f in truth["frames"]:
        header = fits.getheader(summary.directory / f["filename"])
        ids = [header[k] for k in ("ALFLTID", "FAFLTID", "FBFLTID") if header[k]]
        if f["filter"] is None:
            assert ids == []
        else:
            assert [filters[i].short_name.strip() for i in ids] == [f["filter"]]
        assert header["AIRMASS"] == pytest.approx(f["airmass"])
        assert header["DATE-OBS"].startswith(f["date_obs"][:19])


def test_standards_cover_an_airmass_range(night):
    _, truth, _ = night
    spans: dict[tuple[str, str], list[float]] = {}
    for f in truth["frames"]:
        if f["kind"] == "standard":
            spans.setdefault((f["field"], f["filter"]), []).append(f["airmass"])
    assert len(spans) == 9
    for key, airmasses in spans.items():
        assert max(airmasses) - min(airmasses) >= 0.4, key


def test_standard_star_flux_matches_truth(night):
    summary, truth, _ = night
    response = np.load(summary.truth_dir / "response_R.npy")
    bias_pattern = np.load(summary.truth_dir / "bias_pattern.npy")
    zp, k = truth["night"]["zero_points"]["R"], truth["night"]["extinction"]["R"]
    for seq in (81, 85, 109):
        f = frame_of(truth, seq)
        star = next(s for s in f["stars"] if s["id"].endswith("-std"))
        # The truth's rate follows the documented flux model from the catalogue magnitude.
        assert star["adu_per_s"] == pytest.approx(
            10 ** (-0.4 * (star["mag"] - zp + k * f["airmass_mid"])), rel=1e-3)
        data = fits.getdata(summary.directory / f["filename"]).astype(float)
        flat = (data - f["bias_level"] - bias_pattern) / np.where(response > 0.1, response, np.nan)
        yy, xx = np.indices(data.shape)
        r = np.hypot(xx + 1 - star["x"], yy + 1 - star["y"])
        radius = max(4 * f["fwhm_px"], 5)
        sky = np.nanmedian(flat[(r > radius + 3) & (r < radius + 10)])
        measured = np.nansum(flat[r < radius] - sky)
        assert measured == pytest.approx(star["adu_per_s"] * f["exptime"], rel=0.03), seq


def test_standard_magnitudes_are_synthetic_ab(night):
    _, truth, _ = night
    filters = load_profile("alfosc").filters
    for name, mags in truth["standards"].items():
        assert mags == synthetic_magnitudes(name, [filters[i] for i in (74, 75, 76, 78, 49)])


def test_hz44_synthetic_v_matches_oke():
    filters = load_profile("alfosc").filters
    oke = read_oke_table()
    for name in ("HZ 44", "BD+75 325", "Feige 34"):
        v = synthetic_magnitudes(name, [filters[75]])["V"]
        assert v == pytest.approx(oke[name].v_mag, abs=0.1), name
    assert canonical_name("BD+75d325") == "BD+75 325" and canonical_name("HZ44") == "HZ 44"


def test_true_wcs_places_the_catalogue(night):
    summary, truth, _ = night
    for seq in (79, 98, 103):
        f = frame_of(truth, seq)
        wcs = WCS(fits.Header(f["wcs"]))
        catalogue = np.genfromtxt(summary.truth_dir / f"catalogue_{f['field']}.csv",
                                  delimiter=",", names=True, dtype=None, encoding=None)
        by_id = {row["id"]: row for row in catalogue}
        for star in f["stars"][:20]:
            row = by_id[star["id"]]
            x, y = wcs.world_to_pixel_values(row["ra"], row["dec"])
            assert x + 1 == pytest.approx(star["x"], abs=0.01)
            assert y + 1 == pytest.approx(star["y"], abs=0.01)
        header = fits.getheader(summary.directory / f["filename"])
        centre = wcs.pixel_to_world_values(f["wcs"]["CRPIX1"] - 1, f["wcs"]["CRPIX2"] - 1)
        offset = np.hypot((centre[0] - header["RA"]) * np.cos(np.radians(header["DEC"])),
                          centre[1] - header["DEC"]) * 3600
        assert 0 < offset < 20, "the true centre is a few arcsec off the header pointing"
        assert abs(f["wcs"]["CD1_1"]) * 3600 == pytest.approx(0.76, rel=0.01)
        assert f["wcs"]["CD1_1"] < 0 < f["wcs"]["CD2_2"], "north up, east left"
    science = frame_of(truth, 98)
    assert 60 <= len(science["stars"]) <= 300
    assert sum(s["mag"] < 17.5 for s in science["stars"]) >= 8, "enough bright stars to solve"


def test_response_map_has_one_percent_pixel_rms(night):
    summary, truth, _ = night
    response = np.load(summary.truth_dir / "response_R.npy")
    assert response.shape == (513, 550)
    centre = response[150:360, 150:400].astype(float)
    smooth = ndimage.median_filter(centre, 7)
    rms = np.std(centre / smooth)
    assert 0.007 < rms < 0.014
    assert response[:, :10].max() == 0, "the prescan sees no light"
    assert response[:2, 100:400].max() < 0.05, "the filter's shadow at the bottom"
    flat = fits.getdata(summary.directory / "ALrd120060.fits").astype(float)
    f = frame_of(truth, 60)
    # A good sky flat divided by the true response is flat to the twilight gradient (<~1 %).
    ratio = (flat[150:360, 150:400] - f["bias_level"]) / response[150:360, 150:400]
    assert np.std(ratio) / np.mean(ratio) < 0.015


def test_two_nights_differ_and_drop_quirks(tmp_path):
    summaries = simulate_run(tmp_path, nights=2, small=True, seed=3, only={1, 79}, jobs=1)
    assert [s.name for s in summaries] == ["N1", "N2"]
    assert summaries[1].night == "2008-04-13"
    assert (summaries[1].directory / "ALrd130001.fits").exists()
    assert fits.getheader(summaries[1].directory / "ALrd130079.fits")["OBJECT"] == "HZ44 #78"
    t1, t2 = load_truth(summaries[0].directory), load_truth(summaries[1].directory)
    assert t1["night"]["zero_points"] != t2["night"]["zero_points"]
    for band, zp in t1["night"]["zero_points"].items():
        assert abs(zp - t2["night"]["zero_points"][band]) <= 0.06


def test_bad_arguments(tmp_path):
    with pytest.raises(SimulationError):
        simulate_run(tmp_path, nights=0)
    with pytest.raises(SimulationError):
        simulate_run(tmp_path, small=True, only={999})
    with pytest.raises(SimulationError):
        simulate_run(tmp_path, jobs=0)
    with pytest.raises(SimulationError):
        load_truth(tmp_path)


def test_star_in_the_last_r_flats_moves(night):
    summary, truth, _ = night
    positions = []
    for seq in (61, 62):
        f = frame_of(truth, seq)
        assert "star_in_flat" in f["flags"]
        star = next(s for s in f["stars"] if s["mag"] < 14)
        data = fits.getdata(summary.directory / f["filename"]).astype(float)
        x, y = int(round(star["x"])) - 1, int(round(star["y"])) - 1
        assert data[y - 1: y + 2, x - 1: x + 2].max() > 1.2 * np.median(data[150:360, 150:400])
        positions.append((star["x"], star["y"]))
    assert np.hypot(positions[0][0] - positions[1][0], positions[0][1] - positions[1][1]) > 20
    assert not any(s["mag"] < 14 for s in frame_of(truth, 57)["stars"])


def test_runs_with_only_accumulate_in_the_truth(tmp_path):
    simulate_run(tmp_path, small=True, only={1}, jobs=1)
    simulate_run(tmp_path, small=True, only={2}, jobs=1)
    truth = load_truth(tmp_path / "N1")
    assert [f["sequence"] for f in truth["frames"]] == [1, 2]
    simulate_run(tmp_path, small=True, seed=5, only={3}, jobs=1)
    assert [f["sequence"] for f in load_truth(tmp_path / "N1")["frames"]] == [3]
