"""Frame statistics for quality control, in one pass over the pixels.

Raw CCD frames hold 16-bit integers, so one histogram (``numpy.bincount``) gives the exact
mean, median, minimum, maximum, saturated count and the median absolute deviation, without
sorting four million pixels. The illumination pattern of a flat is a coarse grid of block
medians, normalised, so flats can be compared with each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FrameStatistics",
    "frame_statistics",
    "histogram_statistics",
    "illumination_pattern",
    "binned_image",
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


def frame_statistics(data: np.ndarray, saturation: float, sample: int = 1) -> FrameStatistics:
    """Statistics of an image section.

    Mean, minimum, maximum and the saturated fraction use every pixel. The median and the
    robust spread come from a histogram of every ``sample``-th pixel in each direction
    (exact when ``sample`` is 1): a 1-in-16 sample of a 2k x 2k frame still has a quarter
    of a million pixels, and a histogram of all of them costs more than the rest together.
    """
    values = np.asarray(data)
    if values.size == 0:
        raise ValueError("empty section")
    sampled = values[::sample, ::sample] if values.ndim == 2 and sample > 1 else values
    if not np.issubdtype(values.dtype, np.integer):
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
    flat = sampled.ravel()
    if np.issubdtype(flat.dtype, np.unsignedinteger) and flat.dtype.itemsize <= 2:
        low, counts = 0, np.bincount(flat)  # 16-bit data: the histogram is at most 65536 long
    else:
        low = int(flat.min())
        counts = np.bincount(flat.astype(np.int64) - low)
    robust = histogram_statistics(counts, low, saturation)
    if sampled is values:
        return robust
    total = int(values.size)
    return FrameStatistics(
        total,
        float(values.sum(dtype=np.float64) / total),
        robust.median,
        robust.std,
        float(values.min()),
        float(values.max()),
        float(np.count_nonzero(values >= saturation)) / total,
    )


def histogram_statistics(counts: np.ndarray, low: int, saturation: float) -> FrameStatistics:
    """Statistics of integer data given as counts per level, from level ``low`` up."""
    occupied = np.flatnonzero(counts)
    if occupied.size == 0:
        raise ValueError("empty section")
    low, counts = low + int(occupied[0]), counts[occupied[0] : occupied[-1] + 1]
    total = int(counts.sum())
    levels = np.arange(low, low + counts.size, dtype=np.float64)
    mean = float(np.dot(counts, levels) / total)
    median = _histogram_median(counts, low, total)
    mad = _histogram_mad(counts, low, median, total)
    high = low + counts.size - 1
    saturated = int(counts[int(saturation) - low :].sum()) if high >= saturation else 0
    return FrameStatistics(
        total, mean, median, mad * MAD_TO_SIGMA, float(low), float(high), saturated / total
    )


def _histogram_mad(counts: np.ndarray, low: int, median: float, total: int) -> float:
    """Median absolute deviation of integer data from its histogram, in one pass.

    The deviations of integer levels from the median all share the median's fraction
    (0 or 0.5), so for each candidate distance d the number of values within d of the
    median is a difference of two cumulative counts; the MAD is the first d that holds
    half of them.
    """
    cumulative = np.concatenate(([0], np.cumsum(counts)))  # cumulative[i] = values below low + i
    fraction = median - np.floor(median)
    distances = fraction + np.arange(counts.size + 1, dtype=np.float64)
    upper = np.clip(np.floor(median + distances).astype(np.int64) - low + 1, 0, counts.size)
    lower = np.clip(np.ceil(median - distances).astype(np.int64) - low, 0, counts.size)
    within = cumulative[upper] - cumulative[lower]
    # The median of the deviations: the mean of the two middle ones when there are two.
    first = distances[np.searchsorted(within, (total + 1) // 2)]
    second = distances[np.searchsorted(within, total // 2 + 1)]
    return float(first + second) / 2.0


def binned_image(data: np.ndarray, factor: int) -> np.ndarray:
    """Mean of factor x factor blocks (edge pixels that do not fill a block are dropped)."""
    if factor <= 1:
        return np.asarray(data, dtype=np.float32)
    rows, cols = data.shape
    h, w = rows // factor, cols // factor
    wide = data[: h * factor, : w * factor]
    # Strided adds run at memory speed; numpy's multi-axis sum does not.
    kind = np.uint32 if np.issubdtype(wide.dtype, np.unsignedinteger) else np.float64
    columns = sum(wide[:, i::factor].astype(kind) for i in range(factor))
    total = sum(columns[i::factor] for i in range(factor))
    return (total / factor**2).astype(np.float32)


def illumination_pattern(data: np.ndarray, grid: int = 8) -> np.ndarray:
    """A grid x grid array of block medians divided by their median: a flat's shape.

    Medians make the pattern blind to stars and cosmic rays; edge pixels that do not fill
    a whole block are left out.
    """
    values = np.asarray(data, dtype=np.float32)
    rows, cols = values.shape
    h, w = rows // grid, cols // grid
    if h == 0 or w == 0:
        raise ValueError(f"a {cols} x {rows} section is too small for a {grid} x {grid} grid")
    blocks = values[: h * grid, : w * grid].reshape(grid, h, grid, w).transpose(0, 2, 1, 3)
    medians = np.median(blocks.reshape(grid, grid, h * w), axis=2)
    level = float(np.median(medians))
    return medians / level if level else medians
