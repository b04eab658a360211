"""``nota profile sections``: a profile's BIASSEC and TRIMSEC against where a real flat's light falls.

Joins the profile (its sections, binned as the flat was read out) and the pixels of a flat
and a bias (read as the camera wrote them) to the measurement in
``nota.reduce.sections_plot``; writes the picture where the user asks. No archive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nota.archive.database import Archive
from nota.archive.plots import write_plot
from nota.errors import NotaError
from nota.instruments.observation import observation_row
from nota.pipeline.profile_tools import FrameHeader, read_headers, resolve_profile
from nota.reduce.rawdata import read_through_astropy
from nota.reduce.sections_plot import Edges, SectionsMeasurement, measure_sections, sections_png

__all__ = ["SectionsReport", "check_sections"]


@dataclass(frozen=True)
class SectionsReport:
    """What ``nota profile sections`` found: the profile's sections, the measured edges, warnings."""

    profile: str
    flat: str
    bias: str | None
    binning: str
    measured: SectionsMeasurement
    png: str | None

    def as_dict(self) -> dict[str, Any]:
        m = self.measured
        return {"profile": self.profile, "flat": self.flat, "bias": self.bias, "binning": self.binning,
                "biassec": m.biassec, "trimsec": m.trimsec, "lit_section": m.lit_section,
                "columns": _edges_dict(m.columns), "rows": _edges_dict(m.rows),
                "warnings": list(m.warnings), "notes": list(m.notes), "png": self.png}


def _edges_dict(edges: Edges) -> dict[str, Any]:
    return {"first": edges.first, "last": edges.last, "size": edges.size, "dark_level": edges.dark_level,
            "plateau": edges.plateau, "threshold": edges.threshold,
            "unlit": [list(run) for run in edges.unlit()]}


def _one_frame(path: str | Path) -> FrameHeader:
    frames, unreadable = read_headers([path])
    if unreadable:
        raise NotaError(f"{path}: {unreadable[0]['problem']}")
    if len(frames) != 1:
        raise NotaError(f"{path}: expected one FITS frame, found {len(frames)}")
    return frames[0]


def _pixels(frame: FrameHeader) -> np.ndarray:
    return np.asarray(read_through_astropy(str(frame.path), frame.data_hdu), dtype=np.float64)


def check_sections(profile_name: str, flat: str | Path, bias: str | Path | None = None,
                   out: str | Path | None = None, archive: Archive | None = None) -> SectionsReport:
    """Measure where ``flat``'s light falls and set it against the profile's sections (binned
    as the flat's header says); with ``out``, draw it there as a PNG; with ``archive``, store
    the drawing among its plots (subject ``sections``), for ``nota serve``."""
    profile = resolve_profile(profile_name)
    flat_frame = _one_frame(flat)
    row = observation_row(flat_frame.header, profile)
    xbin, ybin = (int(b) for b in row["binning"].split("x"))
    data = _pixels(flat_frame)
    trimsec = profile.detector.get("trimsec") and profile.trimsec_for(xbin, ybin)
    measured = measure_sections(data, _pixels(_one_frame(bias)) if bias else None,
                                profile.biassec_for(xbin, ybin), trimsec or None)
    title = f"{Path(flat).name} through profile {profile.key} (binning {row['binning']})"
    png = sections_png(measured, title) if out is not None or archive is not None else None
    if out is not None:
        try:
            Path(out).write_bytes(png)
        except OSError as exc:
            raise NotaError(f"{out}: cannot write the plot: {exc.strerror or exc}") from None
    if archive is not None:
        with archive.transaction():
            write_plot(archive, "sections", title, png, night=row.get("night"))
    return SectionsReport(profile.key, str(flat), str(bias) if bias else None, row["binning"], measured,
                          str(out) if out is not None else None)
