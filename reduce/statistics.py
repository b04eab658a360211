"""Frame statistics for quality control, in one pass over the pixels.

Raw CCD frames hold 16-bit integers, so one histogram (``numpy.bincount``) gives the exact
mean, median, minimum, maximum, saturated count and the median absolute deviation, without
sorting four million pixels. The illumination pattern of a flat is a coarse grid of block
medians, normalised, so flats can be compared with each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FrameStatistics", "frame_statistics", "illumination_pattern", "MAD_TO_SIGMA"]

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


def frame_statistics(data: np.ndarray, saturation: float) -> FrameStatistics:
    """Statistics of an image section; exact and fast for integer data."""
    values = np.asarray(data)
    if values.size == 0:
        raise ValueError("empty section")
    if not np.issubdtype(values.dtype, np.integer):
        finite = values[np.isfinite(values)]
        median = float(np.median(finite))
        mad = float(np.median(np.abs(finite - median)))
        return FrameStatistics(
            int(finite.size),
            float(finite.mean()),
            median,
            mad * MAD_TO_SIGMA,
            float(finite.min()),
            float(finite.max()),
            float(np.count_nonzero(finite >= saturation)) / finite.size,
        )
    flat = values.ravel()
    low = int(flat.min())
    if np.issubdtype(flat.dtype, np.unsignedinteger):
        shifted = flat - flat.dtype.type(low) if low else flat
    else:
        shifted = flat.astype(np.int64) - low
    counts = np.bincount(shifted)
    total = int(flat.size)
    levels = np.arange(low, low + counts.size, dtype=np.float64)
    mean = float(np.dot(counts, levels) / total)
    median = _histogram_median(counts, low, total)
    # MAD from the same histogram: the median of |level - median| weighted by counts.
    deviations = np.abs(levels - median)
    order = np.argsort(deviations, kind="stable")
    cumulative = np.cumsum(counts[order])
    mad = float(deviations[order][np.searchsorted(cumulative, (total + 1) // 2)])
    high = low + counts.size - 1
    saturated = int(counts[int(saturation) - low :].sum()) if high >= saturation else 0
    return FrameStatistics(
        total, mean, median, mad * MAD_TO_SIGMA, float(low), float(high), saturated / total
    )


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
