"""Darks on the generic (N.I.N.A. / MaxIm DL) night: masters, subtraction, truth, explain.

The night of a cooled CMOS camera: darks at the lights' exposures and at 600 s, a set at
-5 C, flats with their own darks. The 120 s darks are left out here, so the 120 s lights
take the 300 s master scaled by exposure (IRAF ccdred's way) while the others take their
own exposure's master as it is.
"""

from __future__ import annotations

import ccdproc
import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData

from nota.archive.association import explain
from nota.archive.database import open_archive, open_readonly
from nota.archive.groups import set_override
from nota.pipeline.groups import build_groups
from nota.pipeline.ingest import ingest
from nota.pipeline.plan import ReduceOptions, plan_reduction
from nota.pipeline.qc import run_qc
from nota.pipeline.run import run_plan


@pytest.fixture(scope="module")
def generic_night(tmp_path_factory):
    """The generic night simulated, ingested with no profile named, and reduced."""
    from nota.simulate import simulate_run

    out = tmp_path_factory.mktemp("generic")
    (night,) = simulate_run(out, seed=5, small=True, camera="generic")
    path = out / "nota.db"
    options = ReduceOptions(products_root=str(out / "products"), cosmics=False, stacks=False, photometry=False)
    with open_archive(path) as archive:
        ingest(archive, [night.directory])
        run_qc(archive)
        for (name,) in archive.run("SELECT filename FROM frames WHERE kind = 'dark' AND exptime = 120")[1]:
            set_override(archive, name, "exclude", "left out: the 120 s lights scale the 300 s master")
        build_groups(archive)
        report = run_plan(archive, plan_reduction(archive, options), options, jobs=2)
    assert not report.failed, report.failed
    return path, night


def _products(path, kind):
    with open_readonly(path) as archive:
        return archive.dicts("SELECT p.path, p.group_id, p.file_id, f.path AS raw, o.exptime, o.ccd_temp, o.gain"
                             " FROM products p LEFT JOIN files f USING (file_id)"
                             " LEFT JOIN observations o USING (file_id) WHERE p.kind = ? AND p.current = 1", (kind,))


def _ccd(path, name="PRIMARY"):
    with fits.open(path) as hdul:
        return CCDData(hdul[name].data.astype(np.float64), unit="adu")


def _master(db, product, header_card, kind):
    """The master a product names in its header (NOTABIAS, NOTADARK, NOTAFLAT)."""
    name = fits.getheader(product)[header_card]
    (found,) = [p["path"] for p in _products(db, kind) if p["path"].endswith("/" + name)]
    return found


def test_master_darks_are_ccdproc_combiner_of_bias_subtracted_darks(generic_night):
    path, _ = generic_night
    (bias,) = _products(path, "master_bias")
    darks = _products(path, "master_dark")
    assert len(darks) == 6  # 300 s at -10 C and -5 C, 600 s, and the flats' 20, 3 and 2 s (no 120 s)
    with open_readonly(path) as archive:
        for dark in darks:
            members = [r[0] for r in archive.run(
                "SELECT f.path FROM group_members m JOIN files f USING (file_id) WHERE m.group_id = ? AND m.included = 1",
                (dark["group_id"],))[1]]
            combiner = ccdproc.Combiner([ccdproc.subtract_bias(_ccd(m), _ccd(bias["path"])) for m in members])
            theirs = combiner.median_combine()
            ours = fits.getdata(dark["path"])
            np.testing.assert_allclose(ours, theirs.data, rtol=2e-6, atol=1e-3)


