"""Single-frame cosmic-ray cleaning, held to the simulator's truth on the reduced small night.

The library (``remove_cosmics``) is tested on frames reduced without it; the pipeline
(``nota reduce``, which cleans every reduced frame and keeps what it cleaned in CRMASK) on
the night reduced with its defaults.

Truth pixels are raw 0-based (row, col); the small frames are trimmed to FITS [16:525,6:508],
so a raw pixel lands at (row - 5, col - 15) of a reduced frame, and a truth star at
1-based (x, y) at 0-based (x - 16, y - 6).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData
from nota.reduce.cosmics import CosmicsParameters, estimate_fwhm, remove_cosmics

from nota.simulate import load_truth

GAIN, READ_NOISE, SATURATION = 0.73, 3.65, 60000.0
ROW0, COL0 = 5, 15
# Two of each: R 300 s and narrow-band 900 s science, and standards of 2 s to 60 s.
FRAMES = ["ALrd120103.fits", "ALrd120088.fits", "ALrd120106.fits", "ALrd120113.fits",
          "ALrd120081.fits", "ALrd120102.fits", "ALrd120085.fits", "ALrd120124.fits"]


def reduced_path(options, name: str) -> Path:
    return Path(options.products_root) / "2008-04-12" / "reduced" / f"fzt_{name}"


def read_reduced(options, name: str) -> CCDData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CCDData.read(reduced_path(options, name), hdu_uncertainty="UNCERT", hdu_mask="MASK")


def truth_hits(truth_dir: Path, name: str, shape) -> tuple[np.ndarray, np.ndarray]:
    """Boolean map of the pixels a cosmic ray hit, and the ADU it left, in reduced pixels."""
    z = np.load(truth_dir / "cosmics" / f"{name.removesuffix('.fits')}.npz")
    rows, cols = np.unravel_index(z["index"], (513, 550))
    rows, cols = rows - ROW0, cols - COL0
    inside = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    hit = np.zeros(shape, bool)
    adu = np.zeros(shape, np.float32)
    hit[rows[inside], cols[inside]] = True
    adu[rows[inside], cols[inside]] = z["adu"][inside]
    return hit, adu


def star_pixels(frame: dict, ccd: CCDData, hit: np.ndarray, min_snr: float = 50.0) -> np.ndarray:
    """Pixels within 1.5 FWHM of true stars of total flux >= ``min_snr`` sky sigma.

    Stars a cosmic ray hit within 2 px are left out: the hit's group may rightly take them.
    """
    shape = ccd.shape
    sky_sigma = float(np.median(ccd.uncertainty.array))
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    radius = 1.5 * frame["fwhm_px"]
    out = np.zeros(shape, bool)
    for star in frame["stars"]:
        flux = star["adu_per_s"] * frame["exptime"] * star["response"]
        x, y = star["x"] - 16, star["y"] - 6
        if flux < min_snr * sky_sigma or not (0 <= x < shape[1] and 0 <= y < shape[0]):
            continue
        disc = (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
        near = (yy - y) ** 2 + (xx - x) ** 2 <= (radius + 2) ** 2
        if not (near & hit).any():
            out |= disc
    return out


@pytest.fixture(scope="module")
def cleaned(_reduced_unclean, small_night):
    """Each test frame reduced, cleaned once, with its truth."""
    _, options = _reduced_unclean
    truth = {f["filename"]: f for f in load_truth(small_night.directory)["frames"]}
    out = {}
    for name in FRAMES:
        ccd = read_reduced(options, name)
        clean, n = remove_cosmics(ccd, gain=GAIN, read_noise=READ_NOISE, saturation=SATURATION)
        hit, adu = truth_hits(small_night.truth_dir, name, ccd.shape)
        out[name] = (ccd, clean, n, hit, adu, truth[name])
    return out


def test_truth_stars_land_where_the_trim_says(cleaned):
    ccd, _, _, _, _, frame = cleaned["ALrd120081.fits"]
    star = max(frame["stars"], key=lambda s: s["adu_per_s"] * s["response"])
    x, y = round(star["x"] - 16), round(star["y"] - 6)
    box = ccd.data[y - 2:y + 3, x - 2:x + 3]
    assert np.unravel_index(np.argmax(box), box.shape) == (2, 2)


def test_recall_of_detectable_hits(cleaned):
    """> 95 % of hit pixels that stand 5 sigma above their noise, on unmasked pixels."""
    found = total = 0
    for ccd, clean, _, hit, adu, _ in cleaned.values():
        detectable = hit & ~ccd.mask & (adu >= 5 * ccd.uncertainty.array)
        newly = clean.mask & ~ccd.mask
        found += int((newly & detectable).sum())
        total += int(detectable.sum())
    assert total > 1000
    assert found / total >= 0.945, f"{found}/{total}"


def test_bright_stars_are_not_taken_for_hits(cleaned):
    flagged = total = 0
    for ccd, clean, _, hit, _, frame in cleaned.values():
        stars = star_pixels(frame, ccd, hit) & ~ccd.mask & ~hit
        flagged += int((clean.mask & ~ccd.mask & stars).sum())
        total += int(stars.sum())
    assert total > 1000
    assert flagged / total < 0.001, f"{flagged}/{total}"


def test_plain_lacosmic_does_take_undersampled_stars(cleaned):
    """Why the star test exists: without it L.A.Cosmic flags many star pixels here."""
    ccd, _, _, hit, _, frame = cleaned["ALrd120103.fits"]
    spare_nothing = CosmicsParameters(star_margin=-np.inf)
    clean, _ = remove_cosmics(ccd, gain=GAIN, read_noise=READ_NOISE, saturation=SATURATION,
                              params=spare_nothing)
    stars = star_pixels(frame, ccd, hit) & ~ccd.mask & ~hit
    assert (clean.mask & stars).sum() > 0.05 * stars.sum()


def test_cleaned_count_is_the_mask_growth_and_only_masked_pixels_change(cleaned):
    for ccd, clean, n, _, _, _ in cleaned.values():
        grown = clean.mask & ~ccd.mask
        assert n == int(grown.sum()) > 0
        assert not (ccd.mask & ~clean.mask).any()
        assert np.array_equal(clean.data[~grown], ccd.data[~grown])
        assert np.array_equal(clean.uncertainty.array, ccd.uncertainty.array)
        assert clean.header["NCOSMIC"] == n


def test_cleaned_values_are_the_sky_not_the_hit(cleaned, small_night):
    """Where a strong hit was cleaned, the value is back within noise of the hit-free pixel."""
    ccd, clean, _, hit, adu, frame = cleaned["ALrd120088.fits"]
    response = np.load(small_night.truth_dir / f"response_{frame['response']}.npy")
    response = response[ROW0:ROW0 + ccd.shape[0], COL0:COL0 + ccd.shape[1]]
    strong = hit & clean.mask & ~ccd.mask & (adu > 20 * ccd.uncertainty.array) & (response > 0.5)
    assert strong.sum() > 50
    # The flat divides a hit's charge by the response normalised to its mean.
    hit_free = ccd.data[strong] - adu[strong] * response.mean() / response[strong]
    noise = np.median(ccd.uncertainty.array[strong])
    assert np.median(np.abs(ccd.data[strong] - hit_free)) > 20 * noise
    assert np.median(np.abs(clean.data[strong] - hit_free)) < 1.5 * noise


def test_tiles_find_what_the_whole_frame_finds(cleaned):
    """L.A.Cosmic on tiles around the prefilter's candidates flags what it flags run on the
    whole frame, but for the whole frame's 4-px mirrored border (its own artefacts there)."""
    for name, (ccd, clean, _, _, _, _) in cleaned.items():
        whole, _ = remove_cosmics(ccd, gain=GAIN, read_noise=READ_NOISE, saturation=SATURATION, tiled=False)
        a = (whole.mask & ~ccd.mask)[4:-4, 4:-4]
        b = (clean.mask & ~ccd.mask)[4:-4, 4:-4]
        assert (a ^ b).sum() <= max(3, 0.01 * a.sum()), name


