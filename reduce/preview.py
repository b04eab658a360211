"""Small preview pictures of frames, for browsing the catalogue.

People find a bad flat or a trailed science frame faster by looking than by reading numbers,
so every raw frame and product gets a thumbnail PNG stored next to its row. The picture follows
DS9's defaults (zscale stretch, origin at the bottom-left) so it looks like what the lecture
shows. A 2k x 2k frame must preview in a few milliseconds, so the block average gathers rows
into an accumulator as high as the preview, then columns; the frame itself is never converted
to float, copied or tested for NaN unless a sum shows something is missing.
"""

from __future__ import annotations

import io
import logging
from functools import lru_cache

import numpy as np

__all__ = [
    "CMAPS",
    "FLAT_PREVIEW_KINDS",
    "NEUTRAL_RGB",
    "block_average",
    "cmap_for",
    "preview_png",
    "preview_shape",
    "to_levels",
    "zscale",
    "zscale_limits",
]

log = logging.getLogger(__name__)

THUMB_SIZE = 128  # fits a table cell
VIEW_SIZE = 384  # the larger view on a row page

CMAPS = {"flat": "inferno", "default": "gray"}
FLAT_PREVIEW_KINDS = frozenset({"dome_flat", "sky_flat", "master_flat"})
# Slate grey: on neither the gray nor the inferno ramp, so "no data" never reads as a level.
NEUTRAL_RGB = (112, 128, 144)
ZSCALE_GRID = 4096  # pixels sampled on a regular grid before zscale's own 1000


def cmap_for(kind: str) -> str:
    """The matplotlib colormap name for a frame kind: flats in colour to show their shape."""
    return CMAPS["flat"] if kind in FLAT_PREVIEW_KINDS else CMAPS["default"]


