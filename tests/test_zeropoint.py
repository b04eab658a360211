"""Zero points and extinction of the reduced simulated night against its truth."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.nddata import CCDData

from nota.instruments import profile_named
from nota.pipeline.steps.photometric_calibration import params_for
from nota.instruments import load_profile
from nota.passbands import ab_magnitude, passband_for_filter, top_hat
from nota.reduce.aperture import measure_star
from nota.reduce.standard_star import find_standard
from nota.reduce.zeropoint import (
    CalibrationError,
    FitOptions,
    StandardObservation,
    extinction_curve,
    extinction_from_curve,
    fit_zero_point,
    plot_fit_png,
)
from nota.simulate.truth import load_truth
from nota.standards import (
    CALSPEC_FILES,
    catalogue_colour,
    catalogue_magnitudes,
    load_calspec,
    read_oke_table,
    find_filter,
    standard_for_object,
)
from test_aperture import TRIM_X0, TRIM_Y0, reduced_standards

FILTERS = ("R", "NII_658", "661_5")


@pytest.fixture(scope="module")
def night(_reduced, small_night):
    """Per filter: the standards' observations (colour in the filter's profile index, if
    any) and the truth's ZP (in reduced ADU) and k."""
    db_path, options = _reduced
    truth = load_truth(small_night.directory)
    observations: dict[str, list[StandardObservation]] = {}
    flats: dict[str, str] = {}
    for row, ccd in reduced_standards(db_path, options.products_root):
        m = measure_star(ccd, *find_standard(ccd))
        star = standard_for_object(row["object"])
        mag, system = catalogue_magnitudes(star, row["filter"])
        assert system == "AB"
        index = params_for(profile_named("ALFOSC"), row["filter"], ()).colour_index
        observations.setdefault(row["filter"], []).append(StandardObservation(
            row["filename"], star, row["airmass"], m.mag, m.mag_err, mag,
            colour=catalogue_colour(star, index) if index else None))
        flats[row["filter"]] = str(Path(options.products_root) / row["night"] / "master_flat"
                                   / ccd.header["NOTAFLAT"])
    expected = {}
    for band in FILTERS:
        # The truth's ZP is for a response of 1 at the optical centre; reduced frames are
        # divided by a flat of mean 1 over the vignetted field, which scales every star
        # (near the centre, where the standards sit) by response / flat.
        flat = CCDData.read(flats[band]).data
        response = np.load(small_night.truth_dir / f"response_{band}.npy")
        response = response[TRIM_Y0:TRIM_Y0 + flat.shape[0], TRIM_X0:TRIM_X0 + flat.shape[1]]
        cy, cx = flat.shape[0] // 2, flat.shape[1] // 2
        box = (slice(cy - 15, cy + 15), slice(cx - 15, cx + 15))
        scale = float(np.median(response[box] / flat[box]))
        expected[band] = (truth["night"]["zero_points"][band] + 2.5 * math.log10(scale),
                          truth["night"]["extinction"][band])
    return observations, expected


def curve_k(band: str) -> float:
    return extinction_from_curve(passband_for_filter(find_filter(band)), "lapalma_extinction.dat")


@pytest.mark.parametrize("band", FILTERS)
def test_zero_point_and_extinction_match_the_truth(night, band):
    observations, expected = night
    zp, k = expected[band]
    index = params_for(profile_named("ALFOSC"), band, ()).colour_index
    fit = fit_zero_point(observations[band], filter_name=band, fallback_k=curve_k(band),
                         colour_index=index)
    # Three hot standards: the colour term cannot be measured and is left out.
    why = ("standards span 0.01 mag in V-R (< 0.3)" if band == "R"
           else f"no colour index for {band}")
    assert fit.k_fitted and fit.method == f"zero point and extinction fitted; colour term not fitted: {why}"
    assert fit.colour_term is None
    assert fit.n_used >= 8 and fit.n_rejected == 0
    assert fit.k == pytest.approx(k, abs=0.02)
    assert fit.zp == pytest.approx(zp, abs=0.02)
    assert abs(fit.zp - zp) < 3 * fit.zp_err and abs(fit.k - k) < 3 * fit.k_err
    assert fit.rms < 0.02
    # The calibrated magnitude of each standard comes back within a few hundredths.
    for o in observations[band]:
        assert fit.magnitude(o.m_instrumental, o.airmass) == pytest.approx(o.m_catalogue, abs=0.03)


def test_the_nights_standards_cannot_measure_a_colour_term(night):
    """Forced to fit c, the night's three hot standards (0.01 mag apart in V-R) find the
    simulator's c = 0 (it gives each star its synthetic magnitude) with a useless error."""
    observations, expected = night
    forced = FitOptions(min_colour_range=0.0)
    fit = fit_zero_point(observations["R"], filter_name="R", colour_index="V-R", options=forced)
    assert fit.colour_fitted and abs(fit.colour_term) < 3 * fit.colour_term_err
    assert fit.colour_term_err > 0.3
    assert fit.k == pytest.approx(expected["R"][1], abs=0.02)


