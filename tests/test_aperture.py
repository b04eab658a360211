"""Aperture photometry: synthetic stars in memory, then the standards of the reduced night."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from astropy.nddata import CCDData, StdDevUncertainty

from nota.reduce.aperture import (
    PhotometryError,
    measure_star,
    measure_stars,
)
from nota.reduce.standard_star import find_standard
from nota.simulate.physics import add_stars
from nota.simulate.truth import load_truth

# Reduced frames are the raw frames trimmed with [16:525,6:508] (FITS, 1-based).
TRIM_X0, TRIM_Y0 = 15, 5


def star_frame(stars, *, fwhm=2.0, sky=100.0, shape=(80, 90), gain=1.0, read_noise=5.0,
               seed=0, exptime=10.0) -> CCDData:
    """Moffat stars (the simulator's own) on a flat sky with photon and read noise."""
    rng = np.random.default_rng(seed)
    signal = np.full(shape, sky, dtype=np.float32)
    x, y, flux = (np.array(v, dtype=float) for v in zip(*stars))
    add_stars(signal, x, y, flux, fwhm)
    sigma = np.sqrt(signal / gain + read_noise**2)
    data = signal + sigma * rng.standard_normal(shape)
    return CCDData(data.astype(np.float32), unit="adu", uncertainty=StdDevUncertainty(sigma),
                   mask=np.zeros(shape, bool), meta={"EXPTIME": exptime})


def test_flux_position_and_magnitude_of_a_synthetic_star():
    ccd = star_frame([(40.3, 37.8, 50000.0)])
    m = measure_star(ccd, 41, 37)
    assert (m.x, m.y) == (pytest.approx(40.3, abs=0.03), pytest.approx(37.8, abs=0.03))
    assert m.flux == pytest.approx(50000.0, rel=0.01)
    assert m.mag == pytest.approx(-2.5 * math.log10(m.flux / 10.0))
    assert m.mag_err == pytest.approx(1.0857 * m.flux_err / m.flux, rel=1e-3)
    assert m.sky == pytest.approx(100.0, abs=1.0)
    assert m.fwhm == pytest.approx(2.0, rel=0.2)   # a Gaussian fit to a Moffat star
    assert m.aperture_radius == pytest.approx(3 * m.fwhm)
    assert m.usable and m.flags == ()


def test_flux_error_matches_the_scatter_of_repeated_frames():
    fluxes, errors = [], []
    for seed in range(40):
        m = measure_star(star_frame([(40.0, 40.0, 3000.0)], seed=seed), 40, 40, fwhm=2.0)
        fluxes.append(m.flux)
        errors.append(m.flux_err)
    assert np.std(fluxes) == pytest.approx(np.mean(errors), rel=0.3)
    assert np.mean(fluxes) == pytest.approx(3000.0, rel=0.02)


def test_a_masked_pixel_in_the_aperture_is_replaced_by_its_mirror():
    ccd = star_frame([(40.0, 40.0, 50000.0)])
    ccd.data[41, 42] += 5000.0          # a cosmic ray, masked by the reduction
    ccd.mask[41, 42] = True
    m = measure_star(ccd, 40, 40)
    assert "masked" in m.flags and m.usable
    assert m.flux == pytest.approx(50000.0, rel=0.01)


def test_a_masked_core_makes_the_star_unusable():
    ccd = star_frame([(40.0, 40.0, 50000.0)])
    ccd.mask[39:42, 39:42] = True       # saturated pixels are masked by the reduction
    m = measure_star(ccd, 40, 40)
    assert "core_masked" in m.flags and not m.usable


def test_measure_stars_uses_one_aperture_for_the_frame():
    ccd = star_frame([(20.0, 20.0, 20000.0), (60.0, 50.0, 8000.0)], fwhm=2.5)
    a, b = measure_stars(ccd, [(20, 20), (60, 50)])
    assert a.aperture_radius == b.aperture_radius
    assert abs(a.flux - 20000) < 4 * a.flux_err and abs(b.flux - 8000) < 4 * b.flux_err


def test_find_standard_skips_a_brighter_saturated_star():
    ccd = star_frame([(45.0, 40.0, 40000.0), (50.0, 35.0, 400000.0), (10.0, 10.0, 900000.0)])
    ccd.mask[34:37, 49:52] = True       # the brighter star's saturated core
    x, y = find_standard(ccd, fwhm=2.0)
    assert (x, y) == (pytest.approx(45, abs=1), pytest.approx(40, abs=1))
    x, y = find_standard(ccd, expected_xy=(12, 12), fwhm=2.0)
    assert (x, y) == (pytest.approx(10, abs=1), pytest.approx(10, abs=1))


def test_errors_a_user_can_meet():
    ccd = star_frame([(40.0, 40.0, 5000.0)])
    with pytest.raises(PhotometryError, match="off the"):
        measure_star(ccd, 200, 40)
    ccd.meta["EXPTIME"] = 0.0
    with pytest.raises(PhotometryError, match="exposure time"):
        measure_star(ccd, 40, 40)
    blank = CCDData(np.zeros((60, 60), np.float32), unit="adu", meta={"EXPTIME": 1.0})
    blank.data += np.random.default_rng(1).normal(0, 1, blank.shape).astype(np.float32)
    with pytest.raises(PhotometryError, match="no source"):
        find_standard(blank)


# --- the reduced simulated night -------------------------------------------------------


def reduced_standards(db_path: Path, products_root: str) -> list[tuple[dict, CCDData]]:
    """(archive row, reduced frame) of every standard-star frame of the night."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    rows = conn.execute(
        "SELECT filename, filter, exptime, airmass, object, night FROM frames "
        "WHERE kind = 'standard' ORDER BY filename").fetchall()
    conn.close()
    out = []
    for row in rows:
        path = Path(products_root) / row["night"] / "reduced" / f"fzt_{row['filename']}"
        out.append((dict(row), CCDData.read(path, hdu_uncertainty="UNCERT", hdu_mask="MASK")))
    return out


def flat_scale(ccd: CCDData, products_root: str, night: str, response: np.ndarray,
               x: float, y: float) -> float:
    """Reduced ADU per true ADU near (x, y): the truth's response over the master flat.

    The truth's fluxes are before the response (1 at the optical centre); the reduction
    divides by a flat normalised to mean 1 over the whole (vignetted) frame, so a star
    keeps response/flat of its light: ~0.97 in R and ~0.77 in the narrow bands.
    """
    flat = CCDData.read(Path(products_root) / night / "master_flat" / ccd.header["NOTAFLAT"])
    ix, iy = round(x), round(y)
    box = (slice(iy - 3, iy + 4), slice(ix - 3, ix + 4))
    trimmed = response[TRIM_Y0:TRIM_Y0 + flat.shape[0], TRIM_X0:TRIM_X0 + flat.shape[1]]
    return float(np.median(trimmed[box] / flat.data[box]))


@pytest.fixture(scope="module")
def standards(_reduced, small_night):
    db_path, options = _reduced
    truth = load_truth(small_night.directory)
    by_name = {f["filename"]: f for f in truth["frames"]}
    out = []
    for row, ccd in reduced_standards(db_path, options.products_root):
        frame = by_name[row["filename"]]
        (star,) = [s for s in frame["stars"] if s["id"].endswith("-std")]
        out.append((row, ccd, frame, star))
    return out


def test_standards_fluxes_match_the_truth(standards, small_night, _reduced):
    _, options = _reduced
    truth_dir = small_night.truth_dir
    assert len(standards) == 25
    for row, ccd, frame, star in standards:
        # Truth positions are 1-based raw pixels; the reduced frame starts at raw (16, 6).
        tx, ty = star["x"] - 1 - TRIM_X0, star["y"] - 1 - TRIM_Y0
        x, y = find_standard(ccd)
        assert math.hypot(x - tx, y - ty) < 1.0, row["filename"]
        m = measure_star(ccd, x, y)
        assert m.usable, (row["filename"], m.flags)
        assert math.hypot(m.x - tx, m.y - ty) < 0.1, row["filename"]
        response = np.load(truth_dir / f"response_{frame['response']}.npy")
        scale = flat_scale(ccd, options.products_root, row["night"], response, tx, ty)
        expected = star["adu_per_s"] * row["exptime"] * scale
        assert m.flux == pytest.approx(expected, rel=0.02), row["filename"]
        assert m.flux_err / m.flux < 0.02
        assert abs(m.flux - expected) < 4 * m.flux_err + 0.005 * expected, row["filename"]
        assert m.exptime == row["exptime"]


def test_fwhm_follows_the_seeing(standards):
    measured = np.array([measure_star(ccd, *find_standard(ccd)).fwhm for _, ccd, _, _ in standards])
    true = np.array([frame["fwhm_px"] for _, _, frame, _ in standards])
    # A Gaussian fitted to the simulator's Moffat (beta 4) comes out ~10-25 % wider.
    assert np.all((measured / true > 1.0) & (measured / true < 1.35))
    assert np.corrcoef(measured, true)[0, 1] > 0.9
