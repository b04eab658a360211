"""Aligning and stacking the GC4496A R 3x300 s series, held to the simulator's truth."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.nddata import CCDData
from nota.reduce.stack import align_series, series_transforms, stack_series

from nota.errors import NotaError
from nota.simulate import load_truth

ROW0, COL0 = 5, 15  # raw pixel (row, col) -> reduced (row - 5, col - 15): FITS [16:525,6:508]
SERIES = ["ALrd120103.fits", "ALrd120104.fits", "ALrd120105.fits"]


@pytest.fixture(scope="module")
def series(_reduced_unclean, small_night):
    """The three reduced frames (not cleaned of cosmic rays: the stack must do it), their
    truth, the transforms, the aligned frames, the stack."""
    _, options = _reduced_unclean
    truth = {f["filename"]: f for f in load_truth(small_night.directory)["frames"]}
    frames = [read_reduced(options, name) for name in SERIES]
    rows = [truth[name] for name in SERIES]
    transforms = series_transforms(frames)
    aligned = align_series(frames)
    stack, info = stack_series(aligned, [r["exptime"] for r in rows],
                               [r["airmass_mid"] for r in rows], names=SERIES)
    return frames, rows, transforms, aligned, stack, info


def read_reduced(options, name: str) -> CCDData:
    path = Path(options.products_root) / "2008-04-12" / "reduced" / f"fzt_{name}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CCDData.read(path, hdu_uncertainty="UNCERT", hdu_mask="MASK")


def _response(small_night) -> np.ndarray:
    return np.load(small_night.truth_dir / "response_R.npy")[ROW0:ROW0 + 503, COL0:COL0 + 510]


def _xy(star: dict) -> tuple[float, float]:
    return star["x"] - 16, star["y"] - 6


def test_alignment_matches_true_star_positions(series):
    """Each transform takes a frame's true star positions onto the reference's to < 0.1 px."""
    _, rows, transforms, _, _, _ = series
    reference = {s["id"]: _xy(s) for s in rows[0]["stars"]}
    for row, transform in zip(rows[1:], transforms[1:]):
        pairs = [(_xy(s), reference[s["id"]]) for s in row["stars"]
                 if s["id"] in reference and s["response"] > 0]
        source, target = (np.array(p, float) for p in zip(*pairs))
        assert len(source) > 50
        shift = np.hypot(*(target - source).T)
        assert np.median(shift) > 5  # the series really is dithered
        residual = np.hypot(*(transform(source) - target).T)
        assert residual.max() < 0.1, residual.max()


def test_aligned_frames_keep_uncertainty_and_mask(series):
    frames, _, _, aligned, _, _ = series
    for before, after in zip(frames, aligned):
        assert isinstance(after, CCDData) and after.shape == before.shape
        assert after.uncertainty is not None and after.mask is not None
        sky = ~after.mask
        assert np.median(after.uncertainty.array[sky]) == pytest.approx(
            np.median(before.uncertainty.array[~before.mask]), rel=0.05)
    # the shifted frames lose a border; saturated cores travel with the stars
    assert aligned[1].mask.sum() > frames[1].mask.sum() + 400


def _hit_free_mean(frames, rows, transforms, small_night) -> np.ndarray:
    """The series averaged with the injected cosmic-ray charge taken out, in stack units."""
    response = _response(small_night)
    clean = []
    for ccd, row in zip(frames, rows):
        z = np.load(small_night.truth_dir / "cosmics" / f"{row['filename'].removesuffix('.fits')}.npz")
        r, c = np.unravel_index(z["index"], (513, 550))
        r, c = r - ROW0, c - COL0
        ok = (r >= 0) & (r < ccd.shape[0]) & (c >= 0) & (c < ccd.shape[1])
        r, c = r[ok], c[ok]
        data = np.array(ccd.data, np.float64)
        # The flat divides a hit's charge like the sky's: by response / mean response.
        lit = response[r, c] > 0.05
        data[r[lit], c[lit]] -= z["adu"][ok][lit] * response.mean() / response[r[lit], c[lit]]
        clean.append(CCDData(data, unit=ccd.unit, mask=ccd.mask))
    from nota.reduce.stack import _warp

    moved = [_warp(np.array(f.data, np.float64), t, f.shape, 1, np.nan) for f, t in zip(clean, transforms)]
    return np.nanmean(moved, axis=0) * len(moved)


def _hit_map(frames, rows, transforms, small_night) -> np.ndarray:
    """Reference pixels that any frame's cosmic-ray charge reached after resampling."""
    from nota.reduce.stack import _warp

    out = np.zeros(frames[0].shape, bool)
    for ccd, row, transform in zip(frames, rows, transforms):
        z = np.load(small_night.truth_dir / "cosmics" / f"{row['filename'].removesuffix('.fits')}.npz")
        r, c = np.unravel_index(z["index"], (513, 550))
        r, c = r - ROW0, c - COL0
        ok = (r >= 0) & (r < ccd.shape[0]) & (c >= 0) & (c < ccd.shape[1])
        hit = np.zeros(ccd.shape)
        hit[r[ok], c[ok]] = 1
        out |= _warp(hit, transform, ccd.shape, 1, 0.0) > 0.25
    return out


