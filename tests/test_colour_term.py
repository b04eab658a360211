"""The colour term of the zero-point fit against synthetic standards made from a known truth."""

from __future__ import annotations

import numpy as np
import pytest

from nota.reduce.zeropoint import FitOptions, StandardObservation, fit_zero_point, plot_fit_png

ZP, K, C = 25.10, 0.21, 0.045          # the truth: B on a fair night, a typical CCD colour term
ERR = 0.008                            # each star's photometric error, mag
FLOOR = FitOptions().error_floor       # what the fit adds in quadrature


def standards(colours: dict[str, float], *, seed: int, n: int = 24,
              outlier: float = 0.0) -> list[StandardObservation]:
    """``n`` frames of the stars in turn at airmass 1.0-2.2, with the noise the fit assumes.

    m_catalogue - m_instrumental = ZP - K X + C colour + noise; with ``outlier`` the fifth
    frame is that much off (a cosmic ray on the star, a wrong identification).
    """
    rng = np.random.default_rng(seed)
    stars = list(colours)
    found = []
    for i in range(n):
        star = stars[i % len(stars)]
        airmass = float(rng.uniform(1.0, 2.2))
        delta = ZP - K * airmass + C * colours[star] + rng.normal(0.0, np.hypot(ERR, FLOOR))
        if i == 4:
            delta += outlier
        m_catalogue = 12.0 + colours[star]
        found.append(StandardObservation(f"f{i:02d}", star, airmass, m_catalogue - delta, ERR,
                                         m_catalogue, colour=colours[star]))
    return found


# Landolt-like standards from a hot subdwarf to a K giant.
SPREAD = {"sdO": -0.32, "A0": 0.0, "F5": 0.45, "G2": 0.65, "K0": 1.05, "K5": 1.45}


def test_zero_point_extinction_and_colour_term_are_recovered():
    # One typical night (test_quoted_errors_... checks many: seed 3, say, is a 3-sigma night in c).
    observations = standards(SPREAD, seed=5, outlier=0.25)
    fit = fit_zero_point(observations, filter_name="B", colour_index="B-V")
    assert fit.method == "zero point and extinction fitted; colour term fitted in B-V"
    assert fit.k_fitted and fit.colour_fitted and fit.colour_index == "B-V"
    assert fit.rejected == (observations[4].label,) and fit.n_used == len(observations) - 1
    for value, error, truth in ((fit.zp, fit.zp_err, ZP), (fit.k, fit.k_err, K),
                                (fit.colour_term, fit.colour_term_err, C)):
        assert abs(value - truth) < 3 * error, (value, error, truth)
    assert fit.colour_term_err < 0.01 and fit.rms < 0.02
    # A star of any colour comes back to its catalogue magnitude within the errors.
    for o in observations[5:]:
        calibrated = fit.magnitude(o.m_instrumental, o.airmass, o.colour)
        assert abs(calibrated - o.m_catalogue) < 4 * np.hypot(ERR, FLOOR)


def test_quoted_errors_are_the_scatter_of_the_estimates():
    """Over many nights of the same truth, (fitted - true) / quoted error has spread ~1."""
    pulls = np.array([
        [(f.zp - ZP) / f.zp_err, (f.k - K) / f.k_err, (f.colour_term - C) / f.colour_term_err]
        for f in (fit_zero_point(standards(SPREAD, seed=seed), filter_name="B", colour_index="B-V")
                  for seed in range(300))
    ])
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.2)
    assert np.all((pulls.std(axis=0) > 0.85) & (pulls.std(axis=0) < 1.15)), pulls.std(axis=0)


def test_colour_term_left_out_with_too_little_colour_range():
    hot = {"HZ 44": -0.39, "BD+75 325": -0.44, "Feige 34": -0.44}
    fit = fit_zero_point(standards(hot, seed=5), filter_name="B", colour_index="B-V")
    assert fit.colour_term is None and fit.colour_term_err is None and not fit.colour_fitted
    assert fit.method == ("zero point and extinction fitted; "
                          "colour term not fitted: standards span 0.05 mag in B-V (< 0.3)")
    # The true colour term then sits in the zero point, at the stars' mean colour.
    assert fit.zp == pytest.approx(ZP + C * np.mean(list(hot.values())), abs=3 * fit.zp_err)
    assert fit.k == pytest.approx(K, abs=3 * fit.k_err)


def test_colour_term_left_out_with_too_few_stars():
    two = {"sdO": -0.32, "K5": 1.45}
    fit = fit_zero_point(standards(two, seed=6), filter_name="V", colour_index="B-V")
    assert fit.colour_term is None
    assert fit.method.endswith("colour term not fitted: 2 standard star(s), fewer than 3")
    # A profile may ask for fewer (and wider) colours.
    options = FitOptions(min_colour_stars=2, min_colour_range=1.0)
    fit = fit_zero_point(standards(two, seed=6), filter_name="V", colour_index="B-V", options=options)
    assert fit.colour_fitted and abs(fit.colour_term - C) < 3 * fit.colour_term_err


def test_colour_term_left_out_without_a_colour_index():
    fit = fit_zero_point(standards(SPREAD, seed=7), filter_name="NII_658")
    assert fit.colour_term is None and fit.colour_index is None
    assert fit.method.endswith("colour term not fitted: no colour index for NII_658")


def test_a_given_colour_term_is_used_and_said_so():
    hot = {"HZ 44": -0.39, "BD+75 325": -0.44, "Feige 34": -0.44}
    fit = fit_zero_point(standards(hot, seed=8), filter_name="B", colour_index="B-V",
                         colour_term=(C, 0.01))
    assert fit.colour_term == C and fit.colour_term_err == pytest.approx(0.01)
    assert fit.method.endswith("colour term fixed at 0.045 in B-V, as given")
    assert abs(fit.zp - ZP) < 3 * fit.zp_err and abs(fit.k - K) < 3 * fit.k_err
    # The given term's error reaches ZP through the stars' mean colour (-0.42 mag):
    # ZP = <delta + k X> - c <colour>, so dZP/dc = 0.42.
    free = fit_zero_point(standards(hot, seed=8), filter_name="B", colour_index="B-V",
                          colour_term=(C, 0.0))
    assert fit.zp_err**2 == pytest.approx(free.zp_err**2 + (0.42 * 0.01) ** 2, rel=0.05)
    assert fit.cov_zp_c == pytest.approx(0.42 * 0.01**2, rel=0.05)


def test_calibration_error_grows_away_from_the_standards_colour():
    fit = fit_zero_point(standards(SPREAD, seed=9), filter_name="B", colour_index="B-V")
    middle = float(np.mean(list(SPREAD.values())))
    assert fit.magnitude_error(1.5, middle) < fit.magnitude_error(1.5, 3.0)
    assert fit.magnitude(10.0, 1.5, 1.0) - fit.magnitude(10.0, 1.5, 0.0) == pytest.approx(fit.colour_term)


def test_residual_plot_against_colour_too():
    observations = standards(SPREAD, seed=3, outlier=0.25)
    with_colour = plot_fit_png(fit_zero_point(observations, colour_index="B-V"), observations)
    airmass_only = plot_fit_png(fit_zero_point(observations), observations)
    assert with_colour.startswith(b"\x89PNG") and airmass_only.startswith(b"\x89PNG")
    assert with_colour != airmass_only
