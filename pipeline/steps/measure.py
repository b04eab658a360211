"""QC's measuring of one raw frame: the figures ``nota qc`` stores and flags decide on.

Runs in a worker process and touches no database: the job carries where the pixels are
(``RawFrame``), the frame's kind and the step's ``Params`` (sections, saturation, star
limit), built once per frame by ``nota.pipeline.qc`` from the archive and the profile.
Every pixel of the useful section is looked at once: exact mean, median, robust std, min,
max and saturated fraction, the overscan level, previews for the catalogue, and for
flats a coarse illumination pattern (and for sky flats a star count).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from nota.archive.frames import RawFrame
from nota.errors import FitsError, NotaError
from nota.reduce.preview import THUMB_SIZE, VIEW_SIZE, cmap_for, preview_png
from nota.reduce.rawdata import map_pixels
from nota.reduce.statistics import binned_image, count_bright_sources, frame_statistics, illumination_pattern
from nota.sections import to_slices
from nota.settings import build

log = logging.getLogger(__name__)

NAME = "measure"
VERSION = 1
FLAT_KINDS = ("sky_flat", "dome_flat")
STAR_SEARCH_SIZE = 500  # pixels a side the sky flat is binned to before stars are counted

__all__ = ["NAME", "VERSION", "Params", "Job", "Result", "Failure", "make_params", "measure", "run"]


@dataclass(frozen=True)
class Params:
    """How one frame is measured."""

    section: str | None = None  # useful section (FITS, binned pixels); None: the whole frame
    overscan: str | None = None  # overscan section for the bias level; None: none
    saturation: float = 65535.0  # ADU in the raw frame
    flat_star_sigma: float = 10.0  # a compact source this many sigma above the sky is a star
    pattern_grid: int = 8  # a flat's illumination pattern is grid x grid block medians
    statistics_sample: int = 4  # median and robust std from every 4th pixel each way


def make_params(settings: Mapping[str, Any], where: str) -> Params:
    """``Params`` from settings (profile and archive), refusing a key it does not know."""
    return build(Params, settings, where=where)


@dataclass(frozen=True)
class Job:
    """One frame to measure."""

    frame: RawFrame
    kind: str
    params: Params


@dataclass(frozen=True)
class Result:
    """One frame's figures (ADU as stored in the raw file) and its previews."""

    file_id: int
    content_hash: str | None
    section: str  # the FITS section measured
    n_pixels: int
    mean: float
    median: float
    std: float  # robust: 1.4826 x MAD
    min: float
    max: float
    saturated_fraction: float
    bias_level: float | None  # median of the overscan
    signal: float | None  # median above the overscan level
    pattern_json: str | None = None  # flats: the coarse normalised illumination grid
    bright_sources: int | None = None  # sky flats: stars
    previews: Mapping[str, bytes] = field(default_factory=dict)  # thumb, view -> PNG


@dataclass(frozen=True)
class Failure:
    """A frame that could not be measured, and why, in one line."""

    file_id: int
    error: str


def _fits_inside(section: str | None, shape: tuple[int, int]) -> bool:
    if not section:
        return False
    try:
        to_slices(section, shape)
    except NotaError:
        return False
    return True


def measure(frame: RawFrame, kind: str, params: Params) -> Result:
    """Figures of one frame."""
    # Mapped, not read: every pixel is looked at once, in bands, or only in samples.
    image = map_pixels(frame.path, frame.layout, frame.data_hdu, frame.data_offset, frame.naxis1,
                       frame.naxis2, frame.bitpix, frame.bzero, frame.bscale)
    useful, overscan = params.section, params.overscan
    if not _fits_inside(useful, image.shape):
        useful = f"[1:{image.shape[1]},1:{image.shape[0]}]"  # a window: measure all of it
        overscan = None
    section = image[to_slices(useful)]
    stats = frame_statistics(section, params.saturation, sample=params.statistics_sample)
    bias_level = None
    if _fits_inside(overscan, image.shape):
        bias_level = frame_statistics(image[to_slices(overscan)], params.saturation).median
    previews = _previews(section, kind)
    return Result(
        file_id=frame.file_id, content_hash=frame.content_hash, section=useful,
        n_pixels=stats.n_pixels, mean=stats.mean, median=stats.median, std=stats.std,
        min=stats.min, max=stats.max, saturated_fraction=stats.saturated_fraction,
        bias_level=bias_level, signal=stats.median - bias_level if bias_level is not None else None,
        pattern_json=_pattern_json(section, kind, params), bright_sources=_stars(section, kind, params),
        previews=previews,
    )


def _previews(section: Any, kind: str) -> dict[str, bytes]:
    """Pictures for the catalogue, from every few pixels of the section (384 to 768 a side)."""
    step = max(1, max(section.shape) // VIEW_SIZE)
    view = np.asarray(section[::step, ::step])
    cmap = cmap_for(kind)
    return {
        "thumb": preview_png(view, max_size=THUMB_SIZE, cmap=cmap),
        "view": preview_png(view, max_size=VIEW_SIZE, cmap=cmap),
    }


def _pattern_json(section: Any, kind: str, params: Params) -> str | None:
    if kind not in FLAT_KINDS:
        return None
    # The coarse pattern needs no full resolution: the statistics' sample serves.
    sample = section[::params.statistics_sample, ::params.statistics_sample]
    pattern = illumination_pattern(sample, params.pattern_grid)
    return json.dumps([[round(float(v), 5) for v in row] for row in pattern])


def _stars(section: Any, kind: str, params: Params) -> int | None:
    if kind != "sky_flat":
        return None
    # Stars only matter (and only happen) on the sky. Binning to ~500 pixels raises a
    # faint star's contrast and keeps the search cheap.
    view = binned_image(section, max(1, max(section.shape) // STAR_SEARCH_SIZE))
    return count_bright_sources(view, params.flat_star_sigma)


def run(job: Job) -> Result | Failure:
    """The worker: ``measure``, with a bad file's error as a ``Failure`` instead of raising."""
    try:
        return measure(job.frame, job.kind, job.params)
    except (FitsError, NotaError, OSError, ValueError) as exc:
        return Failure(job.frame.file_id, f"{job.frame.path}: {exc}")