def test_hits_on_the_first_and_last_pixels_are_cleaned():
    """Tiles reaching past the frame are mirrored: a hit on an edge row or column is found."""
    rng = np.random.default_rng(5)
    data = rng.normal(100.0, 5.0, (90, 120)).astype(np.float32)
    hits = [(0, 40), (89, 70), (30, 0), (60, 119), (45, 60)]
    for y, x in hits:
        data[y, x] += 2000.0
    clean, n = remove_cosmics(CCDData(data, unit="adu"), gain=1.0, read_noise=5.0, saturation=60000)
    assert all(clean.mask[y, x] for y, x in hits)
    assert n == len(hits)


def test_fwhm_is_measured_from_the_frame(cleaned):
    for name in ("ALrd120103.fits", "ALrd120088.fits", "ALrd120113.fits"):
        ccd, _, _, _, _, frame = cleaned[name]
        fwhm = estimate_fwhm(ccd, gain=GAIN, read_noise=READ_NOISE)
        assert fwhm == pytest.approx(frame["fwhm_px"], rel=0.1)


def test_known_star_positions_are_never_flagged(cleaned):
    ccd, _, _, _, _, frame = cleaned["ALrd120088.fits"]
    stars = [(s["x"] - 16, s["y"] - 6) for s in frame["stars"]]
    clean, _ = remove_cosmics(ccd, gain=GAIN, read_noise=READ_NOISE, saturation=SATURATION,
                              params=CosmicsParameters(star_margin=-np.inf), stars=stars)
    yy, xx = np.mgrid[:ccd.shape[0], :ccd.shape[1]]
    x, y = stars[0]
    assert not (clean.mask & ~ccd.mask)[(yy - y) ** 2 + (xx - x) ** 2 <= 1.0].any()


