"""nota's pixel steps against ccdproc's own functions on the same inputs."""

from __future__ import annotations

import warnings

import ccdproc
import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData

from nota.reduce.ccd import (
    flat_correct,
    mask_saturated,
    subtract_bias,
    subtract_overscan,
    to_ccd,
    trim,
    with_deviation,
)
from nota.reduce.combine import FrameStack, median_combine, nanmedian0

RNG = np.random.default_rng(2008)
SHAPE = (60, 80)


def raw_frames(n, level, noise, hits=0):
    frames = RNG.normal(level, noise, (n, *SHAPE))
    for frame in frames[:hits]:
        frame[RNG.integers(0, SHAPE[0], 5), RNG.integers(0, SHAPE[1], 5)] = 5000  # cosmic rays
    return np.clip(np.round(frames), 0, 65535).astype(np.uint16)


def f32_equal(a, b, rtol=2e-6):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=rtol * np.nanmax(np.abs(b)))


def test_trim_is_ccdproc_trim_image():
    ccd = to_ccd(raw_frames(1, 355, 5)[0])
    ours = trim(ccd, "[5:70,3:50]")
    theirs = ccdproc.trim_image(CCDData(ccd.data, unit="adu"), fits_section="[5:70,3:50]")
    assert ours.shape == theirs.shape == (48, 66)
    assert np.array_equal(ours.data, theirs.data)


def test_master_bias_is_ccdproc_minmax_clip_then_median():
    biases = raw_frames(10, 355, 5, hits=4)
    ours = median_combine(biases, clip_max=800)
    combiner = ccdproc.Combiner([CCDData(b.astype(float), unit="adu") for b in biases])
    combiner.minmax_clipping(min_clip=None, max_clip=800)
    theirs = combiner.median_combine()
    f32_equal(ours.data, theirs.data)
    f32_equal(ours.uncertainty, theirs.uncertainty.array, rtol=1e-5)
    assert (biases > 800).any()  # the clipping had work to do


def test_master_flat_is_ccdproc_scaled_median():
    bias = median_combine(raw_frames(10, 355, 5)).data
    flats = raw_frames(6, 20000, 150)
    flats = (flats * RNG.uniform(0.8, 1.2, (6, 1, 1))).astype(np.uint16)  # different twilight levels
    bias_subtracted = [f.astype(np.float32) - bias for f in flats]
    scale = [1 / np.median(f) for f in bias_subtracted]
    ours = median_combine(flats, offset=bias, scale=scale)
    combiner = ccdproc.Combiner([
        ccdproc.subtract_bias(CCDData(f.astype(float), unit="adu"), CCDData(bias.astype(float), unit="adu"))
        for f in flats
    ])
    combiner.scaling = scale
    theirs = combiner.median_combine()
    f32_equal(ours.data, theirs.data)
    f32_equal(ours.uncertainty, theirs.uncertainty.array, rtol=1e-4)


def test_combining_from_a_scratch_file_gives_the_same_master(tmp_path):
    flats = raw_frames(7, 20000, 150)
    with FrameStack(7, SHAPE, np.uint16, memory_bytes=1000, scratch=tmp_path) as stack:
        assert stack.on_disk
        stack.array[:] = flats
        ours = median_combine(stack.array, memory_bytes=7 * 80 * 4 * 4 * 5)  # 5-row tiles
    assert not list(tmp_path.glob(".stack-*"))
    assert np.array_equal(ours.data, median_combine(flats).data)