def test_an_outlier_is_rejected(night):
    observations, expected = night
    obs = list(observations["R"])
    bad = obs[3]
    obs[3] = StandardObservation(bad.frame, bad.star, bad.airmass, bad.m_instrumental + 0.3,
                                 bad.m_instrumental_err, bad.m_catalogue)
    fit = fit_zero_point(obs, filter_name="R")
    assert fit.rejected == (obs[3].label,) and fit.n_used == len(obs) - 1
    zp, k = expected["R"]
    assert fit.zp == pytest.approx(zp, abs=0.02) and fit.k == pytest.approx(k, abs=0.02)


def test_too_few_standards_fall_back_to_a_given_extinction(night):
    observations, expected = night
    zp, k = expected["NII_658"]
    two = observations["NII_658"][:2]
    fit = fit_zero_point(two, filter_name="NII_658", fallback_k=k)
    assert not fit.k_fitted and fit.k == k
    assert "extinction fixed" in fit.method and "fewer than 3" in fit.method
    assert fit.zp == pytest.approx(zp, abs=0.02)
    assert fit.k_err == FitOptions().fallback_k_err
    # The error a science frame inherits grows away from the standards' airmass.
    x_mean = np.mean([o.airmass for o in two])
    assert fit.magnitude_error(x_mean) < fit.magnitude_error(x_mean + 1.0)
    # With the site's mean curve instead of the night's true k, the zero point is off
    # by about (k_curve - k) times the standards' airmass, inside the quoted error.
    k_site = curve_k("NII_658")
    fit = fit_zero_point(two, filter_name="NII_658", fallback_k=k_site)
    assert abs(fit.zp - zp) < 2 * fit.zp_err


def test_too_little_airmass_range_falls_back(night):
    observations, expected = night
    zp, k = expected["R"]
    close = [o for o in observations["R"] if 1.4 < o.airmass < 1.7]   # HZ 44 twice, BD+75 325
    assert len(close) >= 3
    fit = fit_zero_point(close, filter_name="R", fallback_k=k)
    assert "airmass range 0.14" in fit.method and not fit.k_fitted
    assert fit.zp == pytest.approx(zp, abs=0.02)
    with pytest.raises(CalibrationError, match="no fallback"):
        fit_zero_point(close, filter_name="R")
    with pytest.raises(CalibrationError, match="no usable"):
        fit_zero_point([], filter_name="R")


def test_residual_plot_is_a_png(night):
    observations, _ = night
    fit = fit_zero_point(observations["R"], filter_name="R")
    png = plot_fit_png(fit, observations["R"])
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_extinction_from_the_la_palma_curve():
    w, k = extinction_curve("lapalma_extinction.dat")
    narrow = top_hat("x", 6584.0, 36.0)
    assert extinction_from_curve(narrow, "lapalma_extinction.dat") == pytest.approx(np.interp(6584.0, w, k), abs=1e-3)
    # Blue bands see more extinction than red ones; R on La Palma is ~0.05-0.07.
    assert curve_k("B") > curve_k("V") > curve_k("R")
    assert 0.04 < curve_k("R") < 0.08


def test_catalogue_magnitudes_agree_with_oke():
    oke = read_oke_table()
    profile = load_profile("alfosc")
    for name in CALSPEC_FILES:
        v, system = catalogue_magnitudes(name, 75)
        assert system == "AB"
        assert v == pytest.approx(oke[name].v_mag, abs=0.1), name
        # Oke's AB at 5460 Å against the CALSPEC spectrum through a 50 Å band there.
        wavelength, flux = load_calspec(name)
        assert ab_magnitude(wavelength, flux, top_hat("5460", 5460.0, 50.0)) == pytest.approx(
            oke[name].ab_5460, abs=0.05), name
        # Ids, '#78' and names reach the same filter.
        assert catalogue_magnitudes(name, 78) == catalogue_magnitudes(name, "#78") == \
            catalogue_magnitudes(name, profile.filters[78].short_name)


def test_catalogue_colours_of_the_hot_standards():
    """B-V and V-R from each CALSPEC spectrum: all three blue, as Oke (1990) types them
    (sdO, O5p, DO), and within 0.05 mag of each other: too close to measure a colour term."""
    oke = read_oke_table()
    for index in ("B-V", "V-R"):
        first, second = index.split("-")
        colours = {name: catalogue_colour(name, index) for name in CALSPEC_FILES}
        for name, colour in colours.items():
            assert colour == pytest.approx(catalogue_magnitudes(name, first)[0]
                                           - catalogue_magnitudes(name, second)[0], abs=2e-4)
            assert oke[name].sptype[0] in "OD" or oke[name].sptype.startswith("sdO"), oke[name]
            assert -0.5 < colour < -0.3, (name, index, colour)
        assert max(colours.values()) - min(colours.values()) < 0.05
    assert catalogue_colour("HZ 44", "#74-#75") == catalogue_colour("HZ 44", "B-V")
    with pytest.raises(KeyError, match="two filters"):
        catalogue_colour("HZ 44", "B-Q")


def test_catalogue_magnitudes_are_the_simulators(small_night):
    truth = load_truth(small_night.directory)
    for name, mags in truth["standards"].items():
        for band, mag in mags.items():
            assert catalogue_magnitudes(name, band)[0] == pytest.approx(mag, abs=1e-4)


def test_objects_name_their_standard():
    assert standard_for_object("BD+75d325 #78") == "BD+75 325"
    assert standard_for_object("HZ44 #79") == "HZ 44"
    assert standard_for_object("Feige34 R") == "Feige 34"
    assert standard_for_object("C3982 #78 3x900s") is None
