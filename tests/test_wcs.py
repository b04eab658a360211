"""Every frame gets a WCS: solved on its own, or inherited from a solved frame of its pointing.

Real solve-field on the small simulated night, checked against the simulator's true WCS
over the whole frame; real catalogues for ``build-index``.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.table import Table
from astropy.wcs import WCS
from typer.testing import CliRunner

from conftest import copy_database
from nota.archive.database import open_archive
from nota.cli import app
from nota.errors import NotaError
from nota.reduce.astrometry import build_index, extract_sources, solve
from nota.simulate import load_truth


def _product_wcs(header: fits.Header) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the raw header's RADECSYS and such
        return WCS(header)


def _error_over_frame(product: fits.Header, true_cards: dict, trimsec: str) -> float:
    """Largest sky distance (arcsec) between a product's WCS and the truth, on a 7 x 7 grid of
    the frame (the truth is in raw pixels; the product is trimmed)."""
    x0, y0 = (int(part.split(":")[0]) - 1 for part in trimsec.strip("[]").split(","))
    wcs, true = _product_wcs(product), WCS(fits.Header(true_cards))
    x, y = np.meshgrid(np.linspace(0, product["NAXIS1"] - 1, 7), np.linspace(0, product["NAXIS2"] - 1, 7))
    x, y = x.ravel(), y.ravel()
    return float(wcs.pixel_to_world(x, y).separation(true.pixel_to_world(x + x0, y + y0)).arcsec.max())


@pytest.fixture(scope="module")
def night_index(small_night, tmp_path_factory):
    """Index files of every field of the night, from the simulator's catalogues."""
    out = tmp_path_factory.mktemp("wcs-index")
    for n, catalogue in enumerate(sorted(small_night.truth_dir.glob("catalogue_*.csv"))):
        build_index(catalogue, out, index_id=9000 + 10 * n)
    return out


@pytest.fixture(scope="module")
def solved_night(_night_db, night_index, tmp_path_factory):
    """The small night reduced with its index files: (archive path, products root)."""
    from nota.pipeline.plan import ReduceOptions, plan_reduction
    from nota.pipeline.run import run_plan

    base = tmp_path_factory.mktemp("wcs-night")
    path = copy_database(_night_db, base / "wcs.db")
    options = ReduceOptions(products_root=str(base / "products"), index_dir=str(night_index), stacks=False)
    with open_archive(path) as db:
        report = run_plan(db, plan_reduction(db, options), options, jobs=2)
    assert not report.failed, report.failed
    return path, options


def _reduced_rows(path) -> list[dict]:
    with open_archive(path) as db:
        return db.dicts("SELECT f.name, p.product_id, p.path, p.parameters_json, p.wcs_status, p.wcs_matched"
                        " FROM products p JOIN files f USING (file_id) WHERE p.kind = 'reduced' AND p.current = 1"
                        " ORDER BY f.name")


def test_every_frame_has_a_wcs_within_0_2_arcsec_of_the_truth(solved_night, small_night):
    path, _ = solved_night
    truth = {f["filename"]: f for f in load_truth(small_night.directory)["frames"]}
    rows = _reduced_rows(path)
    assert {truth[r["name"]]["kind"] for r in rows} == {"standard", "science"}
    assert len(rows) == sum(f["kind"] in ("standard", "science") for f in truth.values())
    errors = {}
    for row in rows:
        header = fits.getheader(row["path"])
        assert header["NOTAWCS"] == row["wcs_status"]
        assert row["wcs_status"].startswith(("solved", "inherited from fzt_")), (row["name"], row["wcs_status"])
        errors[row["name"]] = _error_over_frame(header, truth[row["name"]]["wcs"],
                                                json.loads(row["parameters_json"])["trimsec"])
    worst = max(errors, key=errors.get)
    assert errors[worst] < 0.2, (worst, errors[worst], sorted(errors.items(), key=lambda e: -e[1])[:5])


def test_frames_that_cannot_solve_inherit_and_say_from_whom(solved_night, night_index):
    """Inheritance is exercised: the frames that say "inherited" really do not solve on their
    own (solve-field with the same stars and index fails), and they name their anchor, which
    their lineage lists."""
    path, _ = solved_night
    rows = _reduced_rows(path)
    inherited = [r for r in rows if r["wcs_status"].startswith("inherited")]
    assert len(inherited) >= 5, [r["wcs_status"] for r in rows]
    assert any("refined on" in r["wcs_status"] for r in inherited)
    names = {r["name"] for r in rows}
    with open_archive(path) as db:
        for row in inherited:
            anchor = row["wcs_status"].split("inherited from fzt_")[1].split(",")[0]
            assert anchor in names and anchor != row["name"]
            roles = {r["role"] for r in db.dicts("SELECT role FROM product_inputs WHERE product_id = ?",
                                                 (row["product_id"],))}
            assert roles & {"anchor", "night_anchor"}, roles
    for row in inherited[:4]:  # their own solve fails, as the step found
        ccd = CCDData.read(row["path"], hdu_uncertainty="UNCERT", hdu_mask="MASK")
        params = json.loads(row["parameters_json"])["astrometry"]
        sources = extract_sources(ccd.data, params["fwhm_px"], mask=ccd.mask, error=ccd.uncertainty.array,
                                  nsigma=params["nsigma"])
        assert solve(sources, ccd.shape, index_dir=night_index, ra=ccd.header["RA"], dec=ccd.header["DEC"],
                     scale=params["pixel_scale"], timeout=params["timeout"]) is None, row["name"]