def test_stack_has_no_cosmic_rays_left(series, small_night):
    """At the hit pixels, the stack is within noise of the hit-free mean; a plain mean is not."""
    frames, rows, transforms, aligned, stack, _ = series
    expected = _hit_free_mean(frames, rows, transforms, small_night)
    hits = _hit_map(frames, rows, transforms, small_night)
    good = hits & ~stack.mask & np.isfinite(expected)
    sigma = stack.uncertainty.array[good]
    left = int(((stack.data[good] - expected[good]) / sigma > 3).sum())
    plain = np.mean([a.data for a in aligned], axis=0) * 3
    before = int(((plain[good] - expected[good]) / sigma > 3).sum())
    worst = float(np.max((stack.data[good] - expected[good]) / sigma))
    assert good.sum() > 500
    assert before > 50
    assert left <= 0.15 * before, (left, before)
    assert worst < 6


def test_star_flux_per_second_matches_truth(series, small_night):
    """Aperture sums of unsaturated bright stars / EXPTIME = truth adu_per_s x the flat's mean."""
    from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture

    _, rows, _, _, stack, info = series
    response = _response(small_night)
    # The flat divides by the response normalised to its mean: stars come out x mean response.
    scale = float(response.mean())
    ratios = []
    for star in sorted(rows[0]["stars"], key=lambda s: -s["adu_per_s"] * s["response"]):
        x, y = _xy(star)
        if not (15 < x < stack.shape[1] - 15 and 15 < y < stack.shape[0] - 15):
            continue
        if stack.mask[int(y) - 6:int(y) + 7, int(x) - 6:int(x) + 7].any():
            continue  # saturated
        if star["adu_per_s"] * info["exptime"] < 5e4:
            break
        sky = ApertureStats(stack.data, CircularAnnulus((x, y), 8, 12)).median
        total = ApertureStats(stack.data, CircularAperture((x, y), 5)).sum
        area = np.pi * 25
        ratios.append((total - sky * area) / info["exptime"] / (star["adu_per_s"] * scale))
    assert len(ratios) >= 8
    assert np.median(ratios) == pytest.approx(1.0, abs=0.03)
    assert np.percentile(np.abs(np.array(ratios) - 1), 75) < 0.05


def test_exptime_airmass_and_history(series):
    _, rows, _, _, stack, info = series
    total = sum(r["exptime"] for r in rows)
    airmass = sum(r["exptime"] * r["airmass_mid"] for r in rows) / total
    assert info["exptime"] == stack.header["EXPTIME"] == total == 900
    assert stack.header["AIRMASS"] == pytest.approx(airmass, abs=1e-4)
    assert info["airmass"] == pytest.approx(airmass, abs=1e-9)
    assert stack.header["NCOMBINE"] == info["ncombine"] == 3
    history = "\n".join(str(h) for h in stack.header["HISTORY"])
    assert all(name in history for name in SERIES)
    assert info["inputs"] == SERIES


def test_masked_where_every_frame_was_rejected(series):
    _, _, _, aligned, stack, info = series
    everywhere = np.logical_and.reduce([a.mask for a in aligned])
    assert stack.mask[everywhere].all()
    assert info["all_rejected_pixels"] >= int(everywhere.sum())


def test_stack_refuses_mismatched_inputs(series):
    aligned = series[3]
    with pytest.raises(NotaError):
        stack_series(aligned, [300, 300], [1.1, 1.1, 1.1])
    with pytest.raises(NotaError):
        stack_series(aligned, [300, 0, 300], [1.1, 1.1, 1.1])


