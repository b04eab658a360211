"""nota reduce: products equal ccdproc's on the same inputs, recover the simulator's truth,
are linked to their inputs, and are rebuilt exactly when something they depend on changes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import warnings

import ccdproc
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData
from typer.testing import CliRunner

from conftest import copy_database
from nota.archive.database import open_archive, open_readonly
from nota.archive.groups import set_override
from nota.pipeline.groups import build_groups
from nota.archive.products import lineage, list_products, prov_document
from nota.pipeline.plan import ReduceOptions, plan_reduction
from nota.pipeline.run import run_plan
from nota.cli import app
from nota.simulate import load_truth

TRIM = (slice(5, 508), slice(15, 525))  # the profile's [61:2100,21:2032] at 4x4 binning: [16:525,6:508]


def product(db_path, name):
    db = open_archive(db_path)
    (path,) = db.conn.execute("SELECT path FROM products WHERE current = 1 AND path LIKE ?", (f"%/{name}",)).fetchone()
    return CCDData.read(path, hdu_uncertainty="UNCERT", hdu_mask="MASK")


def members(db_path, group_like):
    db = open_archive(db_path)
    return [r[0] for r in db.conn.execute(
        "SELECT f.path FROM group_members m JOIN calibration_groups g USING (group_id)"
        " JOIN files f USING (file_id) WHERE g.group_key LIKE ? AND m.included = 1 ORDER BY f.name",
        (group_like,),
    )]


def raw_trimmed(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ccd = CCDData.read(path, unit="adu")
    return ccdproc.trim_image(ccd, fits_section="[16:525,6:508]")


def close(a, b, rtol=3e-6):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol,
                               atol=rtol * float(np.max(np.abs(b))))


def test_masters_and_frames_equal_ccdproc(_reduced):
    db_path, _ = _reduced
    biases = [raw_trimmed(p) for p in members(db_path, "master_bias/%")]
    combiner = ccdproc.Combiner(biases)
    combiner.minmax_clipping(min_clip=None, max_clip=800)
    ref_bias = combiner.median_combine()
    ours_bias = product(db_path, "master_bias_2008-04-12_4x4.fits")
    close(ours_bias.data, ref_bias.data)

    flats = [ccdproc.subtract_bias(raw_trimmed(p), ref_bias) for p in members(db_path, "%/R/sky_flat/%")]
    assert len(flats) == 6
    combiner = ccdproc.Combiner(flats)
    combiner.scaling = [1 / np.median(f.data) for f in flats]
    ref_flat = combiner.median_combine()
    ref_flat = ref_flat.divide(ref_flat.data.mean())
    ours_flat = product(db_path, "master_flat_2008-04-12_R_sky_flat_4x4.fits")
    close(ours_flat.data, ref_flat.data, rtol=1e-5)
    assert ours_flat.data.mean() == pytest.approx(1.0, abs=1e-6)

    raw_path = next(iter(_paths(db_path, "ALrd120103.fits")))
    ref = ccdproc.subtract_bias(raw_trimmed(raw_path), ref_bias)
    ref = ccdproc.flat_correct(ref, ref_flat, min_value=0.1)
    ours = product(db_path, "fzt_ALrd120103.fits")
    # nota also cleans cosmic rays (CRMASK): everywhere else it is ccdproc's chain.
    (path,) = open_archive(db_path).conn.execute(
        "SELECT path FROM products WHERE current = 1 AND path LIKE '%/fzt_ALrd120103.fits'").fetchone()
    cleaned = fits.getdata(path, "CRMASK").astype(bool)
    assert 0 < cleaned.sum() < 0.005 * cleaned.size and ours.mask[cleaned].all()
    close(ours.data[~cleaned], ref.data[~cleaned], rtol=2e-5)
    assert ours.data.dtype.kind == "f" and ours.data.dtype.itemsize == 4 and ours.uncertainty is not None
    # Saturated raw pixels are masked; the header says what was done and with which masters.
    raw = fits.getdata(raw_path)[TRIM]
    assert ours.mask[raw >= 65535].all() and (raw >= 65535).any()
    assert ours.header["NOTABIAS"] == "master_bias_2008-04-12_4x4.fits"
    assert ours.header["NOTAFLAT"] == "master_flat_2008-04-12_R_sky_flat_4x4.fits"
    assert ours.header["OBJECT"] == "GC4496A R 3x300s"
    assert any("flat fielded" in str(h) for h in ours.header["HISTORY"])


def _paths(db_path, name):
    db = open_archive(db_path)
    return [r[0] for r in db.conn.execute("SELECT path FROM files WHERE name = ?", (name,))]


def test_flat_fielding_recovers_the_truth(_reduced, small_night):
    db_path, _ = _reduced
    truth = load_truth(small_night.directory)
    response = np.load(small_night.directory / "truth" / "response_R.npy")[TRIM]
    flat = product(db_path, "master_flat_2008-04-12_R_sky_flat_4x4.fits").data
    true_flat = response / response.mean()
    inner = (slice(40, -40), slice(40, -40))
    # The master flat is the response map: the pixel-to-pixel (~1 %) structure divided out.
    ratio = (flat / true_flat)[inner]
    assert np.std(ratio) < 0.004
    assert np.std(true_flat[inner] / np.median(true_flat[inner])) > 0.01  # there was structure to remove
    # On large scales (16 x 16-pixel bins) the flat leaves under 0.2 %, and no more than the
    # lecture's median of unscaled twilight flats.
    bias = product(db_path, "master_bias_2008-04-12_4x4.fits").data
    raw_flats = [fits.getdata(p).astype(np.float32)[TRIM] - bias for p in members(db_path, "%/R/sky_flat/%")]
    unscaled = np.median(raw_flats, axis=0)
    unscaled /= unscaled.mean()
    assert binned_residual(flat, true_flat) < 0.002
    assert binned_residual(flat, true_flat) <= binned_residual(unscaled, true_flat)
    # A reduced science frame keeps its count level.
    reduced = product(db_path, "fzt_ALrd120104.fits").data
    frame = next(f for f in truth["frames"] if f["sequence"] == 104)
    raw = fits.getdata(small_night.directory / frame["filename"]).astype(float)[TRIM]
    assert np.median(reduced) == pytest.approx(np.median(raw) - frame["bias_level"], rel=0.05)


def binned_residual(flat, truth, size=16, edge=20):
    ratio = (flat / truth)[edge:-edge, edge:-edge]
    h, w = ratio.shape[0] // size, ratio.shape[1] // size
    blocks = ratio[: h * size, : w * size].reshape(h, size, w, size).mean(axis=(1, 3))
    return float(blocks.std() / blocks.mean())


def test_products_are_linked_to_their_inputs(_reduced):
    db_path, _ = _reduced
    tree = lineage(open_readonly(db_path), "fzt_ALrd120103.fits")
    roles = {n["role"]: n for n in tree["inputs"]}
    assert roles["raw"]["filename"] == "ALrd120103.fits"
    bias = roles["master_bias"]
    assert sorted(n["filename"] for n in bias["inputs"]) == [f"ALrd1200{i:02d}.fits" for i in range(1, 11)]
    flat = roles["master_flat"]
    flat_members = {n["filename"]: n for n in flat["inputs"] if n.get("kind") == "raw"}
    assert not flat_members["ALrd120063.fits"]["included"] and "odd_shape" in flat_members["ALrd120063.fits"]["reason"]
    assert flat["inputs"][0]["role"] in ("master_bias", "member")
    listed = {p["path"].rsplit("/", 1)[1]: p for p in list_products(open_readonly(db_path))}
    assert listed["fzt_ALrd120103.fits"]["kind"] == "reduced"
    assert len(listed["master_bias_2008-04-12_4x4.fits"]["input_files"]) == 10
    doc = prov_document(open_readonly(db_path), "fzt_ALrd120103.fits")
    assert len([e for e in doc["entity"].values() if e["prov:type"] == "raw"]) >= 17
    assert doc["wasGeneratedBy"] and doc["used"]
    out = CliRunner().invoke(app, ["--db", str(db_path), "lineage", "fzt_ALrd120103.fits"])
    assert out.exit_code == 0 and "ALrd120001.fits" in out.output and "left out" in out.output
    out = CliRunner().invoke(app, ["--db", str(db_path), "products", "--json"])
    assert {"id", "kind", "night", "filter", "path", "content_hash", "input_files"} <= set(json.loads(out.stdout)[0])


def test_rerun_does_nothing_and_exclusion_rebuilds_exactly_what_depends(_reduced, tmp_path):
    db_path, options = _reduced
    path = copy_database(db_path, tmp_path / "copy.db")
    db = open_archive(path)
    plan = plan_reduction(db, options)
    made = db.conn.execute("SELECT count(*) FROM products WHERE current = 1").fetchone()[0]
    products = [t for t in plan.up_to_date if t.step != "photometric_calibration"]
    assert plan.tasks == [] and len(products) == made == 70  # 60 frames and masters, 10 stacks
    assert len(plan.up_to_date) == 70 + 3  # and the night's solution in each of its 3 filters
    set_override(db, "ALrd120047.fits", "exclude", "satellite trail")
    build_groups(db)
    plan = plan_reduction(db, options)
    stale = sorted((t.step, t.filter) for t in plan.tasks)
    n78 = db.conn.execute("SELECT count(*) FROM frames WHERE filter = 'NII_658' AND kind IN ('standard', 'science')").fetchone()[0]
    stacks78 = db.conn.execute("SELECT count(*) FROM products WHERE kind = 'stack' AND filter = 'NII_658'").fetchone()[0]
    # The NII flat, every NII frame, the NII solution (its standards changed) and NII stacks.
    assert stale == ([("master_flat", "NII_658")] + [("photometric_calibration", "NII_658")]
                     + [("reduced", "NII_658")] * n78 + [("stack", "NII_658")] * stacks78)


def test_a_bad_frame_fails_alone(_night_db, small_night, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(small_night.directory, raw, ignore=shutil.ignore_patterns("truth"))
    path = copy_database(_night_db, tmp_path / "bad.db")
    db = open_archive(path)
    db.conn.execute("UPDATE files SET path = replace(path, ?, ?)", (str(small_night.directory), str(raw)))
    victim = raw / "ALrd120104.fits"
    victim.write_bytes(victim.read_bytes()[:20000])  # damaged after ingest
    options = ReduceOptions(products_root=str(tmp_path / "products"))
    report = run_plan(db, plan_reduction(db, options), options, jobs=1)
    # The frame fails, and so does the stack of its series, saying which exposure it lacks.
    assert [o.rsplit("/", 1)[1] for o, _ in report.failed] == ["fzt_ALrd120104.fits", "stack_GC4496A_R_3x300s_R.fits"]
    assert "shorter" in report.failed[0][1] and "exposure:ALrd120104.fits" in report.failed[1][1]
    assert len(report.built) == 59 + 9
    status, message = db.conn.execute(
        "SELECT status, message FROM activities WHERE step = 'reduced' AND status = 'failed'"
    ).fetchone()
    assert "shorter" in message


def test_killed_run_finishes_identically(_night_db, _reduced, tmp_path):
    reference_db, reference_options = _reduced
    path = copy_database(_night_db, tmp_path / "kill.db")
    products = tmp_path / "products"
    command = [sys.executable, "-m", "nota.cli", "--db", str(path), "reduce", "--jobs", "1", "--products", str(products)]
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:  # kill it once some products exist, mid-flight
        done = sqlite3.connect(path).execute("SELECT count(*) FROM products").fetchone()[0] if path.exists() else 0
        if done >= 8:
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ours = dict(conn.execute("SELECT replace(path, ?, ''), recipe_key FROM products WHERE current = 1", (str(products),)))
    ref = dict(sqlite3.connect(reference_db).execute(
        "SELECT replace(path, ?, ''), recipe_key FROM products WHERE current = 1", (reference_options.products_root,)))
    assert ours.keys() == ref.keys() and ours == ref
    for rel in list(ours)[::7]:
        assert np.array_equal(fits.getdata(str(products) + rel), fits.getdata(reference_options.products_root + rel))
    assert not list(products.rglob(".nota-tmp-*"))
    for path_, size in conn.execute("SELECT path, size FROM products WHERE current = 1"):
        assert os.path.getsize(path_) == size


def test_dask_cluster_gives_the_same_products(_night_db, _reduced, tmp_path):
    reference_db, reference_options = _reduced
    path = copy_database(_night_db, tmp_path / "dask.db")
    db = open_archive(path)
    options = ReduceOptions(products_root=str(tmp_path / "products"))
    plan = plan_reduction(db, options)
    subset = [t for t in plan.tasks if t.step.startswith("master") or t.filter == "R"]
    plan.tasks[:] = subset
    report = run_plan(db, plan, options, scheduler="local")
    assert not report.failed
    ref = sqlite3.connect(reference_db)
    for kind, rel, digest in db.conn.execute(
        "SELECT kind, replace(path, ?, ''), recipe_key FROM products WHERE current = 1", (options.products_root,)
    ):
        (ref_path,) = ref.execute("SELECT path FROM products WHERE recipe_key = ?", (digest,)).fetchone()
        assert np.array_equal(fits.getdata(options.products_root + rel), fits.getdata(ref_path))


def test_keep_intermediate_writes_the_lecture_files(_reduced, _night_db, tmp_path):
    path = copy_database(_night_db, tmp_path / "keep.db")
    db = open_archive(path)
    options = ReduceOptions(products_root=str(tmp_path / "products"), keep_intermediate=True)
    plan = plan_reduction(db, options)
    plan.tasks[:] = [t for t in plan.tasks if t.step.startswith("master") or t.output.endswith("fzt_ALrd120103.fits")]
    report = run_plan(db, plan, options, jobs=1)
    assert not report.failed
    folder = tmp_path / "products" / "2008-04-12" / "reduced"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["fzt_ALrd120103.fits", "t_ALrd120103.fits", "zt_ALrd120103.fits"]
    t = fits.getdata(folder / "t_ALrd120103.fits")
    zt = fits.getdata(folder / "zt_ALrd120103.fits")
    raw = fits.getdata(_paths(path, "ALrd120103.fits")[0]).astype(np.float32)[TRIM]
    assert np.array_equal(t, raw)
    bias = product(path, "master_bias_2008-04-12_4x4.fits").data
    close(zt, raw - bias)


def test_ingesting_products_adds_no_frames(_reduced, tmp_path):
    from nota.pipeline.ingest import ingest

    db_path, options = _reduced
    path = copy_database(db_path, tmp_path / "again.db")
    db = open_archive(path)
    before = db.conn.execute("SELECT count(*) FROM frames").fetchone()[0]
    report = ingest(db, [options.products_root])
    assert report.outcomes["new"] == db.conn.execute("SELECT count(*) FROM products WHERE current = 1").fetchone()[0]
    assert db.conn.execute("SELECT count(*) FROM frames").fetchone()[0] == before
    assert all("nota product" in p.problem for p in report.problems)
