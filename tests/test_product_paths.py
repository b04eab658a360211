"""Product paths never collide: names with dots, one name in two folders, another's path."""

from __future__ import annotations

import shutil

import pytest
from astropy.io import fits

from nota.archive.database import open_archive
from nota.pipeline.groups import build_groups
from nota.pipeline.ingest import ingest
from nota.pipeline.plan import ReduceOptions, plan_reduction
from nota.pipeline.qc import run_qc
from nota.pipeline.run import run_plan
from nota.pipeline.steps.common import product_name

SEQUENCES = (1, 2, 3, 4, 5, 6, 57, 58, 59, 60, 61, 62, 103, 104, 105)


def test_product_names_keep_the_whole_raw_name():
    assert product_name("fzt_", "ALrd120103.fits") == "fzt_ALrd120103.fits"
    assert product_name("fzt_", "ALFOSC.2008-04-12T23:01:02.500.fits") == "fzt_ALFOSC.2008-04-12T23:01:02.500.fits"
    assert product_name("t_", "2026-11-30_22-14-03_R_-10.00_300.00s_0012.fits.fz") == \
        "t_2026-11-30_22-14-03_R_-10.00_300.00s_0012.fits"


@pytest.fixture
def eso_night(small_night, tmp_path):
    """Some of the simulated night renamed as ESO writes names: INSTRUMENT.DATE-OBS.fits."""
    out = tmp_path / "eso"
    out.mkdir()
    for path in sorted(small_night.directory.glob("ALrd12*.fits")):
        if int(path.stem[-4:]) in SEQUENCES:
            shutil.copy(path, out / f"ALFOSC.{fits.getheader(path)['DATE-OBS']}.fits")
    return out


def _reduce(raw_dirs, tmp_path):
    options = ReduceOptions(products_root=str(tmp_path / "products"), cosmics=False, stacks=False, photometry=False)
    with open_archive(tmp_path / "nota.db") as archive:
        ingest(archive, raw_dirs)
        run_qc(archive)
        build_groups(archive)
        report = run_plan(archive, plan_reduction(archive, options), options, jobs=2)
        rows = archive.dicts("SELECT p.path, f.path AS raw FROM products p LEFT JOIN files f USING (file_id)"
                             " WHERE p.current = 1 AND p.kind = 'reduced'")
    return report, rows


def test_a_night_of_eso_names_gets_one_product_per_frame(eso_night, tmp_path):
    report, rows = _reduce([eso_night], tmp_path)
    assert not report.failed, report.failed
    assert len(rows) == 3 and len({r["path"] for r in rows}) == 3
    for r in rows:  # each product holds its own frame
        assert fits.getheader(r["path"])["DATE-OBS"] == fits.getheader(r["raw"])["DATE-OBS"]
        assert r["path"].endswith("fzt_" + r["raw"].rsplit("/", 1)[1])


def test_one_name_in_two_folders_gets_two_products(small_night, tmp_path):
    first, second = tmp_path / "raw" / "a", tmp_path / "raw" / "b"
    for folder in (first, second):
        folder.mkdir(parents=True)
    for path in sorted(small_night.directory.glob("ALrd12*.fits")):
        if int(path.stem[-4:]) in SEQUENCES:
            shutil.copy(path, first / path.name)
    # The same name, another frame of the night, in a second folder.
    shutil.copy(small_night.directory / "ALrd120105.fits", second / "ALrd120104.fits")
    (first / "ALrd120105.fits").unlink()
    report, rows = _reduce([tmp_path / "raw"], tmp_path)
    assert not report.failed, report.failed
    paths = sorted(r["path"] for r in rows)
    assert len(rows) == 3 and len(set(paths)) == 3
    assert sum("fzt_ALrd120104" in p for p in paths) == 2
