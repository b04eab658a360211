"""Astrometric calibration with the real solve-field, against the simulator's true WCS."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.table import Table
from astropy.wcs import WCS

from nota.reduce.astrometry import build_index, extract_sources, match_residuals, refine, solve
from nota.simulate import load_truth


@pytest.fixture(scope="module")
def index_dir(small_night, tmp_path_factory):
    out = tmp_path_factory.mktemp("index")
    build_index(small_night.truth_dir / "catalogue_NGC4496A.csv", out)
    return out


@pytest.mark.parametrize("sequence", [103, 104])
def test_solve_field_recovers_the_true_wcs(_reduced, small_night, index_dir, sequence):
    db_path, options = _reduced
    truth = load_truth(small_night.directory)
    frame = next(f for f in truth["frames"] if f["sequence"] == sequence)
    ccd = CCDData.read(f"{options.products_root}/2008-04-12/reduced/fzt_{frame['filename']}",
                       hdu_uncertainty="UNCERT", hdu_mask="MASK")
    sources = extract_sources(ccd.data, fwhm=frame["fwhm_px"], mask=ccd.mask)
    assert len(sources.x) >= 20
    scale = truth["night"]["pixel_scale"]
    wcs = solve(sources, ccd.shape, index_dir=index_dir, ra=ccd.header["RA"], dec=ccd.header["DEC"], scale=scale)
    assert wcs is not None, "solve-field found no solution"
    catalogue = Table.read(small_night.truth_dir / "catalogue_NGC4496A.csv", format="ascii.csv")
    wcs = refine(wcs, sources, np.asarray(catalogue["ra"]), np.asarray(catalogue["dec"]))
    matched, rms = match_residuals(wcs, sources, np.asarray(catalogue["ra"]), np.asarray(catalogue["dec"]))
    assert matched >= 20 and rms < 0.1
    true = WCS(fits.Header(frame["wcs"]))  # pixels of the raw frame; products are trimmed [16:525,6:508]
    rows, cols = ccd.shape
    x = np.array([0, cols - 1, 0, cols - 1, cols / 2])
    y = np.array([0, 0, rows - 1, rows - 1, rows / 2])
    offsets = wcs.pixel_to_world(x, y).separation(true.pixel_to_world(x + 15, y + 5)).arcsec
    assert offsets.max() < 0.1, offsets


def test_a_field_without_an_index_does_not_solve(_reduced, small_night, index_dir):
    _, options = _reduced
    ccd = CCDData.read(f"{options.products_root}/2008-04-12/reduced/fzt_ALrd120098.fits",
                       hdu_uncertainty="UNCERT", hdu_mask="MASK")  # NGC 3982: not in this index
    sources = extract_sources(ccd.data, fwhm=1.3, mask=ccd.mask)
    assert solve(sources, ccd.shape, index_dir=index_dir, ra=ccd.header["RA"], dec=ccd.header["DEC"],
                 scale=0.76, timeout=20) is None


def test_reduce_writes_the_solved_wcs_into_products(_night_db, small_night, index_dir, tmp_path):
    from conftest import copy_database
    from nota.archive.database import open_archive, open_readonly
    from nota.pipeline.product_files import read_product
    from nota.pipeline.plan import ReduceOptions, plan_reduction
    from nota.pipeline.run import run_plan

    path = copy_database(_night_db, tmp_path / "wcs.db")
    db = open_archive(path)
    options = ReduceOptions(products_root=str(tmp_path / "products"), index_dir=str(index_dir))
    plan = plan_reduction(db, options)
    keep = ("fzt_ALrd120103.fits", "fzt_ALrd120104.fits", "fzt_ALrd120080.fits")
    plan.tasks[:] = [t for t in plan.tasks if t.step.startswith("master") or t.output.endswith(keep)]
    report = run_plan(db, plan, options, jobs=1)
    assert not report.failed, report.failed
    truth = load_truth(small_night.directory)
    for sequence in (103, 104):
        frame = next(f for f in truth["frames"] if f["sequence"] == sequence)
        product = read_product(tmp_path / "products" / "2008-04-12" / "reduced" / f"fzt_{frame['filename']}")
        assert product.header["NOTAWCS"] == "solved"
        solved = WCS(product.header)
        true = WCS(fits.Header(frame["wcs"]))
        x, y = np.array([0, 509, 255]), np.array([0, 502, 251])
        assert solved.pixel_to_world(x, y).separation(true.pixel_to_world(x + 15, y + 5)).arcsec.max() < 0.1
        rms, matched = db.conn.execute(
            "SELECT wcs_rms_arcsec, wcs_matched FROM products p JOIN files f USING (file_id)"
            " WHERE f.name = ? AND p.current = 1", (frame["filename"],)
        ).fetchone()
        assert matched >= 20 and rms < 0.1
    # A frame that does not solve is kept and says why (a standard field: NGC 4496A's index only).
    standard = read_product(tmp_path / "products" / "2008-04-12" / "reduced" / "fzt_ALrd120080.fits")
    assert standard.header["NOTAWCS"].startswith("not solved")
    (status,) = db.conn.execute(
        "SELECT p.wcs_status FROM products p JOIN files f USING (file_id) WHERE f.name = 'ALrd120080.fits'"
        " AND p.current = 1").fetchone()
    assert status == standard.header["NOTAWCS"]
    assert not db.conn.execute("SELECT count(*) FROM flags JOIN files USING (file_id)"
                               " WHERE name = 'ALrd120080.fits'").fetchone()[0]  # flags are qc's alone


def test_a_source_centred_off_the_image_is_passed_over(_reduced):
    """ALrd120119 (C5363, [NII]) has a source on its masked edge whose first centroid falls
    outside the frame; centroid_sources refused the whole list, and the frame failed."""
    _, options = _reduced
    ccd = CCDData.read(f"{options.products_root}/2008-04-12/reduced/fzt_ALrd120119.fits",
                       hdu_uncertainty="UNCERT", hdu_mask="MASK")
    sources = extract_sources(ccd.data, 1.0 / (0.19 * 4), mask=ccd.mask)
    rows, cols = ccd.shape
    assert len(sources.x) >= 20
    assert ((sources.x >= 0) & (sources.x <= cols - 1) & (sources.y >= 0) & (sources.y <= rows - 1)).all()
