"""Frames in the archive: finding one by name, its facts, where its pixels are, its readout.

Each fact has one lookup here. A frame named by a user (file name, path or file_id) is
found by ``find_frame``; what a worker needs to read a frame's pixels is ``raw_frames``;
its header for a product is ``header_cards`` (the cards ingest stored, not the raw file
read again); its sections, BZERO/BSCALE, gain and read noise are ``readout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from nota.archive.database import Archive
from nota.errors import NotaError

if TYPE_CHECKING:
    from nota.instruments import Profile

__all__ = ["RawFrame", "Readout", "find_frame", "frame_facts", "raw_frames", "header_cards", "readout", "readouts"]


@dataclass(frozen=True)
class RawFrame:
    """A raw frame as a worker needs it: where its pixels are and how they are stored."""

    file_id: int
    path: str
    name: str
    content_hash: str
    layout: str
    data_hdu: int
    data_offset: int
    naxis1: int
    naxis2: int
    bitpix: int
    bzero: float
    bscale: float
    included: bool = True
    reason: str = "good"


@dataclass(frozen=True)
class Readout:
    """How a frame was read out: its sections (binned pixels) and its detector's numbers."""

    trimsec: str
    biassec: str | None  # None: no overscan (a CMOS sensor)
    gain: float
    read_noise: float
    saturation: float


def find_frame(archive: Archive, frame: str) -> dict[str, Any]:
    """A file by name, path or file_id; a clear error if none or several match."""
    rows = archive.dicts(
        "SELECT file_id, name AS filename, path FROM files WHERE name = ? OR path = ? OR CAST(file_id AS TEXT) = ?",
        (frame, str(Path(frame).absolute()), frame),
    )
    if not rows:
        raise NotaError(f"no frame {frame!r} in the archive (give its file name, path or file_id)")
    if len(rows) > 1:
        raise NotaError(f"{frame!r} names {len(rows)} files; give the full path: "
                        + ", ".join(r["path"] for r in rows))
    return rows[0]


_FACTS = ("SELECT o.file_id, f.name AS filename, f.path, f.content_hash, o.night, o.instrument, o.kind,"
          " o.kind_rule, o.filter, o.filter_ids, o.binning, o.naxis1, o.naxis2, o.gain, o.read_noise,"
          " o.object, o.exptime, o.date_obs, o.mjd, o.ra, o.dec, o.airmass, o.ccd_temp, o.site_latitude,"
          " o.site_longitude, o.pixel_scale"
          " FROM observations o JOIN files f USING (file_id) WHERE f.status = 'ok'")


def frame_facts(archive: Archive, file_ids: Iterable[int] | None = None) -> dict[int, dict[str, Any]]:
    """The normalised facts of good frames (all of them, or these), by file_id."""
    if file_ids is None:
        rows = archive.dicts(_FACTS)
    else:
        ids = sorted(set(file_ids))
        rows = archive.dicts(f"{_FACTS} AND o.file_id IN (SELECT value FROM json_each(?))", (str(ids),))
    return {r["file_id"]: r for r in rows}


_RAW = """
SELECT f.file_id, f.path, f.name, f.content_hash, f.layout, f.data_hdu, h.data_offset,
       h.naxis1, h.naxis2, h.bitpix,
       (SELECT value FROM headers c WHERE c.file_id = f.file_id AND c.hdu = f.data_hdu
          AND c.keyword = 'BZERO') AS bzero,
       (SELECT value FROM headers c WHERE c.file_id = f.file_id AND c.hdu = f.data_hdu
          AND c.keyword = 'BSCALE') AS bscale
FROM files f JOIN hdus h ON h.file_id = f.file_id AND h.hdu = f.data_hdu
WHERE f.file_id IN (SELECT value FROM json_each(?))
"""


