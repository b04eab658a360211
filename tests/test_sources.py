"""nota photometry: calibrated magnitudes of a science frame's stars against the truth."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import copy_database
from nota.archive.database import open_archive, open_readonly
from nota.archive.sources import list_sources
from nota.pipeline.sources import line_flux_per_count, measure_frame
from nota.cli import app
from nota.simulate import load_truth


@pytest.fixture(scope="module")
def calibrated_db(_reduced, tmp_path_factory):
    db_path, _ = _reduced  # nota reduce calibrated the night
    return copy_database(db_path, tmp_path_factory.mktemp("sources") / "sources.db")


def matched(sources, frame, tolerance=0.7):
    """(measured, true, error) magnitudes of isolated, unsaturated stars."""
    stars = [s for s in frame["stars"] if 15.0 < s["mag"] < 19.0]
    pairs = []
    for s in stars:
        x, y = s["x"] - 16, s["y"] - 6  # raw 1-based -> reduced 0-based
        others = [o for o in frame["stars"] if o is not s and np.hypot(o["x"] - s["x"], o["y"] - s["y"]) < 8]
        if others:
            continue
        best = min(sources, key=lambda r: np.hypot(r["x"] - x, r["y"] - y))
        if np.hypot(best["x"] - x, best["y"] - y) < tolerance and best["mag"] is not None and not best["flags"]:
            pairs.append((best["mag"], s["mag"], best["mag_err"]))
    return np.array(pairs)


@pytest.mark.parametrize("sequence", [104, 105])
def test_calibrated_magnitudes_match_the_truth(calibrated_db, small_night, sequence):
    truth = load_truth(small_night.directory)
    frame = next(f for f in truth["frames"] if f["sequence"] == sequence)
    with open_archive(calibrated_db) as archive:
        report = measure_frame(archive, frame["filename"])
        found = list_sources(archive, report.product_id)
    assert report.calibrated and report.sources >= 20
    pairs = matched(found, frame)
    residual, error = pairs[:, 0] - pairs[:, 1], pairs[:, 2]
    # Well-measured stars (S/N > 35) are within 0.03 mag rms of their true AB magnitudes ...
    good = error < 0.03
    assert good.sum() >= 6
    assert np.sqrt(np.mean(residual[good] ** 2)) < 0.03, residual[good]
    # ... and fainter ones scatter as their quoted errors say.
    assert len(pairs) >= 15 and np.mean((residual / error) ** 2) < 2.0
    assert all(r["magnitude_system"] == "AB" for r in found)


def test_narrow_band_sources_get_a_line_flux(calibrated_db):
    out = CliRunner().invoke(app, ["--db", str(calibrated_db), "photometry", "ALrd120098.fits", "--json"])
    assert out.exit_code == 0, out.output
    import json

    rows = [r for r in json.loads(out.stdout) if r["line_flux"] is not None]
    assert len(rows) >= 10
    # One conversion for the frame: line flux per ADU is the same for every source, and
    # the bright ones are of the size an AB zero point gives (1e-17..1e-12 erg/s/cm2).
    per_adu = {round(r["line_flux"] / r["flux"], 30) for r in rows if r["flux"] > 0}
    assert len({f"{v:.6e}" for v in per_adu}) == 1
    brightest = max(rows, key=lambda r: r["flux"])
    assert 1e-17 < brightest["line_flux"] < 1e-12


def test_line_flux_per_count_is_the_ab_definition():
    # 1 ADU/s at AB magnitude 0 through a 1 Angstrom band at 5000 Angstrom, no extinction.
    expected = 3631e-23 * 2.99792458e18 / 5000**2
    assert line_flux_per_count(0.0, 0.0, 1.0, 5000.0, 1.0) == pytest.approx(expected, rel=1e-4)


def _measured_with_photzp(product_path, frame):
    """(-2.5 log10(ADU) + PHOTZP, true mag, error) of the frame's isolated bright stars."""
    from nota.pipeline.product_files import read_product
    from nota.reduce.aperture import measure_stars

    ccd = read_product(product_path)
    ny, nx = ccd.shape
    stars = [s for s in frame["stars"] if 15.0 < s["mag"] < 18.5 and 12 < s["x"] - 16 < nx - 12
             and 12 < s["y"] - 6 < ny - 12 and not any(
        o is not s and np.hypot(o["x"] - s["x"], o["y"] - s["y"]) < 8 for o in frame["stars"])]
    measured = measure_stars(ccd, [(s["x"] - 16, s["y"] - 6) for s in stars])
    out = [(-2.5 * np.log10(m.flux) + ccd.header["PHOTZP"], s["mag"], m.mag_err)
           for m, s in zip(measured, stars) if m.flux > 0 and not m.flags]
    return np.array(out), ccd.header


