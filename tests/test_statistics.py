"""Frame statistics from one histogram equal numpy's on the same pixels."""

from __future__ import annotations

import numpy as np
import pytest

from nota.sections import binned, parse_section, to_slices
from nota.reduce.statistics import MAD_TO_SIGMA, frame_statistics, illumination_pattern


@pytest.mark.parametrize("seed", range(40))
def test_histogram_statistics_equal_numpy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 500))
    high = int(rng.integers(1, 3000))
    for data in (rng.integers(0, high, n).astype(np.uint16), rng.integers(-high, high, n).astype(np.int32)):
        data[: max(1, n // 50)] = min(65535, data.max())
        s = frame_statistics(data, saturation=65535)
        f = data.astype(np.float64)
        median = np.median(f)
        assert s.mean == pytest.approx(f.mean(), rel=1e-12, abs=1e-12)
        assert s.median == median
        assert s.std == pytest.approx(MAD_TO_SIGMA * np.median(np.abs(f - median)), abs=1e-9)
        assert (s.min, s.max) == (f.min(), f.max())
        assert s.saturated_fraction == np.count_nonzero(f >= 65535) / f.size


def test_float_data_and_saturation():
    data = np.array([[1.5, 2.5], [np.nan, 70000.0]])
    s = frame_statistics(data, saturation=65535)
    assert s.n_pixels == 3 and s.median == 2.5 and s.saturated_fraction == pytest.approx(1 / 3)


def test_illumination_pattern_sees_a_shadow():
    flat = np.full((64, 64), 20000, dtype=np.uint16)
    flat[:16, :16] = 4000
    pattern = illumination_pattern(flat, grid=8)
    assert pattern.shape == (8, 8) and pattern[0, 0] == pytest.approx(0.2) and pattern[7, 7] == 1


def test_sections():
    assert parse_section("[61:2100,21:2032]") == (61, 2100, 21, 2032)
    rows, cols = to_slices("[61:2100,21:2032]")
    assert (rows, cols) == (slice(20, 2032), slice(60, 2100))  # the lecture's [20:-20, 60:2100]
    assert binned("[61:2100,21:2032]", 4, 4) == "[16:525,6:508]"
    with pytest.raises(Exception, match="not a FITS section"):
        parse_section("20:-20, 60:2100")


def test_sampled_statistics():
    rng = np.random.default_rng(7)
    data = rng.normal(20000, 150, (400, 300)).astype(np.uint16)
    data[5, 5] = 65535
    s = frame_statistics(data, 65535, sample=4)
    assert s.n_pixels == data.size and s.max == 65535 and s.saturated_fraction == 1 / data.size
    assert s.mean == pytest.approx(data.mean(dtype=np.float64), rel=1e-12)
    sample = data[::4, ::4].astype(np.float64)
    assert s.median == np.median(sample)
    assert s.std == pytest.approx(MAD_TO_SIGMA * np.median(np.abs(sample - np.median(sample))))
    assert s.std == pytest.approx(150, rel=0.05)


def test_a_mapped_frame_gives_the_same_figures(tmp_path):
    """qc's lazily converted, band-by-band view of a file equals reading it whole."""
    from astropy.io import fits

    from nota.reduce.rawdata import map_pixels, read_pixels

    rng = np.random.default_rng(11)
    data = rng.normal(20000, 150, (301, 257)).astype(np.uint16)  # bands and samples end unevenly
    data[7, 9] = 65535
    path = tmp_path / "frame.fits"
    fits.PrimaryHDU(data).writeto(path)  # uint16: BITPIX 16, BZERO 32768
    with fits.open(path) as hdul:
        offset, header = hdul[0].fileinfo()["datLoc"], hdul[0].header
    args = (str(path), "simple", 0, offset, 257, 301, header["BITPIX"], header["BZERO"], 1.0)
    whole, mapped = read_pixels(*args), map_pixels(*args)
    np.testing.assert_array_equal(np.asarray(mapped), data)
    np.testing.assert_array_equal(whole, data)
    section = (slice(3, 290), slice(5, 250))
    for sample in (1, 3, 4):
        assert frame_statistics(mapped[section], 65535, sample) == frame_statistics(data[section], 65535, sample)
    np.testing.assert_array_equal(illumination_pattern(mapped[::4, ::4]), illumination_pattern(data[::4, ::4]))
