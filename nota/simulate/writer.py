"""Writing files atomically: a temporary name in the same directory, then ``os.replace``.

A reader scanning the night directory meanwhile sees either no file or a whole one, never
a half-written FITS file.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

__all__ = ["write_bytes", "write_fits", "write_json", "write_npy", "write_npz"]

log = logging.getLogger(__name__)


def write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_fits(path: Path, data: np.ndarray, primary: fits.Header,
               image: fits.Header | None) -> None:
    """A raw frame: one HDU with ``primary``, or a data-less primary plus an ``im1`` extension.

    uint16 data are written as BITPIX 16 with BZERO 32768, as ALFOSC wrote them.
    """
    if data.dtype != np.uint16:
        raise TypeError(f"raw frames are uint16, got {data.dtype}")
    if image is None:
        hdul = fits.HDUList([fits.PrimaryHDU(data=data, header=primary)])
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(header=primary),
                             fits.ImageHDU(data=data, header=image, name="im1")])
    buffer = io.BytesIO()
    hdul.writeto(buffer, output_verify="exception")
    write_bytes(path, buffer.getvalue())


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode())


def write_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes(path, buffer.getvalue())


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes(path, buffer.getvalue())