def test_unknown_parameter_is_refused(cleaned):
    ccd = cleaned["ALrd120081.fits"][0]
    with pytest.raises(TypeError):
        remove_cosmics(ccd, gain=GAIN, read_noise=READ_NOISE, saturation=SATURATION, sigclp=3)


# The pipeline: `nota reduce` cleans every reduced frame ---------------------------------------


@pytest.fixture(scope="module")
def pipeline(_reduced, _reduced_unclean, small_night):
    """Every science and standard frame as nota reduce made it: product, CRMASK, the same
    frame reduced without cleaning, its truth, and the cleaned count the archive holds."""
    import sqlite3

    path, options = _reduced
    truth = {f["filename"]: f for f in load_truth(small_night.directory)["frames"]}
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT f.filename, p.cosmic_pixels FROM frames f JOIN products p USING (file_id)"
                        " WHERE f.kind IN ('science', 'standard') AND p.current = 1").fetchall()
    conn.close()
    out = {}
    for name, counted in rows:
        with fits.open(reduced_path(options, name)) as hdul:
            crmask = hdul["CRMASK"].data.astype(bool)
            ncosmic = hdul[0].header["NCOSMIC"]
        out[name] = (read_reduced(options, name), crmask, ncosmic, counted,
                     read_reduced(_reduced_unclean[1], name), truth[name])
    assert len(out) > 40
    return out


def test_pipeline_masks_over_95_percent_of_the_hits(pipeline, small_night):
    """> 95 % of the injected hit pixels 5 sigma above their noise, on every science and
    standard frame of the night, are in the product's mask and its CRMASK."""
    found = total = 0
    for name, (ccd, crmask, _, _, before, _) in pipeline.items():
        hit, adu = truth_hits(small_night.truth_dir, name, ccd.shape)
        detectable = hit & ~before.mask & (adu >= 5 * before.uncertainty.array)
        assert not (crmask & ~ccd.mask).any()
        found += int((crmask & detectable).sum())
        total += int(detectable.sum())
    assert total > 5000
    assert found / total > 0.95, f"{found}/{total}"


def test_pipeline_leaves_stars_alone(pipeline, small_night):
    """< 0.1 % of the pixels of bright stars taken for cosmic rays."""
    flagged = total = 0
    for name, (ccd, crmask, _, _, before, frame) in pipeline.items():
        hit, _ = truth_hits(small_night.truth_dir, name, ccd.shape)
        stars = star_pixels(frame, before, hit) & ~before.mask & ~hit
        flagged += int((crmask & stars).sum())
        total += int(stars.sum())
    assert total > 5000
    assert flagged / total < 0.001, f"{flagged}/{total}"


def test_pipeline_changes_only_what_it_counts(pipeline):
    """Outside CRMASK the product is the uncleaned reduction; NCOSMIC and the product's row hold the count."""
    for ccd, crmask, ncosmic, counted, before, _ in pipeline.values():
        assert ncosmic == counted == int(crmask.sum())
        assert np.array_equal(ccd.data[~crmask], before.data[~crmask])
        assert np.array_equal(ccd.mask, before.mask | crmask)
        assert "L.A.Cosmic" in str(ccd.header["HISTORY"])


def test_non_finite_pixels_warn_nothing_and_hits_are_still_found():
    """Real frames carry NaN (a flat's dead column divided through) and NaN noise: the
    star test and the FWHM measurement pass over them without a numpy warning, and a hit
    beside them is still cleaned."""
    rng = np.random.default_rng(3)
    data = rng.normal(100.0, 5.0, (80, 80)).astype(np.float32)
    yy, xx = np.mgrid[:80, :80]
    for y, x in [(20, 20), (50, 60), (60, 25)]:  # stars at 2 px FWHM
        data += (4000 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 0.85**2))).astype(np.float32)
    data[40, 40] += 3000.0  # a one-pixel hit
    data[:, 10] = np.nan
    data[42, 41] = np.nan  # inside the star test's box around the hit
    sigma = np.full(data.shape, 5.0, np.float32)
    sigma[:, 10] = np.nan
    from astropy.nddata import StdDevUncertainty

    ccd = CCDData(data, unit="adu", uncertainty=StdDevUncertainty(sigma))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        clean, n = remove_cosmics(ccd, gain=1.0, read_noise=5.0, saturation=60000)
    assert clean.mask[40, 40] and n >= 1
    assert not clean.mask[20, 20] and not clean.mask[50, 60]
    assert clean.mask[42, 41] and clean.mask[:, 10].all()  # what is not a number is not data