# The pipeline: `nota reduce` stacks each series it finds -------------------------------------


def _truth_series(truth: dict, min_exposures: int = 3) -> dict[tuple, list[dict]]:
    series: dict[tuple, list[dict]] = {}
    for f in truth["frames"]:
        if f["kind"] == "science":
            series.setdefault((f["object"], f["filter"]), []).append(f)
    return {k: v for k, v in series.items() if len(v) >= min_exposures}


def test_pipeline_stacks_every_series_with_its_exposures(_reduced, small_night):
    """One stack per series of three or more exposures (object, filter, night); its
    provenance lists every exposure; EXPTIME is their sum and AIRMASS the exposure-weighted
    mean of their mid-exposure airmasses, both against the simulator's truth."""
    import sqlite3

    from astropy.io import fits

    path, _ = _reduced
    expected = _truth_series(load_truth(small_night.directory))
    conn = sqlite3.connect(path)
    stacks = conn.execute("SELECT product_id, path, exptime, airmass FROM products"
                          " WHERE kind = 'stack' AND current = 1").fetchall()
    assert len(stacks) == len(expected) >= 10
    for product_id, stack_path, exptime, airmass in stacks:
        names = sorted(r[0] for r in conn.execute(
            "SELECT f.name FROM product_inputs i JOIN products e ON e.product_id = i.input_product_id"
            " JOIN files f ON f.file_id = e.file_id WHERE i.product_id = ? AND i.role = 'exposure'", (product_id,)))
        series = next(v for v in expected.values() if sorted(f["filename"] for f in v) == names)
        t = np.array([f["exptime"] for f in series])
        x = np.array([f["airmass_mid"] for f in series])
        header = fits.getheader(stack_path)
        assert exptime == header["EXPTIME"] == pytest.approx(t.sum())
        assert airmass == pytest.approx(header["AIRMASS"], abs=1e-5)
        assert airmass == pytest.approx((t * x).sum() / t.sum(), abs=2e-4)  # truth rounds to 1e-4
        assert header["NCOMBINE"] == len(series)
        assert header["NOTASTEP"] == "stack"
    conn.close()


def test_pipeline_stack_has_no_cosmic_rays_left(_reduced, series, small_night):
    """The stack nota reduce made of the GC4496A R series (of frames it had also cleaned
    one by one): at the hit pixels it is within noise of the hit-free mean."""
    _, options = _reduced
    frames, rows, transforms, aligned, _, _ = series
    stack = read_product_path(Path(options.products_root) / "2008-04-12" / "stack" / "stack_GC4496A_R_3x300s_R.fits")
    expected = _hit_free_mean(frames, rows, transforms, small_night)
    hits = _hit_map(frames, rows, transforms, small_night)
    good = hits & ~stack.mask & np.isfinite(expected)
    z = (stack.data[good] - expected[good]) / stack.uncertainty.array[good]
    plain = (np.mean([a.data for a in aligned], axis=0) * 3)[good]
    before = int(((plain - expected[good]) / stack.uncertainty.array[good] > 3).sum())
    assert good.sum() > 500 and before > 50
    assert int((z > 3).sum()) <= 0.15 * before
    assert float(np.max(z)) < 6


def read_product_path(path: Path) -> CCDData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CCDData.read(path, hdu_uncertainty="UNCERT", hdu_mask="MASK")


def test_a_narrow_band_series_full_of_hits_still_aligns(_reduced_unclean, small_night):
    """900 s narrow-band frames, not cleaned: more cosmic rays than stars. Alignment falls
    back to median-smoothed frames and still lands within 0.25 px of the true offsets."""
    _, options = _reduced_unclean
    truth = {f["filename"]: f for f in load_truth(small_night.directory)["frames"]}
    names = ["ALrd120116.fits", "ALrd120117.fits", "ALrd120118.fits"]
    transforms = series_transforms([read_reduced(options, n) for n in names])
    reference = {s["id"]: (s["x"], s["y"]) for s in truth[names[0]]["stars"]}
    for name, transform in zip(names[1:], transforms[1:]):
        shifts = [np.subtract(reference[s["id"]], (s["x"], s["y"])) for s in truth[name]["stars"] if s["id"] in reference]
        assert np.hypot(*(transform.translation - np.median(shifts, axis=0))) < 0.25
