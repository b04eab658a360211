"""Read a raw frame's pixels as the integers the camera wrote, without astropy's scaling.

ALFOSC writes 16-bit unsigned data as BITPIX 16 with BZERO 32768. Quality control only
needs those integers, so a plain uncompressed file is read straight from its data offset
(one read, no float conversion); gzip and tile-compressed files go through astropy.
``map_pixels`` goes further for readers that look at a frame only once: the file is mapped,
not read, and pixels become integers only where they are looked at (``LazyImage``).
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
from astropy.io import fits

from nota.errors import FitsError

__all__ = [
    "LazyImage",
    "map_pixels",
    "read_pixels",
    "read_through_astropy",
    "read_stored",
    "row_bands",
    "to_physical",
]

BAND_ROWS = 128  # 128 rows of a 2k frame as 16-bit integers: 560 kB, about a core's L2 cache

_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def _dtype(path: str, bitpix: int) -> str:
    """The numpy type of a FITS data unit as stored (big-endian)."""
    if bitpix not in _DTYPES:
        raise FitsError(f"{path}: unsupported BITPIX {bitpix}")
    return _DTYPES[bitpix]


def read_through_astropy(path: str, hdu: int) -> np.ndarray:
    """A gzipped or tile-compressed image, decompressed by astropy; integers stay integers."""
    with fits.open(path, memmap=False) as hdul:
        data = hdul[hdu].data
        if data is None:
            raise FitsError(f"{path}: HDU {hdu} has no data")
        if data.dtype.kind == "f" and np.all(np.mod(data, 1) == 0) and 0 <= data.min() and data.max() < 65536:
            return data.astype(np.uint16)
        return np.asarray(data)


def read_stored(path: str, data_offset: int, naxis1: int, naxis2: int, bitpix: int) -> np.ndarray:
    """An uncompressed image exactly as stored (big-endian, BZERO not applied): one read."""
    dtype = _dtype(path, bitpix)
    count = naxis1 * naxis2
    with open(path, "rb") as stream:  # read-only
        stream.seek(data_offset)
        buffer = stream.read(count * abs(bitpix) // 8)
    if len(buffer) != count * abs(bitpix) // 8:
        raise FitsError(f"{path}: data unit shorter than {naxis1} x {naxis2} pixels")
    return np.frombuffer(buffer, dtype=dtype).reshape(naxis2, naxis1)


def to_physical(stored: np.ndarray, bzero: float = 0.0, bscale: float = 1.0) -> np.ndarray:
    """Stored values to physical ones; 16-bit data with BZERO 32768 become uint16."""
    if stored.dtype.itemsize == 2 and stored.dtype.kind == "i" and bzero == 32768 and bscale == 1:
        # Signed storage + 32768 == flip the top bit; one pass swaps the bytes too.
        unsigned = stored.view(stored.dtype.byteorder + "u2")
        return np.bitwise_xor(unsigned, np.uint16(0x8000), dtype=np.uint16)
    if bzero or bscale != 1:
        return stored * bscale + bzero
    return stored.astype(stored.dtype.newbyteorder("="))


def read_pixels(path: str, layout: str, hdu: int, data_offset: int, naxis1: int, naxis2: int,
                bitpix: int, bzero: float = 0.0, bscale: float = 1.0) -> np.ndarray:
    """A raw image's physical values: read straight from its offset when the file is
    plain FITS (``layout`` simple or mef, as ingest recorded it), through astropy otherwise."""
    if layout in ("simple", "mef"):
        return to_physical(read_stored(path, data_offset, naxis1, naxis2, bitpix), bzero, bscale)
    return read_through_astropy(path, hdu)


class LazyImage:
    """A raw image as stored in its file, made physical only where it is looked at.

    Basic slicing gives another lazy image (a view of the mapped file); ``numpy.asarray``
    converts just the pixels of that view. Quality control sums every pixel a band of rows
    at a time and looks at strided samples for the rest, so it never holds a converted copy
    of a whole frame, and a sample costs only its own pixels.
    """

    def __init__(self, stored: np.ndarray, bzero: float = 0.0, bscale: float = 1.0):
        self.stored, self.bzero, self.bscale = stored, bzero, bscale
        self.dtype = to_physical(stored[:0], bzero, bscale).dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.stored.shape

    @property
    def ndim(self) -> int:
        return self.stored.ndim

    @property
    def size(self) -> int:
        return self.stored.size

    def __getitem__(self, key) -> LazyImage:
        return LazyImage(self.stored[key], self.bzero, self.bscale)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if copy is False:
            raise ValueError("stored pixels become physical values only in a copy")
        physical = to_physical(self.stored, self.bzero, self.bscale)
        return physical if dtype is None else physical.astype(dtype, copy=False)


def map_pixels(path: str, layout: str, hdu: int, data_offset: int, naxis1: int, naxis2: int,
               bitpix: int, bzero: float = 0.0, bscale: float = 1.0) -> LazyImage | np.ndarray:
    """A raw image to look at once: mapped from a plain FITS file (read-only), or decompressed
    by astropy when ``layout`` says gzip or tile compression."""
    if layout not in ("simple", "mef"):
        return read_through_astropy(path, hdu)
    dtype = _dtype(path, bitpix)
    if os.path.getsize(path) < data_offset + naxis1 * naxis2 * abs(bitpix) // 8:
        raise FitsError(f"{path}: data unit shorter than {naxis1} x {naxis2} pixels")
    stored = np.memmap(path, dtype=dtype, mode="r", offset=data_offset, shape=(naxis2, naxis1))
    return LazyImage(stored, bzero, bscale)


def row_bands(image: LazyImage | np.ndarray, rows: int = BAND_ROWS) -> Iterator[np.ndarray]:
    """An image a band of rows at a time, as arrays: each band is converted and reduced while
    it is still in the cache, instead of streaming the whole frame through memory per figure."""
    for start in range(0, image.shape[0], rows):
        yield np.asarray(image[start : start + rows])