def test_bias_deviation_and_flat_match_ccdproc():
    gain, read_noise = 0.73, 3.65
    raw = raw_frames(1, 6000, 80)[0]
    raw[10, 10] = 65535
    bias = CCDData(median_combine(raw_frames(5, 355, 5)).data, unit="adu")
    flat_raw = median_combine(raw_frames(5, 20000, 150)).data / 20000
    flat_raw[0, :3] = 0.01  # a vignetted corner
    flat = CCDData(flat_raw.astype(np.float32), unit="adu")

    ours = subtract_bias(to_ccd(raw), bias)
    ours = with_deviation(ours, gain, read_noise)
    ours = mask_saturated(ours, raw, 65535)
    ours = flat_correct(ours, flat, min_value=0.1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ccdproc.subtract_bias(CCDData(raw.astype(float), unit="adu"), CCDData(bias.data.astype(float), unit="adu"))
        theirs = ccdproc.create_deviation(theirs, gain=gain * u.electron / u.adu, readnoise=read_noise * u.electron, disregard_nan=True)
        theirs = ccdproc.flat_correct(theirs, CCDData(flat.data.astype(float), unit="adu"), min_value=0.1)
    f32_equal(ours.data, theirs.data)
    f32_equal(ours.uncertainty.array, theirs.uncertainty.array, rtol=1e-5)
    assert ours.mask[10, 10] and ours.mask[0, 0] and not ours.mask[30, 30]
    assert ours.data.dtype == np.float32
    # Flat fielding keeps the count level (the flat is normalised to mean 1).
    assert np.mean(ours.data) == pytest.approx(np.mean(raw - bias.data) / np.mean(flat.data / flat.data.mean()), rel=0.02)


def test_overscan_is_ccdproc_subtract_overscan():
    raw = raw_frames(1, 355, 5)[0].astype(np.float32)
    raw += np.linspace(0, 20, SHAPE[0], dtype=np.float32)[:, None]  # a drifting level
    ours = subtract_overscan(to_ccd(raw), "[3:12,1:60]")
    theirs = ccdproc.subtract_overscan(CCDData(raw.astype(float), unit="adu"), fits_section="[3:12,1:60]",
                                       median=True, overscan_axis=1)
    f32_equal(ours.data, theirs.data)


def test_master_dark_is_ccdproc_combiner_of_bias_subtracted_darks():
    from nota.reduce.masters import make_master_dark

    bias = median_combine(raw_frames(10, 355, 5)).data
    darks = raw_frames(5, 355 + 40, 8, hits=2)  # 40 ADU of dark current over the bias
    ours = make_master_dark(darks, bias)
    combiner = ccdproc.Combiner([ccdproc.subtract_bias(CCDData(d.astype(np.float32), unit="adu"),
                                                       CCDData(bias, unit="adu")) for d in darks])
    theirs = combiner.median_combine()
    f32_equal(ours.data, theirs.data)
    f32_equal(ours.uncertainty.array, theirs.uncertainty.array, rtol=1e-5)


@pytest.mark.parametrize("exposure, dark_exposure", [(300.0, 300.0), (120.0, 600.0)])
def test_subtract_dark_is_ccdproc_subtract_dark(exposure, dark_exposure):
    from nota.reduce.ccd import subtract_dark

    frame = with_deviation(to_ccd(raw_frames(1, 2000, 40)[0]), gain=1.2, read_noise=2.5)
    master = with_deviation(to_ccd(raw_frames(1, 80, 3)[0]), gain=1.2, read_noise=0.5)
    master.mask = np.zeros(SHAPE, bool)
    master.mask[3, 4] = True  # a hot pixel the master cannot correct
    ours = subtract_dark(frame, master, exposure=exposure, dark_exposure=dark_exposure)
    theirs = ccdproc.subtract_dark(CCDData(frame.data, unit="adu", uncertainty=frame.uncertainty),
                                   CCDData(master.data, unit="adu", uncertainty=master.uncertainty, mask=master.mask),
                                   dark_exposure=dark_exposure * u.s, data_exposure=exposure * u.s,
                                   scale=True)
    f32_equal(ours.data, theirs.data)
    f32_equal(ours.uncertainty.array, theirs.uncertainty.array)
    assert np.array_equal(ours.mask, theirs.mask)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nanmedian0_is_numpys_nanmedian(dtype):
    """The quick median of a few frames (sort and pick) gives numpy's values exactly, NaN
    where every frame is NaN, for more choices than np.choose takes as well."""
    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 4, 7, 33):
        block = rng.normal(100, 10, (n, 40, 50)).astype(dtype)
        block[rng.random(block.shape) < 0.3] = np.nan
        block[:, 0, :7] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns of the all-NaN pixels
            expected = np.nanmedian(block, axis=0)
        got = nanmedian0(block)
        assert got.dtype == expected.dtype
        assert np.array_equal(got, expected, equal_nan=True), n