def test_a_frame_nothing_anchors_stays_not_solved(_night_db, small_night, tmp_path):
    """BD+75 325 and its anchors (another pointing's HZ 44 included) with only NGC 4496A's index:
    nothing solves, nothing is inherited, each says so; NGC 4496A's frame solves."""
    from nota.pipeline.plan import ReduceOptions, plan_reduction
    from nota.pipeline.run import run_plan

    index = tmp_path / "index"
    build_index(small_night.truth_dir / "catalogue_NGC4496A.csv", index)
    path = copy_database(_night_db, tmp_path / "alone.db")
    options = ReduceOptions(products_root=str(tmp_path / "products"), index_dir=str(index), stacks=False,
                            photometry=False)
    keep = ("fzt_ALrd120081.fits", "fzt_ALrd120082.fits", "fzt_ALrd120084.fits", "fzt_ALrd120103.fits")
    with open_archive(path) as db:
        plan = plan_reduction(db, options)
        bd75 = next(t for t in plan.tasks if t.output.endswith("fzt_ALrd120082.fits"))
        assert set(bd75.needs) >= {"anchor", "night_anchor"}  # its pointing's and the night's
        plan.tasks[:] = [t for t in plan.tasks if t.step.startswith("master") or t.output.endswith(keep)]
        report = run_plan(db, plan, options, jobs=2)
    assert not report.failed, report.failed
    status = {r["name"]: r["wcs_status"] for r in _reduced_rows(path)}
    assert status["ALrd120103.fits"] == "solved"
    for name in ("ALrd120081.fits", "ALrd120082.fits", "ALrd120084.fits"):
        assert status[name].startswith("not solved"), (name, status[name])
        header = fits.getheader(tmp_path / "products" / "2008-04-12" / "reduced" / f"fzt_{name}")
        assert not _product_wcs(header).has_celestial  # the raw header's pixel axes only


def test_build_index_takes_a_lone_mag_column(small_night, tmp_path):
    stars = Table.read(small_night.truth_dir / "catalogue_NGC4496A.csv", format="ascii.csv")
    plain = Table({"id": stars["id"], "ra": stars["ra"], "dec": stars["dec"], "mag": stars["R"]})
    plain.write(tmp_path / "field.csv", format="ascii.csv")
    made = build_index(tmp_path / "field.csv", tmp_path / "index", scales=(1,))
    assert [p.name for p in made] == ["index-9001.fits"] and made[0].stat().st_size > 0
    result = CliRunner().invoke(app, ["astrometry", "build-index", str(tmp_path / "field.csv"),
                                      "--index-dir", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "cli").glob("index-*.fits"))) == 3


def test_build_index_names_the_columns_when_it_cannot_tell(small_night, tmp_path):
    stars = Table.read(small_night.truth_dir / "catalogue_NGC4496A.csv", format="ascii.csv")
    two = Table({"ra": stars["ra"], "dec": stars["dec"], "B": stars["B"], "V": stars["V"]})
    two.write(tmp_path / "two.csv", format="ascii.csv")
    with pytest.raises(NotaError, match=r"two\.csv: 2 magnitude columns \(B, V\)"):
        build_index(tmp_path / "two.csv", tmp_path / "index")
    result = CliRunner().invoke(app, ["astrometry", "build-index", str(tmp_path / "two.csv"),
                                      "--index-dir", str(tmp_path / "index")])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "two.csv" in lines[0] and "B, V" in lines[0], result.output
    chosen = CliRunner().invoke(app, ["astrometry", "build-index", str(tmp_path / "two.csv"),
                                      "--index-dir", str(tmp_path / "index"), "--mag-column", "V"])
    assert chosen.exit_code == 0, chosen.output


def _tan(ra: float, dec: float, rotation_deg: float = 0.4, scale: float = 0.76) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [256.0, 252.0]
    c, s = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
    wcs.wcs.cd = scale / 3600.0 * np.array([[-c, s], [s, c]])
    return wcs


def test_a_dithered_frame_with_three_stars_takes_its_neighbours_wcs():
    """The pure part: a frame moved by 25 arcsec and turned by 0.1 degree, with three stars
    of a catalogue's forty, registered from its neighbour's WCS; one lone star among rivals
    as near is no answer."""
    from nota.reduce.astrometry import Sources
    from nota.reduce.registration import find_offset, register, repointed

    rng = np.random.default_rng(3)
    neighbour, truth = _tan(150.0, 30.0), _tan(150.0 + 25 / 3600 / np.cos(np.radians(30)), 30.0, 0.5)
    ra, dec = truth.all_pix2world(rng.uniform(0, 510, 40), rng.uniform(0, 503, 40), 0)
    x, y = truth.all_world2pix(ra[:3], dec[:3], 0)
    stars = Sources(x + rng.normal(0, 0.02, 3), y + rng.normal(0, 0.02, 3), np.full(3, 400.0))
    moved = repointed(neighbour, 150.0, 30.0, *neighbour.all_world2pix([[150.0, 30.0]], 0)[0])
    wcs, matched = register(moved, stars, ra, dec, (503, 510))
    assert matched == 3
    gx, gy = np.meshgrid(np.linspace(0, 509, 5), np.linspace(0, 502, 5))
    assert wcs.pixel_to_world(gx, gy).separation(truth.pixel_to_world(gx, gy)).arcsec.max() < 0.05
    lone = Sources(np.array([100.0]), np.array([100.0]), np.array([1.0]))
    assert find_offset(lone, np.array([110.0, 90.0]), np.array([100.0, 100.0]), search_px=50) is None
    assert find_offset(lone, np.array([102.0, 140.0]), np.array([100.0, 100.0]), search_px=50)[:2] == (-2.0, 0.0)