def raw_frames(archive: Archive, file_ids: Iterable[int]) -> dict[int, RawFrame]:
    """Where each frame's pixels are and how they are stored (BZERO, BSCALE), by file_id."""
    found = {}
    for row in archive.dicts(_RAW, (str(sorted(set(file_ids))),)):
        row["bzero"] = float(row["bzero"] or 0.0)
        row["bscale"] = float(row["bscale"] or 1.0)
        found[row["file_id"]] = RawFrame(**row)
    return found


def raw_frame(archive: Archive, file_id: int, included: bool = True, reason: str = "good") -> RawFrame:
    """One frame's ``raw_frames`` entry, marked as a group member or not."""
    found = raw_frames(archive, [file_id]).get(file_id)
    if found is None:
        raise NotaError(f"file {file_id} has no image data in the archive")
    return RawFrame(**{**found.__dict__, "included": included, "reason": reason})


def header_cards(archive: Archive, file_id: int) -> tuple[tuple[tuple, ...], tuple[tuple, ...]]:
    """The cards of a frame's primary HDU and of its image HDU (empty when it is the primary),
    as (keyword, value, comment), logicals as True/False."""
    rows = archive.run(
        "SELECT h.hdu, h.keyword, h.value, h.comment, h.raw FROM headers h JOIN files f USING (file_id)"
        " WHERE h.file_id = ? AND h.hdu IN (0, f.data_hdu) ORDER BY h.hdu, h.position",
        (file_id,),
    )[1]
    primary, image = [], []
    for hdu, keyword, value, comment, raw in rows:
        if raw in ("T", "F") and value in (0, 1):
            value = raw == "T"
        (primary if hdu == 0 else image).append((keyword, value, comment))
    return tuple(primary), tuple(image)


def readout(archive: Archive, file_id: int, profile: Profile) -> Readout:
    """A frame's sections (TRIMSEC/BIASSEC from its header, else the profile's, binned to its
    readout), gain and read noise (its header's, else the profile's) and saturation."""
    found = readouts(archive, [file_id], lambda _: profile)
    if file_id not in found:
        raise NotaError(f"file {file_id} is not a frame of the archive")
    return found[file_id]


_READOUTS = """
SELECT o.file_id, o.binning, o.gain, o.read_noise, o.naxis1, o.naxis2,
       (SELECT value FROM headers c WHERE c.file_id = o.file_id AND c.hdu IN (0, f.data_hdu)
          AND c.keyword = 'TRIMSEC' ORDER BY c.hdu DESC LIMIT 1) AS trimsec,
       (SELECT value FROM headers c WHERE c.file_id = o.file_id AND c.hdu IN (0, f.data_hdu)
          AND c.keyword = 'BIASSEC' ORDER BY c.hdu DESC LIMIT 1) AS biassec
FROM observations o JOIN files f USING (file_id)
WHERE o.file_id IN (SELECT value FROM json_each(?))
"""


def readouts(archive: Archive, file_ids: Iterable[int],
             profile_of: Callable[[int], Profile | None]) -> dict[int, Readout]:
    """``readout`` of many frames in one query, by file_id; ``profile_of(file_id)`` gives each
    frame's profile (frames without one get no entry)."""
    found = {}
    for facts in archive.dicts(_READOUTS, (str(sorted(set(file_ids))),)):
        profile = profile_of(facts["file_id"])
        if profile is None:
            continue
        xbin, ybin = (int(v) for v in (facts["binning"] or "1x1").split("x"))
        detector = profile.detector
        found[facts["file_id"]] = Readout(  # a profile without sections: the whole frame, no overscan
            trimsec=facts["trimsec"] or profile.trimsec_for(xbin, ybin, facts["naxis1"], facts["naxis2"]),
            biassec=facts["biassec"] or profile.biassec_for(xbin, ybin),
            gain=float(facts["gain"] or detector.get("gain") or 1.0),
            read_noise=float(facts["read_noise"] or detector.get("read_noise") or 0.0),
            saturation=float(detector.get("saturation", 65535)),
        )
    return found
