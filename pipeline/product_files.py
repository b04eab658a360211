"""Product files on disk: written whole or not at all, read back as ``CCDData``.

A product is FITS: float32 data, ``UNCERT`` and ``MASK`` extensions (``CCDData.read``
reads them), further uint8 planes such as ``CRMASK``, and the raw frame's header (from the
archive's cards, not the raw file) with nota's stamps. It is written to a temporary name
beside its final one and renamed, so a reader never sees half a product.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Iterable

import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

import nota
from nota.errors import NotaError
from nota.fitscards import COMMENTARY
from nota.hashing import content_hash
from nota.pipeline.tasks import Card, Task
from nota.reduce.preview import THUMB_SIZE, VIEW_SIZE, cmap_for, preview_png

__all__ = ["TMP_PREFIX", "write_product", "read_product", "read_master", "raw_header", "stamp",
           "pictures", "clean_temporaries"]

TMP_PREFIX = ".nota-tmp-"
_STRUCTURAL = frozenset({"BZERO", "BSCALE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND"})
_EXTENSION_ONLY = frozenset({"XTENSION", "PCOUNT", "GCOUNT", "EXTNAME", "INHERIT", ""})


def raw_header(primary: Iterable[Card] = (), image: Iterable[Card] = ()) -> fits.Header:
    """The frame's header as the camera wrote it: the image HDU's cards over the primary's."""
    header = fits.Header()
    for keyword, value, comment in primary:
        if keyword in COMMENTARY:
            header.append(fits.Card(keyword, value if value is not None else ""), bottom=True)
        elif keyword not in _STRUCTURAL:
            header.append(fits.Card(keyword, value, comment or ""), bottom=True)
    for keyword, value, comment in image:
        if keyword in _EXTENSION_ONLY or keyword in _STRUCTURAL:
            continue
        if keyword in COMMENTARY:
            header[keyword] = value if value is not None else ""
        else:
            header[keyword] = (value, comment or "")
    return header


def stamp(header: fits.Header, task: Task, history: list[str], masters: dict[str, str]) -> fits.Header:
    """nota's cards on a product: which version and step made it, its id, its masters."""
    header = header.copy()
    header["FILENAME"] = os.path.basename(task.output)
    header["BUNIT"] = "adu"
    header["NOTAVER"] = (nota.__version__, "nota version that made this product")
    header["NOTAKEY"] = (task.key, "nota product id")
    header["NOTASTEP"] = (task.step, "nota step that made this product")
    if "master_bias" in masters:
        header["NOTABIAS"] = (os.path.basename(masters["master_bias"]), "master bias used")
    if "master_dark" in masters:
        header["NOTADARK"] = (os.path.basename(masters["master_dark"]), "master dark used")
    if "master_flat" in masters:
        header["NOTAFLAT"] = (os.path.basename(masters["master_flat"]), "master flat used")
    for line in history:
        header["HISTORY"] = line
    return header


def write_product(ccd: CCDData, path: str, planes: dict[str, np.ndarray] | None = None) -> tuple[str, int]:
    """Write data (float32), UNCERT and MASK atomically; returns (content hash, size).

    ``planes`` are further uint8 image extensions by name (``CRMASK``: the pixels of MASK
    that are cosmic rays), which ``CCDData.read`` passes over.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    out = CCDData(
        np.asarray(ccd.data, dtype=np.float32),
        unit=ccd.unit,
        meta=ccd.meta,
        uncertainty=None if ccd.uncertainty is None
        else StdDevUncertainty(np.asarray(ccd.uncertainty.array, dtype=np.float32)),
        mask=None if ccd.mask is None else np.asarray(ccd.mask, dtype=bool),
    )
    hdul = out.to_hdu(hdu_mask="MASK", hdu_uncertainty="UNCERT", as_image_hdu=False)
    for hdu in hdul:
        if hdu.name == "MASK":
            hdu.data = hdu.data.astype(np.uint8)
    for name, plane in (planes or {}).items():
        hdul.append(fits.ImageHDU(np.asarray(plane, dtype=np.uint8), name=name))
    temporary = target.with_name(f"{TMP_PREFIX}{os.getpid()}-{target.name}")
    try:
        hdul.writeto(temporary, overwrite=True)
        digest = content_hash(str(temporary))
        size = temporary.stat().st_size
        os.replace(temporary, target)  # the product appears whole, or not at all
    except OSError as exc:  # a full disk (ENOSPC), a file-size limit (EFBIG), a lost mount
        raise NotaError(f"{target.name}: could not be written in {target.parent}"
                        f" ({exc.strerror or exc}); nothing of it was kept") from exc
    finally:
        temporary.unlink(missing_ok=True)
    return digest, size


def read_product(path: str | Path) -> CCDData:
    """A product as CCDData (data, UNCERT, MASK, header), without parsing a WCS from it."""
    with fits.open(path, memmap=False) as hdul:
        return CCDData(
            hdul[0].data.astype(np.float32),
            unit="adu",
            meta=hdul[0].header,
            uncertainty=StdDevUncertainty(hdul["UNCERT"].data.astype(np.float32)),
            mask=hdul["MASK"].data.astype(bool),
        )


@functools.lru_cache(maxsize=4)
def _cached(path: str, _file: tuple[int, int, int]) -> CCDData:
    return read_product(path)


def read_master(path: str) -> CCDData:
    """A master, read once per worker (keyed by path, size, mtime and inode: a master rebuilt
    in place, of the same size, is read again; `nota watch --jobs 1` runs cycle after cycle
    in one process)."""
    st = os.stat(path)
    return _cached(path, (st.st_size, st.st_mtime_ns, st.st_ino))


def pictures(data: np.ndarray, kind: str, mask: np.ndarray | None = None) -> dict[str, bytes]:
    """Catalogue previews of a product, from a view of about 512 pixels."""
    step = max(1, max(data.shape) // VIEW_SIZE)
    view = data[::step, ::step]
    small_mask = None if mask is None else mask[::step, ::step]
    cmap = cmap_for(kind)
    return {"thumb": preview_png(view, max_size=THUMB_SIZE, cmap=cmap, mask=small_mask),
            "view": preview_png(view, max_size=VIEW_SIZE, cmap=cmap, mask=small_mask)}


def clean_temporaries(root: Path) -> None:
    """Half-written files of a killed run: never registered, safe to remove."""
    if root.exists():
        for leftover in root.rglob(f"{TMP_PREFIX}*"):
            leftover.unlink(missing_ok=True)
        for leftover in root.rglob(".stack-*.npy"):
            leftover.unlink(missing_ok=True)
