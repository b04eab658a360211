"""What the product steps share: the overscan setting, reading a raw frame, product paths."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.nddata import CCDData

from nota.archive import groups
from nota.archive.frames import RawFrame, raw_frame, readout
from nota.errors import NotaError, ProfileError
from nota.instruments import Profile
from nota.reduce.ccd import subtract_overscan, to_ccd, trim
from nota.reduce.rawdata import read_pixels
from nota.sections import to_slices
from nota.settings import build

__all__ = ["Overscan", "CombineParams", "overscan_for", "read_raw", "prepare", "product_path", "product_name", "slug", "fill_stack",
           "trimmed_shape", "group_recipe"]


@dataclass(frozen=True)
class Overscan:
    """Subtracting the overscan row by row (``nota reduce --overscan``): where, and how."""

    biassec: str
    model: str = "median"  # per-row median of BIASSEC; or mean


@dataclass(frozen=True)
class CombineParams:
    """A master combined from raw frames as the biases are: the useful section, the overscan
    (or none), the clip and the combination."""

    trimsec: str
    overscan: Overscan | None = None
    combine: str = "median"  # median | mean (of what survives the clip)
    clip_max: float | None = None  # ADU, raw: values above are cosmic-ray hits, rejected first


def overscan_for(profile: Profile, wanted: bool, biassec: str | None) -> Overscan | None:
    """The profile's ``[reduce.overscan]`` for a frame's BIASSEC, when the user asked for it."""
    if not wanted:
        return None
    if biassec is None:
        raise ProfileError(f"profile {profile.key}.toml: no overscan (BIASSEC) on this camera: reduce without --overscan")
    return build(Overscan, profile.reduce.get("overscan", {}),
                 where=f"profile {profile.key}.toml [reduce.overscan]", biassec=biassec)


def read_raw(raw: RawFrame) -> np.ndarray:
    """A raw frame's pixels, physical values (BZERO/BSCALE applied)."""
    return read_pixels(raw.path, raw.layout, raw.data_hdu, raw.data_offset, raw.naxis1, raw.naxis2,
                       raw.bitpix, raw.bzero, raw.bscale)


def prepare(raw: RawFrame, trimsec: str, overscan: Overscan | None) -> tuple[CCDData, np.ndarray]:
    """Raw pixels -> (overscan-subtracted,) trimmed CCDData; also the trimmed raw values."""
    pixels = read_raw(raw)
    ccd = to_ccd(pixels)
    if overscan is not None:
        ccd = subtract_overscan(ccd, overscan.biassec, overscan.model)
    return trim(ccd, trimsec), pixels[to_slices(trimsec)]


def product_path(root: Path, night: str | None, step: str, name: str) -> str:
    """Where a product lives: ``ROOT/NIGHT/STEP/NAME``."""
    return str(root / (night or "unknown") / step / name)


_FITS_ENDINGS = (".fits", ".fit", ".fts")


def product_name(prefix: str, raw_name: str) -> str:
    """A product's file name from its raw frame's whole name (``fzt_`` + ``ALFOSC.2017-01-01T00:00:00.000``
    + ``.fits``): names with dots in them stay apart."""
    stem = raw_name
    for ending in (".gz", ".fz"):
        if stem.lower().endswith(ending):
            stem = stem[: -len(ending)]
    for ending in _FITS_ENDINGS:
        if stem.lower().endswith(ending):
            stem = stem[: -len(ending)]
            break
    return f"{prefix}{stem}.fits"


def slug(text: str) -> str:
    """Text safe in a file name."""
    return re.sub(r"[^A-Za-z0-9+.-]+", "_", text).strip("_") or "series"


def fill_stack(stack: np.ndarray, used: list[RawFrame], trimsec: str, overscan: Overscan | None,
               on_frame=None) -> np.ndarray | None:
    """Put each group member's trimmed raw pixels in ``stack`` (each file read once); returns
    the members' overscan levels row by row (N, rows) when the overscan is subtracted.

    ``on_frame(i, raw, trimmed, row_offset)`` sees each frame as it is read (for a bias's
    histogram, a flat's scale).
    """
    rows, cols = to_slices(trimsec)
    shape = stack.shape[1:]
    row_offsets = np.zeros((len(used), shape[0]), np.float32) if overscan is not None else None
    for i, raw in enumerate(used):
        pixels = read_raw(raw)
        trimmed = pixels[rows, cols]
        if trimmed.shape != shape:
            raise NotaError(f"{raw.name}: {trimmed.shape} differs from the group's {shape}")
        stack[i] = trimmed
        if row_offsets is not None:
            whole = to_ccd(pixels)
            levels = whole.data - subtract_overscan(whole, overscan.biassec, overscan.model).data
            row_offsets[i] = levels[rows, 0]
        if on_frame is not None:
            on_frame(i, raw, trimmed, None if row_offsets is None else row_offsets[i])
    return row_offsets


def trimmed_shape(trimsec: str) -> tuple[int, int]:
    rows, cols = to_slices(trimsec)
    return rows.stop - rows.start, cols.stop - cols.start


def group_recipe(context, group: dict, step: str, params_class, **fixed):
    """A master's raw members (included or not, and why), its first included member and its
    Params, from the profile's ``[reduce.STEP]`` and the members' readout."""
    archive = context.archive
    profile = context.profile(group["instrument"])
    inputs = tuple(raw_frame(archive, m["file_id"], bool(m["included"]), m["reason"])
                   for m in groups.group_members(archive, group["group_id"]))
    first = next(i for i in inputs if i.included)
    sections = readout(archive, first.file_id, profile)
    params = build(params_class, profile.reduce.get(step, {}), where=f"profile {profile.key}.toml [reduce.{step}]",
                   trimsec=sections.trimsec, overscan=overscan_for(profile, context.options.overscan, sections.biassec),
                   **fixed)
    return inputs, first, params
