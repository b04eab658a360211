"""Read a raw frame's pixels as the integers the camera wrote, without astropy's scaling.

ALFOSC writes 16-bit unsigned data as BITPIX 16 with BZERO 32768. Quality control only
needs those integers, so a plain uncompressed file is read straight from its data offset
(one read, no float conversion); gzip and tile-compressed files go through astropy.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from nota.errors import FitsError

__all__ = ["read_raw_pixels"]

_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def read_raw_pixels(
    path: str,
    hdu: int,
    data_offset: int,
    naxis1: int,
    naxis2: int,
    bitpix: int,
    bzero: float = 0.0,
    bscale: float = 1.0,
    plain: bool = True,
) -> np.ndarray:
    """The image of one HDU as stored, with BZERO 32768 on 16-bit data made uint16."""
    if not plain:
        with fits.open(path, memmap=False) as hdul:
            data = hdul[hdu].data
            if data is None:
                raise FitsError(f"{path}: HDU {hdu} has no data")
            if data.dtype.kind == "f" and np.all(np.mod(data, 1) == 0) and data.max() < 65536:
                return data.astype(np.uint16) if data.min() >= 0 else data.astype(np.int32)
            return np.asarray(data)
    dtype = _DTYPES.get(bitpix)
    if dtype is None:
        raise FitsError(f"{path}: unsupported BITPIX {bitpix}")
    count = naxis1 * naxis2
    with open(path, "rb") as stream:  # read-only
        stream.seek(data_offset)
        data = np.frombuffer(stream.read(count * abs(bitpix) // 8), dtype=dtype)
    if data.size != count:
        raise FitsError(f"{path}: data unit shorter than {naxis1} x {naxis2} pixels")
    data = data.reshape(naxis2, naxis1)
    if bitpix == 16 and bzero == 32768 and bscale == 1:
        return (data.view(">u2") ^ np.uint16(0x8000)).astype(np.uint16)
    if bzero or bscale != 1:
        return data * bscale + bzero
    return data.astype(data.dtype.newbyteorder("="))
