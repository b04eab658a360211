"""Previews and diagnostic plots: real arrays in, PNG bytes out, decoded and inspected."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from nota.reduce import plots
from nota.reduce.preview import (
    CMAPS,
    NEUTRAL_RGB,
    block_average,
    cmap_for,
    preview_png,
    zscale,
    zscale_limits,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROWS, COLS = 2052, 2198  # the lecture's unbinned CCD, rows x columns
SKY, NOISE = 1000.0, 10.0


def decode(png: bytes) -> np.ndarray:
    """The picture as an RGB array (rows, columns, 3), top row first as an image viewer has it."""
    assert png.startswith(PNG_SIGNATURE)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def size_of(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    return Image.open(io.BytesIO(png)).size


@pytest.fixture(scope="module")
def raw_frame() -> np.ndarray:
    """A full-size uint16 sky frame with one saturated star."""
    rng = np.random.default_rng(7)
    frame = rng.normal(SKY, NOISE, (ROWS, COLS))
    y, x = np.mgrid[0:ROWS, 0:COLS]
    frame += 60000.0 * np.exp(-((x - 1500.0) ** 2 + (y - 700.0) ** 2) / (2 * 6.0**2))
    return np.clip(frame, 0, 65535).astype(np.uint16)


def test_preview_of_a_raw_frame_keeps_aspect(raw_frame):
    png = preview_png(raw_frame)
    width, height = size_of(png)
    assert width == 128  # the longer side is the 2198 columns
    assert height == round(128 * ROWS / COLS)


@pytest.mark.parametrize(
    ("shape", "max_size", "expected"),
    [
        ((300, 100), 128, (43, 128)),  # tall: (width, height)
        ((100, 300), 64, (64, 21)),
        ((5, 7), 128, (7, 5)),  # tiny frames are never enlarged
        ((1, 1), 128, (1, 1)),
    ],
)
def test_preview_size(shape, max_size, expected):
    data = np.random.default_rng(1).normal(100, 5, shape).astype(np.float32)
    assert size_of(preview_png(data, max_size=max_size)) == expected


def test_block_average_is_the_mean_of_whole_blocks():
    data = np.random.default_rng(2).integers(0, 65535, (256, 384)).astype(np.uint16)
    expected = data.reshape(64, 4, 96, 4).astype(np.float64).mean(axis=(1, 3))
    np.testing.assert_allclose(block_average(data, 96), expected, rtol=1e-6)


def test_zscale_brackets_the_sky_not_the_star(raw_frame):
    low, high = zscale_limits(raw_frame)
    assert SKY - 10 * NOISE < low < SKY < high < SKY + 10 * NOISE
    assert raw_frame.max() > 50000  # the star is there, and did not pull the limits


def test_zscale_ignores_masked_and_non_finite_pixels():
    rng = np.random.default_rng(3)
    data = rng.normal(SKY, NOISE, (200, 200)).astype(np.float32)
    data[:, :100] = 50000.0  # half the frame: enough to move zscale if it were seen
    mask = np.zeros(data.shape, bool)
    mask[:, :100] = True
    data[150:, 150:] = np.nan
    low, high = zscale_limits(data, mask)
    assert SKY - 10 * NOISE < low < SKY < high < SKY + 10 * NOISE
    with pytest.raises(ValueError):
        zscale_limits(data, np.ones(data.shape, bool))


@pytest.mark.parametrize("seed", range(6))
def test_zscale_is_astropys(seed):
    from astropy.visualization import ZScaleInterval

    rng = np.random.default_rng(seed)
    data = rng.normal(SKY, NOISE * (seed + 1), 300 + 700 * seed)
    data[:: 17 + seed] = 60000.0  # stars and cosmic rays to clip
    expected = ZScaleInterval().get_limits(data.copy())
    np.testing.assert_allclose(zscale(data), expected, rtol=1e-9)


def test_masked_and_missing_regions_are_neutral():
    rng = np.random.default_rng(4)
    data = rng.normal(SKY, NOISE, (512, 512)).astype(np.float32)
    mask = np.zeros(data.shape, bool)
    mask[:128, :128] = True  # bottom-left of the picture
    data[384:, 384:] = np.nan  # top-right of the picture
    picture = decode(preview_png(data, max_size=128, mask=mask))
    neutral = np.all(picture == NEUTRAL_RGB, axis=2)
    assert neutral[-32:, :32].all()  # bottom-left block of the picture
    assert neutral[:32, -32:].all()  # top-right
    assert neutral.sum() == 2 * 32 * 32  # and nowhere else


def test_a_frame_with_no_data_is_all_neutral():
    picture = decode(preview_png(np.full((40, 60), np.nan, np.float32)))
    assert np.all(picture == NEUTRAL_RGB)


def test_constant_frame_renders():
    assert size_of(preview_png(np.full((100, 50), 7, np.uint16))) == (50, 100)


def test_row_zero_is_at_the_bottom():
    data = np.full((400, 300), SKY, np.float32)
    data[:20] = 5000.0  # a bright band along the first rows of the array
    data[:, :10] = 5000.0  # and along the first columns
    data += np.random.default_rng(5).normal(0, NOISE, data.shape).astype(np.float32)
    picture = decode(preview_png(data, max_size=100))[..., 0].astype(int)
    assert picture.shape == (100, 75)
    assert picture[-1, 10:].mean() > 250  # bottom row of the picture is white
    assert picture[0, 10:].mean() < 200  # top row is sky
    assert picture[:-6, 0].mean() > 250 and picture[:-6, -1].mean() < 200  # left stays left


def test_flat_colormap_differs_from_gray():
    assert cmap_for("sky_flat") == cmap_for("dome_flat") == cmap_for("master_flat") == "inferno"
    assert cmap_for("bias") == cmap_for("science") == CMAPS["default"] == "gray"
    y, x = np.mgrid[0:200, 0:200]
    flat = (20000.0 * (1 - 1e-5 * ((x - 100) ** 2 + (y - 100) ** 2))).astype(np.float32)
    grey = decode(preview_png(flat, cmap=cmap_for("bias")))
    colour = decode(preview_png(flat, cmap=cmap_for("sky_flat")))
    assert (grey[..., 0] == grey[..., 2]).all()
    assert not (colour[..., 0] == colour[..., 2]).all()
    assert np.abs(grey.astype(int) - colour.astype(int)).mean() > 20
    with pytest.raises(ValueError, match="colormap"):
        preview_png(flat, cmap="no-such-map")


def test_bias_histograms_of_ten_frames():
    rng = np.random.default_rng(6)
    frames = [
        (f"ALrd1200{i:02d}.fits", rng.normal(1000 + i, 4, (400, 440)).astype(np.uint16))
        for i in range(10)
    ]
    frames.append(("float.fits", rng.normal(1003, 4, (400, 440)).astype(np.float32)))
    png = plots.bias_histograms_png(frames)
    assert size_of(png)[0] == 800 and 400 <= size_of(png)[1] <= 700
    assert size_of(plots.bias_histograms_png(frames[:3])) == (800, 400)
    with pytest.raises(ValueError):
        plots.bias_histograms_png([])


def patterns(count: int, excluded: int | None) -> list[tuple[str, np.ndarray, bool]]:
    rng = np.random.default_rng(8)
    y, x = np.mgrid[0:8, 0:8]
    vignetted = 1 - 0.01 * ((x - 3.5) ** 2 + (y - 3.5) ** 2) / 4
    result = []
    for i in range(count):
        pattern = vignetted * rng.normal(1, 0.003, (8, 8))
        if i == excluded:
            pattern[:3, :2] *= 0.8  # a rotated filter's shadow
        result.append((f"ALrd1200{i:02d}.fits", pattern, i != excluded))
    return result


def test_flat_patterns_of_twelve_frames_mark_the_excluded_one():
    red = np.array([214, 39, 40])  # matplotlib's tab:red, used for the title and frame
    marked = decode(plots.flat_patterns_png(patterns(12, excluded=5)))
    plain = decode(plots.flat_patterns_png(patterns(12, excluded=None)))
    assert marked.shape == plain.shape == (400, 800, 3)
    assert np.all(marked == red, axis=2).sum() > 100
    assert np.all(plain == red, axis=2).sum() == 0
    reference = np.median([p for _, p, _ in patterns(12, None)], axis=0)
    assert size_of(plots.flat_patterns_png(patterns(3, 1), reference)) == (800, 400)


def test_image_png_of_a_master_flat():
    rng = np.random.default_rng(9)
    flat = rng.normal(1.0, 0.01, (600, 900)).astype(np.float32)
    flat[:5] = np.nan
    png = plots.image_png(flat, "master flat R", cmap=cmap_for("master_flat"), unit="relative")
    width, height = size_of(png)
    assert 512 < width < 800 and 300 < height < 600
    small = plots.image_png(flat, "no bar", max_size=256, colorbar=False)
    assert size_of(small)[0] < width


def test_night_statistics():
    kinds = ["bias"] * 5 + ["sky_flat"] * 5 + ["science"] * 10
    rows = []
    for i, kind in enumerate(kinds):
        minutes = 20 * 60 + 25 * i  # 20:00 UT onwards, past midnight
        day = 12 + minutes // (24 * 60)
        stamp = f"2008-04-{day:02d}T{minutes // 60 % 24:02d}:{minutes % 60:02d}:05.25"
        median = {"bias": 1000.0, "sky_flat": 30000.0 / (i + 1), "science": 1500.0}[kind]
        rows.append({"filename": f"f{i}.fits", "kind": kind, "date_obs": stamp, "median": median})
    rows.append({"filename": "undated.fits", "kind": "bias", "date_obs": None, "median": 1000})
    rows.append({"filename": "zero.fits", "kind": "dark", "date_obs": stamp, "median": 0})
    assert size_of(plots.night_statistics_png(rows)) == (800, 400)
    with pytest.raises(ValueError):
        plots.night_statistics_png(rows[-2:])


def test_the_shipped_palettes_are_matplotlibs_and_no_picture_imports_it():
    """nota's two colormaps come sampled in nota/data (importing matplotlib cost each worker
    0.1-0.2 s): they must be matplotlib's colours exactly, and previews, master pictures and
    their fonts must not import it."""
    import matplotlib

    from conftest import python_prints
    from nota.reduce.canvas import _matplotlib_data
    from nota.reduce.preview import CMAPS, LEVELS, shipped_palettes

    for name in CMAPS.values():
        expected = matplotlib.colormaps[name](np.linspace(0.0, 1.0, LEVELS), bytes=True)[:, :3].tobytes()
        assert shipped_palettes()[name] == expected, name
    assert str(_matplotlib_data()) == matplotlib.get_data_path()
    code = ("import sys, numpy as np\n"
            "from nota.reduce import plots, preview\n"
            "data = np.random.default_rng(1).normal(100, 5, (200, 300)).astype(np.float32)\n"
            "preview.preview_png(data, max_size=64, cmap='inferno')\n"
            "plots.image_png(data, 'master_flat_R.fits', cmap='inferno')\n"
            "print('matplotlib' in sys.modules)\n")
    assert python_prints(code, timeout=120) == ["False"]
