"""Frame statistics for quality control, in one pass over the pixels.

Raw CCD frames hold 16-bit integers, so one histogram (``numpy.bincount``) gives the exact
mean, median, minimum, maximum, saturated count and the median absolute deviation, without
sorting four million pixels. The illumination pattern of a flat is a coarse grid of block
medians, normalised, so flats can be compared with each other; a sky flat's stars are
counted on a binned view of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nota.reduce.rawdata import BAND_ROWS, LazyImage, row_bands

__all__ = [
    "FrameStatistics",
    "frame_statistics",
    "histogram_statistics",
    "illumination_pattern",
    "binned_image",
    "count_bright_sources",
    "MAD_TO_SIGMA",
]

MAD_TO_SIGMA = 1.482602218505602  # sigma of a normal distribution per unit of MAD


@dataclass(frozen=True)
class FrameStatistics:
    """Figures of one frame's section: counts in ADU as stored in the raw file."""

    n_pixels: int
    mean: float
    median: float
    std: float  # robust: 1.4826 x the median absolute deviation
    min: float
    max: float
    saturated_fraction: float


def _histogram_median(counts: np.ndarray, offset: int, total: int) -> float:
    """Median of integer data from its histogram (mean of the two middle values if even)."""
    cumulative = np.cumsum(counts)
    lower = int(np.searchsorted(cumulative, (total + 1) // 2)) + offset
    upper = int(np.searchsorted(cumulative, total // 2 + 1)) + offset
    return (lower + upper) / 2.0


def frame_statistics(
    data: np.ndarray | LazyImage, saturation: float, sample: int = 1
) -> FrameStatistics:
    """Statistics of an image section.

    Mean, minimum, maximum and the saturated fraction use every pixel. The median and the
    robust spread come from a histogram of every ``sample``-th pixel in each direction
    (exact when ``sample`` is 1): a 1-in-16 sample of a 2k x 2k frame still has a quarter
    of a million pixels, and a histogram of all of them costs more than the rest together.
    One pass over the pixels a band of rows at a time (``row_bands``) gives the sums and
    the sample, so a ``LazyImage`` is converted band by band and never as a whole.
    """
    if data.size == 0:
        raise ValueError("empty section")
    if not np.issubdtype(data.dtype, np.integer):
        return _float_statistics(np.asarray(data), saturation, sample)
    if data.ndim != 2 or sample == 1:
        return _integer_histogram_statistics(np.asarray(data).ravel(), saturation)
    accumulator = np.uint64 if np.issubdtype(data.dtype, np.unsignedinteger) else np.int64
    total, lowest, highest, saturated, row, sampled = 0, None, None, 0, 0, []
    for band in row_bands(data):
        total += int(band.sum(dtype=accumulator))
        band_low, band_high = band.min(), band.max()
        lowest = band_low if lowest is None else min(lowest, band_low)
        highest = band_high if highest is None else max(highest, band_high)
        if band_high >= saturation:  # most bands hold no saturated pixel: no comparison
            saturated += int(np.count_nonzero(band >= saturation))
        sampled.append(band[-row % sample :: sample, ::sample].copy())  # rows 0, sample, ...
        row += band.shape[0]
    robust = _integer_histogram_statistics(np.concatenate(sampled).ravel(), saturation)
    n = int(data.size)
    return FrameStatistics(
        n, total / n, robust.median, robust.std, float(lowest), float(highest), saturated / n
    )


def _integer_histogram_statistics(values: np.ndarray, saturation: float) -> FrameStatistics:
    """Statistics of integers from their histogram."""
    if np.issubdtype(values.dtype, np.unsignedinteger) and values.dtype.itemsize <= 2:
        return histogram_statistics(np.bincount(values), 0, saturation)  # at most 65536 long
    low = int(values.min())
    return histogram_statistics(np.bincount(values.astype(np.int64) - low), low, saturation)


def _float_statistics(values: np.ndarray, saturation: float, sample: int) -> FrameStatistics:
    """Statistics of floating-point data, leaving out NaN and infinities."""
    sampled = values[::sample, ::sample] if values.ndim == 2 and sample > 1 else values
    finite = values[np.isfinite(values)]
    part = sampled[np.isfinite(sampled)]
    median = float(np.median(part))
    mad = float(np.median(np.abs(part - median)))
    return FrameStatistics(
        int(finite.size),
        float(finite.mean()),
        median,
        mad * MAD_TO_SIGMA,
        float(finite.min()),
        float(finite.max()),
        float(np.count_nonzero(finite >= saturation)) / finite.size,
    )


def histogram_statistics(counts: np.ndarray, low: int, saturation: float) -> FrameStatistics:
    """Statistics of integer data given as counts per level, from level ``low`` up."""
    occupied = np.flatnonzero(counts)
    if occupied.size == 0:
        raise ValueError("empty section")
    low, counts = low + int(occupied[0]), counts[occupied[0] : occupied[-1] + 1]
    total = int(counts.sum())
    # Integer sums, not numpy.dot: exact, and no BLAS call (see nota.parallel).
    levels = np.arange(low, low + counts.size, dtype=np.int64)
    mean = int((counts * levels).sum()) / total
    median = _histogram_median(counts, low, total)
    mad = _histogram_mad(counts, low, median, total)
    high = low + counts.size - 1
    saturated = int(counts[int(saturation) - low :].sum()) if high >= saturation else 0
    return FrameStatistics(
        total, mean, median, mad * MAD_TO_SIGMA, float(low), float(high), saturated / total
    )


def _histogram_mad(counts: np.ndarray, low: int, median: float, total: int) -> float:
    """Median absolute deviation of integer data from its histogram.

    Folding the histogram about the median gives the histogram of the distances from it:
    the levels k above and k below the median (or its half) are equally far. The MAD is
    that histogram's median.
    """
    centre = median - low  # the median's place in ``counts``: whole, or halfway between two
    above = counts[math.ceil(centre) :]
    below = counts[: math.floor(centre) + 1][::-1].copy()
    if centre == math.floor(centre):
        below[0] = 0  # the median level itself is at distance 0 once, not twice
    distances = np.zeros(max(above.size, below.size), dtype=np.int64)
    distances[: above.size] += above
    distances[: below.size] += below
    return _histogram_median(distances, 0, total) + (centre - math.floor(centre))


def binned_image(data: np.ndarray | LazyImage, factor: int) -> np.ndarray:
    """Mean of factor x factor blocks (edge pixels that do not fill a block are dropped)."""
    if factor <= 1:
        return np.asarray(data, dtype=np.float32)
    rows, cols = data.shape
    h, w = rows // factor, cols // factor
    wide = data[: h * factor, : w * factor]
    # Strided adds run at memory speed; numpy's multi-axis sum does not. A band of rows at a
    # time keeps them in the cache.
    kind = np.uint32 if np.issubdtype(wide.dtype, np.unsignedinteger) else np.float64
    binned = []
    for band in row_bands(wide, factor * max(1, BAND_ROWS // factor)):
        columns = sum(band[:, i::factor].astype(kind) for i in range(factor))
        binned.append(sum(columns[i::factor] for i in range(factor)))
    return (np.concatenate(binned) / factor**2).astype(np.float32)


def illumination_pattern(data: np.ndarray | LazyImage, grid: int = 8) -> np.ndarray:
    """A grid x grid array of block medians divided by their median: a flat's shape.

    Medians make the pattern blind to stars and cosmic rays; edge pixels that do not fill
    a whole block are left out.
    """
    values = np.asarray(data)
    if not _is_16_bit(values):
        values = values.astype(np.float32)
    rows, cols = values.shape
    h, w = rows // grid, cols // grid
    if h == 0 or w == 0:
        raise ValueError(f"a {cols} x {rows} section is too small for a {grid} x {grid} grid")
    blocks = values[: h * grid, : w * grid].reshape(grid, h, grid, w).transpose(0, 2, 1, 3)
    medians = _medians(blocks.reshape(grid, grid, h * w))
    level = float(np.median(medians))
    return medians / level if level else medians


def count_bright_sources(image: np.ndarray, nsigma: float) -> int:
    """Compact sources well above a smooth background: stars in a sky flat.

    The background is a 15-pixel box mean, the noise the robust spread of what is left.
    Near the vignetted edges a box mean cannot follow the light, so only the well-lit
    field (background over 70 % of its median, 8 pixels in from its edge) is searched.
    A cosmic ray is a few sharp pixels; a star has a wing, so a source counts when it
    peaks above ``nsigma`` and spreads over at least four pixels above 3 sigma.
    """
    small = np.asarray(image, dtype=np.float32)
    background = ndimage.uniform_filter(small, size=15, mode="nearest")
    lit = background > 0.7 * float(np.median(background))
    # Eight pixels in from the edge of the lit field: a box filter does the erosion.
    lit = ndimage.uniform_filter(lit.astype(np.float32), size=17, mode="constant") > 0.999
    if not lit.any():
        return 0
    residual = small - background
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(residual[lit][::7])))
    if sigma <= 0:
        return 0
    labels, n = ndimage.label((residual > 3 * sigma) & lit)
    if n == 0:
        return 0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    seeded = np.unique(labels[residual > nsigma * sigma])
    seeded = seeded[seeded > 0]
    return int(np.count_nonzero(sizes[seeded] >= 4))


def _is_16_bit(values: np.ndarray) -> bool:
    return values.dtype.kind == "u" and values.dtype.itemsize <= 2


def _medians(values: np.ndarray) -> np.ndarray:
    """Medians along the last axis in float32, as ``numpy.median`` gives them for float32.

    16-bit integers sort by radix (``kind="stable"``), three times faster than numpy's
    partition of the same values as floats; the two middle values' mean is exact either way.
    """
    if not _is_16_bit(values):
        return np.median(values, axis=-1)
    ordered = np.sort(values, axis=-1, kind="stable")
    n = values.shape[-1]
    return (ordered[..., (n - 1) // 2].astype(np.float32) + ordered[..., n // 2]) / np.float32(2)