def zscale_limits(data: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """DS9's default display limits, from a regular grid of finite, unmasked pixels.

    zscale looks at 1000 pixels at most; taking a few thousand on a grid first means
    the whole frame is never copied, converted or tested for NaN.
    """
    values = np.asarray(data)
    if values.ndim != 2:
        values = values.reshape(1, -1)
    rows, cols = values.shape
    step = max(1, int(np.sqrt(values.size / ZSCALE_GRID)))
    grid = (slice(step // 2, None, step), slice(step // 2, None, step))
    if values[grid].size == 0:  # fewer rows or columns than the step: take them all
        grid = (slice(None), slice(None))
    sample = values[grid].astype(np.float64).ravel()
    valid = np.isfinite(sample)
    if mask is not None:
        valid &= ~np.asarray(mask, dtype=bool).reshape(rows, cols)[grid].ravel()
    sample = sample[valid]
    if sample.size == 0:
        raise ValueError("no finite, unmasked pixels to scale")
    return zscale(sample)


def zscale(
    values: np.ndarray,
    n_samples: int = 1000,
    contrast: float = 0.25,
    max_reject: float = 0.5,
    min_npixels: int = 5,
    krej: float = 2.5,
    max_iterations: int = 5,
) -> tuple[float, float]:
    """IRAF's zscale limits of finite values, step for step as astropy's ``ZScaleInterval``.

    Sort a sample, fit a line to it while clipping points more than ``krej`` sigma off (and
    their neighbours), and span the median +- the slope / ``contrast`` over the sample. Here
    rather than astropy's because every qc run makes hundreds of previews: importing
    ``astropy.visualization`` (astropy.units, matplotlib) costs each run 0.2 s, and the
    line's least squares in closed form cost a tenth of ``numpy.polyfit``.
    """
    stride = int(max(1.0, values.size / n_samples))
    samples = np.sort(values[::stride][:n_samples])
    npix = samples.size
    vmin, vmax = float(samples[0]), float(samples[-1])
    minpix = max(min_npixels, int(npix * max_reject))
    x = np.arange(npix, dtype=np.float64)
    good = np.ones(npix, dtype=bool)
    kernel = np.ones(max(1, int(npix * 0.01)), dtype=bool)  # grows each rejection
    ngood, last_ngood = npix, npix + 1
    slope = None
    for _ in range(max_iterations):
        if ngood >= last_ngood or ngood < minpix:
            break
        xg, yg = x[good], samples[good]
        dx = xg - xg.mean()
        slope = float(np.sum(dx * (yg - yg.mean())) / np.sum(dx * dx))
        intercept = float(yg.mean()) - slope * float(xg.mean())
        residual = samples - (slope * x + intercept)
        threshold = krej * residual[good].std()
        bad = ~good | (residual < -threshold) | (residual > threshold)
        good = ~np.convolve(bad, kernel, mode="same")
        last_ngood, ngood = ngood, int(np.count_nonzero(good))
    if slope is not None and ngood >= minpix:
        if contrast > 0:
            slope /= contrast
        centre = (npix - 1) // 2
        median = float(np.median(samples))
        vmin = max(vmin, median - (centre - 1) * slope)
        vmax = min(vmax, median + (npix - centre) * slope)
    return vmin, vmax


def _block_starts(length: int, blocks: int, per_block: int) -> list[np.ndarray]:
    """Indices of ``per_block`` evenly spaced pixels inside each of ``blocks`` equal blocks.

    Returned as one index array per position within the block, so that summing over the
    positions is a handful of vectorised gathers rather than one huge fancy index.
    """
    edges = np.linspace(0.0, length, blocks + 1)
    width = np.diff(edges)
    offsets = (np.arange(per_block) + 0.5) / per_block
    index = np.minimum((edges[:-1, None] + offsets * width[:, None]).astype(np.intp), length - 1)
    return [index[:, j] for j in range(per_block)]


def preview_shape(shape: tuple[int, int], max_size: int) -> tuple[int, int]:
    """(rows, columns) of a preview: the longer side max_size, the aspect kept, never enlarged."""
    rows, cols = shape
    longer = max(rows, cols)
    if longer <= max_size:
        return rows, cols
    scale = max_size / longer
    return max(1, min(max_size, round(rows * scale))), max(1, min(max_size, round(cols * scale)))


def block_average(data: np.ndarray, max_size: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Mean of blocks, so the longer side is at most ``max_size``; NaN where data is missing.

    Blocks need not be a whole number of pixels (2198 columns into 128 is 17.2), so each block
    averages about as many evenly spaced rows and columns as it is wide. A block with fewer
    than half of its pixels finite and unmasked is NaN: a bad region stays visible as one.
    """
    values = np.asarray(data)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"a preview needs a non-empty 2-D image, not shape {values.shape}")
    if max_size < 1:
        raise ValueError(f"max_size must be positive, not {max_size}")
    rows, cols = values.shape
    out_rows, out_cols = preview_shape((rows, cols), max_size)
    row_index = _block_starts(rows, out_rows, max(1, round(rows / out_rows)))
    col_index = _block_starts(cols, out_cols, max(1, round(cols / out_cols)))
    bad = None if mask is None else np.asarray(mask, dtype=bool)
    if bad is not None and bad.shape != values.shape:
        raise ValueError(f"mask shape {bad.shape} differs from image shape {values.shape}")
    if bad is None:
        mean = _block_mean(values, row_index, col_index, None)
        if np.isfinite(mean).all():
            return mean  # the common case: nothing masked or missing, no per-pixel tests
    return _block_mean(values, row_index, col_index, bad, careful=True)


def _block_mean(
    values: np.ndarray,
    row_index: list[np.ndarray],
    col_index: list[np.ndarray],
    bad: np.ndarray | None,
    careful: bool = False,
) -> np.ndarray:
    """Block means from gathered rows then columns; ``careful`` skips missing pixels."""
    out_rows, cols = len(row_index[0]), values.shape[1]
    total = np.zeros((out_rows, cols), dtype=np.float64)
    count = np.zeros((out_rows, cols), dtype=np.int32) if careful else None
    for index in row_index:
        part = values[index]
        if count is None:
            total += part
            continue
        good = np.isfinite(part) if part.dtype.kind in "fc" else np.ones(part.shape, bool)
        if bad is not None:
            good &= ~bad[index]
        total += np.where(good, part, 0)
        count += good
    summed = sum(total[:, index] for index in col_index)
    samples = len(row_index) * len(col_index)
    if count is None:
        return (summed / samples).astype(np.float32)
    counted = sum(count[:, index] for index in col_index)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = summed / counted
    mean[counted * 2 < samples] = np.nan
    return mean.astype(np.float32)


LEVELS = 255  # palette entries for data; the last of the 256 is the neutral "no data" colour
MISSING = LEVELS


@lru_cache(maxsize=16)
def palette(cmap: str) -> bytes:
    """A PNG palette: 255 colours of a matplotlib colormap, then the neutral colour.

    The two nota draws with (``CMAPS``) come sampled from matplotlib in nota's data:
    importing matplotlib for them cost each worker 0.1 to 0.2 s. Any other name is asked of
    matplotlib itself."""
    colours = shipped_palettes().get(cmap)
    if colours is None:
        import matplotlib

        try:
            colormap = matplotlib.colormaps[cmap]
        except KeyError as exc:
            raise ValueError(f"unknown colormap {cmap!r}") from exc
        colours = colormap(np.linspace(0.0, 1.0, LEVELS), bytes=True)[:, :3].tobytes()
    return colours + bytes(NEUTRAL_RGB)


@lru_cache(maxsize=1)
def shipped_palettes() -> dict[str, bytes]:
    """name -> 255 RGB colours, from ``nota/data/palettes.txt``."""
    from importlib import resources

    text = resources.files("nota").joinpath("data", "palettes.txt").read_text()
    return {name: bytes.fromhex(colours) for name, colours in
            (line.split() for line in text.splitlines() if line.strip() and not line.startswith("#"))}


def to_levels(image: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """Palette indices of an image between display limits; NaN pixels get ``MISSING``."""
    low, high = limits
    span = high - low if high > low else 1.0
    levels = np.clip((np.nan_to_num(image, nan=low) - low) * ((LEVELS - 1) / span), 0, LEVELS - 1)
    indices = levels.astype(np.uint8)
    indices[~np.isfinite(image)] = MISSING
    return indices


def preview_png(
    data: np.ndarray,
    *,
    max_size: int = 128,
    cmap: str = "gray",
    mask: np.ndarray | None = None,
) -> bytes:
    """A palette PNG thumbnail: block-averaged, zscaled, row 0 at the bottom as DS9 shows it.

    The limits come from the averaged picture, not the raw pixels: that is what the eye sees,
    and it lets a bias's or flat's large-scale structure show instead of drowning in noise.
    """
    from PIL import Image

    small = block_average(data, max_size, mask)
    finite = np.isfinite(small)
    limits = zscale_limits(small, ~finite) if finite.any() else (0.0, 1.0)
    picture = Image.fromarray(np.ascontiguousarray(to_levels(small, limits)[::-1]))
    picture.putpalette(palette(cmap))  # one byte a pixel, grey or in colour
    buffer = io.BytesIO()
    # Stored, not deflated: noisy sky hardly compresses (deflate saves a quarter of a view's
    # bytes at eight times the cost, a tenth of qc's time per frame), and one byte a pixel
    # is already smaller than the deflated RGB pictures were.
    picture.save(buffer, format="PNG", compress_level=0)
    log.debug("preview %s -> %s, limits %.1f..%.1f", np.shape(data), small.shape, *limits)
    return buffer.getvalue()