@pytest.mark.parametrize("exposure", [300.0, 120.0])
def test_dark_subtracted_frames_are_ccdproc_subtract_dark(generic_night, exposure):
    path, _ = generic_night
    frame = next(p for p in _products(path, "reduced") if p["exptime"] == exposure)
    header = fits.getheader(frame["path"])
    bias, dark, flat = (_master(path, frame["path"], card, kind) for card, kind in
                        (("NOTABIAS", "master_bias"), ("NOTADARK", "master_dark"), ("NOTAFLAT", "master_flat")))
    dark_exposure = 300.0 if exposure == 120.0 else exposure  # the 120 s darks were left out
    assert f"{dark_exposure:g}s" in header["NOTADARK"]
    theirs = ccdproc.subtract_bias(_ccd(frame["raw"]), _ccd(bias))
    theirs = ccdproc.subtract_dark(theirs, _ccd(dark), dark_exposure=dark_exposure * u.s,
                                   data_exposure=exposure * u.s, scale=True)
    theirs = ccdproc.flat_correct(theirs, _ccd(flat))
    ours = fits.open(frame["path"])
    good = ~ours["MASK"].data.astype(bool)
    np.testing.assert_allclose(ours[0].data[good], theirs.data[good], rtol=3e-6, atol=1e-3)


def test_dark_subtraction_recovers_the_truth(generic_night):
    """What the chain subtracted is the dark current the truth put in the master's darks:
    0.5 e- rms on 8 x 8 blocks (the master's own noise averaged), hot pixels within 5 %."""
    from nota.simulate.generic.truth import true_dark

    path, night = generic_night
    with open_readonly(path) as archive:
        temperatures = {gid: [t for (t,) in archive.run(
            "SELECT o.ccd_temp FROM group_members m JOIN observations o USING (file_id)"
            " WHERE m.group_id = ? AND m.included = 1", (gid,))[1]]
            for (gid,) in archive.run("SELECT group_id FROM calibration_groups WHERE purpose = 'master_dark'")[1]}
    darks = {p["path"].rsplit("/", 1)[1]: p for p in _products(path, "master_dark")}
    science = [p for p in _products(path, "reduced") if p["exptime"] >= 120]
    assert len(science) >= 20
    for frame in science:
        dark = darks[fits.getheader(frame["path"])["NOTADARK"]]
        dark_exposure = fits.getheader(dark["path"])["EXPTIME"]
        ours = fits.getdata(dark["path"]) * (frame["exptime"] / dark_exposure) * frame["gain"]  # e-
        expected = np.mean([true_dark(night.directory, t, frame["exptime"]) for t in temperatures[dark["group_id"]]],
                           axis=0)
        hot = expected > np.percentile(expected, 99.5)
        residual = ours - expected
        rows, cols = (n - n % 8 for n in residual.shape)
        blocks = residual[:rows, :cols].reshape(rows // 8, 8, cols // 8, 8).mean(axis=(1, 3))
        assert abs(residual[~hot].mean()) < 0.2 and blocks.std() < 0.5, frame["path"]
        assert np.median(np.abs(residual[hot] / expected[hot])) < 0.05
        # Against the frame's own dark, what differs is its temperature (within the tolerance).
        own = true_dark(night.directory, frame["ccd_temp"], frame["exptime"])
        assert abs((ours - own)[~hot].mean()) < 0.1 * own.mean()


def test_explain_names_each_frame_s_dark_and_why_not_the_others(generic_night):
    path, _ = generic_night
    with open_readonly(path) as archive:
        frames = archive.dicts("SELECT filename, exptime FROM frames WHERE kind = 'science'")
        for frame in frames:
            said = explain(archive, frame["filename"])
            (dark,) = [c for c in said["calibrations"] if c["purpose"] == "master_dark"]
            assert dark["group"].startswith("master_dark/")
            if frame["exptime"] == 120:
                assert dark["rule"].startswith("scaled by exposure from 300 s")
            else:
                assert dark["rule"].startswith(f"its exposure ({frame['exptime']:g} s)")
            reasons = " ".join(o["why_not"] for o in dark["not_chosen"])
            assert "temperature differs" in reasons  # the -5 C set
        flat = archive.one("SELECT filename FROM frames WHERE kind = 'sky_flat'")
        (member,) = explain(archive, flat["filename"])["member_of"]
    assert member["master_bias"] and member["master_bias_rule"] == "same night"