@pytest.mark.parametrize("name", ["fzt_ALrd120104.fits", "stack_GC4496A_R_3x300s_R.fits"])
def test_photzp_in_the_header_gives_true_magnitudes(_reduced, small_night, name):
    """A science frame (and a stack) carries PHOTZP for its airmass and exposure: with it
    alone, aperture fluxes become AB magnitudes within 0.03 mag rms of the truth."""
    from pathlib import Path

    _, options = _reduced
    truth = load_truth(small_night.directory)
    # A stack is on the pixels of its first exposure.
    first = "ALrd120103.fits" if name.startswith("stack") else "ALrd120104.fits"
    frame = next(f for f in truth["frames"] if f["filename"] == first)
    step = "stack" if name.startswith("stack") else "reduced"
    pairs, header = _measured_with_photzp(Path(options.products_root) / "2008-04-12" / step / name, frame)
    assert header["PHOTSYS"] == "AB" and 0 < header["PHOTZPER"] < 0.05
    good = pairs[:, 2] < 0.03
    assert good.sum() >= 6
    residual = pairs[good, 0] - pairs[good, 1]
    assert np.sqrt(np.mean(residual**2)) < 0.03, residual


def test_standards_get_no_photzp_and_science_waits_for_them(_reduced):
    """Standards make the calibration, so they carry none; the science frames' PHOTZP names
    the night's solution it came from."""
    import sqlite3

    path, _ = _reduced
    conn = sqlite3.connect(path)
    kinds = dict(conn.execute(
        "SELECT o.kind, count(p.photzp) FROM products p JOIN observations o USING (file_id)"
        " WHERE p.kind = 'reduced' AND p.current = 1 GROUP BY o.kind").fetchall())
    assert kinds["standard"] == 0 and kinds["science"] >= 30
    # Each filter's science frames are made after its solution, whatever the other filters do.
    for filt, calibrated in conn.execute("SELECT filter, created_at FROM calibrations WHERE current = 1"):
        first_science = conn.execute(
            "SELECT min(p.created_at) FROM products p JOIN observations o USING (file_id)"
            " WHERE o.kind = 'science' AND p.filter = ?", (filt,)).fetchone()[0]
        assert calibrated <= first_science, filt
    conn.close()


def test_a_stack_is_measured_and_calibrated_too(calibrated_db, small_night):
    """nota photometry on a stack: its summed exposure and effective airmass give
    magnitudes of its (first exposure's) stars within 0.03 mag rms of the truth."""
    import json

    out = CliRunner().invoke(app, ["--db", str(calibrated_db), "photometry", "stack_GC4496A_R_3x300s_R.fits", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    frame = next(f for f in load_truth(small_night.directory)["frames"] if f["filename"] == "ALrd120103.fits")
    pairs = matched(rows, frame)
    good = pairs[:, 2] < 0.03
    assert good.sum() >= 6 and all(r["magnitude_system"] == "AB" for r in rows)
    residual = pairs[good, 0] - pairs[good, 1]
    assert np.sqrt(np.mean(residual**2)) < 0.03, residual
