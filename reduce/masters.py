"""Master calibration frames from a stack of raw frames: the lecture's recipes, pure.

The stack is the group's trimmed raw frames as the integers the camera wrote, (N, rows,
cols), so a night's flats cost 2 bytes a pixel until a tile is combined. The pipeline
fills it (each file read once) and hands it here with what the recipe needs.
"""

from __future__ import annotations

import numpy as np
from astropy.nddata import CCDData, StdDevUncertainty

from nota.reduce.combine import median_combine

__all__ = ["make_master_bias", "make_master_dark", "make_master_flat", "flat_scales"]


def make_master_bias(stack: np.ndarray, *, combine: str = "median", clip_max: float | None = None,
                     row_offsets: np.ndarray | None = None, memory_bytes: int = 512 * 2**20,
                     threads: int = 1) -> CCDData:
    """Combine biases: values above ``clip_max`` rejected (cosmic-ray hits), then the median.

    As ``ccdproc.Combiner`` with ``minmax_clipping(max_clip=clip_max)`` and
    ``median_combine``; ``row_offsets`` (N, rows) is each frame's overscan level, when
    the overscan is subtracted.
    """
    combined = median_combine(stack, method=combine, row_offsets=row_offsets, clip_max=clip_max,
                              memory_bytes=memory_bytes, threads=threads)
    return CCDData(combined.data, unit="adu", uncertainty=StdDevUncertainty(combined.uncertainty),
                   mask=combined.mask)


def make_master_dark(stack: np.ndarray, bias: np.ndarray, *, combine: str = "median", clip_max: float | None = None,
                     row_offsets: np.ndarray | None = None, memory_bytes: int = 512 * 2**20,
                     threads: int = 1) -> CCDData:
    """Combine darks of one exposure time: each bias-subtracted, then combined as the biases are
    (``ccdproc.Combiner`` of the bias-subtracted darks, ``median_combine``); the uncertainty
    is the darks' scatter. ``clip_max`` rejects raw values above it first (cosmic rays in
    short darks; None: none), as for biases."""
    combined = median_combine(stack, method=combine, row_offsets=row_offsets, offset=bias, clip_max=clip_max,
                              memory_bytes=memory_bytes, threads=threads)
    return CCDData(combined.data, unit="adu", uncertainty=StdDevUncertainty(combined.uncertainty),
                   mask=combined.mask)


def flat_scales(frame: np.ndarray, bias: np.ndarray, row_offset: np.ndarray | None = None,
                dark: np.ndarray | None = None) -> float:
    """The factor that brings one flat to a common level: 1 / its bias- (and dark-) subtracted
    median; ``dark`` is the master dark already scaled to this flat's exposure."""
    corrected = frame.astype(np.float32) - bias
    if row_offset is not None:
        corrected -= row_offset[:, None]
    if dark is not None:
        corrected -= dark
    return 1.0 / float(np.median(corrected))


def make_master_flat(stack: np.ndarray, bias: np.ndarray, scales: list[float], *, combine: str = "median",
                     row_offsets: np.ndarray | None = None, memory_bytes: int = 512 * 2**20,
                     dark: np.ndarray | None = None, dark_scales: list[float] | None = None,
                     threads: int = 1) -> CCDData:
    """Combine flats: each bias-subtracted and scaled by ``scales`` (1/median), combined, then
    normalised to mean 1 so flat fielding keeps the count level (``ccdproc.Combiner`` with
    ``scaling``, then the division by the mean the lecture does). With ``dark``, each flat
    also loses the master dark times its ``dark_scales`` (its exposure over the dark's)."""
    combined = median_combine(stack, method=combine, row_offsets=row_offsets, offset=bias, scale=scales,
                              memory_bytes=memory_bytes, dark=dark, dark_scales=dark_scales, threads=threads)
    norm = np.float32(float(np.mean(combined.data, dtype=np.float64)))
    return CCDData(combined.data / norm, unit="adu", uncertainty=StdDevUncertainty(combined.uncertainty / norm),
                   mask=combined.mask)
