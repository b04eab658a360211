"""Finding a standard star on its frame: the brightest unsaturated source near the centre.

The observer centres the standard on the chip; cosmic rays and saturated cores must not
be taken for it. Pure over ``CCDData`` (the reduction's mask marks saturated pixels).
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
from astropy.nddata import CCDData
from astropy.stats import sigma_clipped_stats

from nota.errors import PhotometryError
from nota.reduce.aperture import _box, _frame

__all__ = ["find_standard"]

log = logging.getLogger(__name__)

SAMPLE = 4  # one pixel in so many for the sky statistics


def find_standard(ccd: CCDData, expected_xy: tuple[float, float] | None = None, *,
                  radius: float | None = None, fwhm: float = 3.0,
                  threshold_sigma: float = 10.0) -> tuple[float, float]:
    """Position (0-based x, y) of a frame's standard star: the brightest unsaturated source.

    Searches within ``radius`` pixels of ``expected_xy`` (default 15 FWHM) or, with no
    position, of the frame centre (default a quarter of the shorter side), as an observer
    centres the standard on the chip. Sources with masked pixels at their peak are
    saturated (the reduction masks saturated pixels) and skipped.
    """
    from photutils.detection import find_peaks
    from photutils.utils.exceptions import NoDetectionsWarning
    from scipy import ndimage

    f = _frame(ccd, 1.0)
    ny, nx = f.data.shape
    if expected_xy is None:
        centre = ((nx - 1) / 2.0, (ny - 1) / 2.0)
        reach = radius if radius is not None else 0.25 * min(nx, ny)
    else:
        centre = (float(expected_xy[0]), float(expected_xy[1]))
        reach = radius if radius is not None else max(15.0 * fwhm, 10.0)
    rows, cols = _box(f.data.shape, centre[0], centre[1], reach + 3 * fwhm)
    cut = f.data[rows, cols]
    bad = f.bad[rows, cols]
    good = cut[~bad]
    if good.size < 25:
        raise PhotometryError("no unmasked pixels where the standard should be")
    # The sky's level and noise from every 4th pixel: 350,000 of a full-size frame's search
    # box are plenty, and astropy's clipping of all of them was most of this function's time.
    _, level, _ = sigma_clipped_stats(good[::SAMPLE], sigma=3.0, maxiters=5)
    # Smooth over the seeing so a cosmic-ray pixel cannot outshine a star.
    smooth = ndimage.gaussian_filter(np.where(bad, level, cut) - level,
                                     sigma=max(fwhm / 2.355, 0.7))
    _, _, noise = sigma_clipped_stats(smooth[~bad][::SAMPLE], sigma=3.0, maxiters=5)
    dilated = ndimage.binary_dilation(bad, iterations=max(round(fwhm / 2), 1))
    with warnings.catch_warnings():   # "no local peaks" is the error raised below
        warnings.simplefilter("ignore", NoDetectionsWarning)
        peaks = find_peaks(smooth, threshold=threshold_sigma * noise,
                           box_size=max(3, 2 * round(fwhm) + 1))
    if peaks is None or len(peaks) == 0:
        raise PhotometryError(f"no source within {reach:.0f} px of ({centre[0]:.0f}, "
                              f"{centre[1]:.0f})")
    best: tuple[float, float, float] | None = None
    for row in peaks:
        px, py = int(row["x_peak"]), int(row["y_peak"])
        gx, gy = px + cols.start, py + rows.start
        if math.hypot(gx - centre[0], gy - centre[1]) > reach:
            continue
        if dilated[py, px]:
            log.debug("skipping a source at (%d, %d): masked (saturated) core", gx, gy)
            continue
        value = float(row["peak_value"])
        if best is None or value > best[2]:
            best = (float(gx), float(gy), value)
    if best is None:
        raise PhotometryError(f"only saturated or no sources within {reach:.0f} px of "
                              f"({centre[0]:.0f}, {centre[1]:.0f})")
    return best[0], best[1]
