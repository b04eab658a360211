"""Read a raw frame's pixels as the integers the camera wrote, without astropy's scaling.

ALFOSC writes 16-bit unsigned data as BITPIX 16 with BZERO 32768. Quality control only
needs those integers, so a plain uncompressed file is read straight from its data offset
(one read, no float conversion); gzip and tile-compressed files go through astropy.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from nota.errors import FitsError

__all__ = ["read_pixels", "read_through_astropy", "read_stored", "to_physical"]

_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


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
    dtype = _DTYPES.get(bitpix)
    if dtype is None:
        raise FitsError(f"{path}: unsupported BITPIX {bitpix}")
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
        native = stored.view(stored.dtype.byteorder + "u2").astype(np.uint16)
        native ^= np.uint16(0x8000)  # signed storage + 32768 == flip the top bit
        return native
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
