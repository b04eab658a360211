"""Quality control in the archive: the measured figures, and the flags decided from them.

The lecture looks at every flat in DS9 and at tables of mean/std/min/max before it chooses:
the 800 x 800 focus frame out, the 3 kADU sky flat out, the 39 kADU dome flat out, the
rotated-filter series out, the R flats with a star kept because the median removes it.
``nota qc`` (the pipeline's ``qc``) measures each frame's figures once per file content;
this module stores them in ``qc`` (with the frame's previews) and turns the stored
figures into ``flags``, each with its figure and the profile's threshold, so every
exclusion says why. The flag rules are decisions over stored figures: no pixels here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol

import numpy as np

from nota.archive.database import Archive
from nota.errors import ProfileError
from nota.instruments import Profile, profile_named
from nota.settings import build

log = logging.getLogger(__name__)

FLAT_KINDS = ("sky_flat", "dome_flat")

__all__ = ["FLAT_KINDS", "QcThresholds", "qc_thresholds", "Measurement", "QC_COLUMNS",
           "frames_to_measure", "measured_count", "write_measurements", "flag_frames",
           "night_statistics_rows"]


@dataclass(frozen=True)
class QcThresholds:
    """The limits of the flags; a profile's ``[qc]`` table changes any of them."""

    flat_min_counts: float = 15000.0  # ADU above bias: fainter flats add more noise than signal
    flat_max_counts: float = 36000.0  # ADU above bias in the best-lit part: non-linearity beyond
    flat_blocked_fraction: float = 0.5  # part of the field under this fraction of the light: blocked
    flat_pattern_tolerance: float = 0.03  # largest |block - group pattern|, in units of the median
    flat_star_sigma: float = 10.0  # a compact source this many sigma above the sky is a star
    bias_level_tolerance: float = 20.0  # ADU a bias may stray from its night's median level
    bias_noise_factor: float = 1.5  # a bias noisier than this times its night's median noise
    saturated_fraction_max: float = 0.001  # saturated pixels allowed in a flat or a bias

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{f.name} must be a number, not {value!r}")
            object.__setattr__(self, f.name, float(value))


_THRESHOLDS: dict[str, QcThresholds] = {}


def qc_thresholds(profile: Profile | None) -> QcThresholds:
    """A profile's thresholds (nota's defaults for a camera without a profile), built once."""
    if profile is None:
        return QcThresholds()
    if profile.digest not in _THRESHOLDS:  # by its text: an edited profile is read again
        _THRESHOLDS[profile.digest] = build(QcThresholds, profile.qc, where=f"profile {profile.key}.toml [qc]")
    return _THRESHOLDS[profile.digest]


def _thresholds_of(instrument: str | None) -> QcThresholds:
    try:
        return qc_thresholds(profile_named(instrument)) if instrument else QcThresholds()
    except ProfileError:  # a camera nota has no profile for: nota's defaults
        return QcThresholds()


# The figures -------------------------------------------------------------------------------

QC_COLUMNS = ("file_id", "content_hash", "section", "n_pixels", "mean", "median", "std", "min", "max",
              "saturated_fraction", "bias_level", "signal", "pattern_json", "bright_sources")


class Measurement(Protocol):
    """One frame's measured figures (``QC_COLUMNS``) and its previews (size -> PNG)."""

    file_id: int
    content_hash: str | None
    previews: Mapping[str, bytes]


def frames_to_measure(archive: Archive) -> list[dict[str, Any]]:
    """Good frames with no figures, or figures of other content: file_id, kind, instrument."""
    return archive.dicts(
        "SELECT fr.file_id, fr.kind, fr.instrument FROM frames fr"
        " JOIN files f USING (file_id) JOIN hdus h ON h.file_id = f.file_id AND h.hdu = f.data_hdu"
        " LEFT JOIN qc q ON q.file_id = f.file_id"
        " WHERE q.content_hash IS NOT f.content_hash OR q.file_id IS NULL ORDER BY f.path"
    )


def measured_count(archive: Archive) -> int:
    """Frames with figures."""
    return archive.conn.execute("SELECT count(*) FROM qc").fetchone()[0]


def write_measurements(archive: Archive, activity_id: int, measured: Iterable[Measurement], now: str) -> int:
    """Store each frame's figures and previews (replacing older ones); returns how many."""
    conn = archive.conn
    n = 0
    columns = ", ".join(QC_COLUMNS)
    marks = ", ".join("?" * len(QC_COLUMNS))
    with archive.transaction():
        for m in measured:
            conn.execute("DELETE FROM previews WHERE file_id = ?", (m.file_id,))
            conn.executemany(
                "INSERT INTO previews (file_id, size, content_hash, png, made_at) VALUES (?, ?, ?, ?, ?)",
                [(m.file_id, size, m.content_hash, png, now) for size, png in m.previews.items()],
            )
            conn.execute(
                f"INSERT OR REPLACE INTO qc ({columns}, measured_at, activity_id) VALUES ({marks}, ?, ?)",
                (*(getattr(m, c) for c in QC_COLUMNS), now, activity_id),
            )
            n += 1
    return n


def night_statistics_rows(archive: Archive) -> dict[str, list[dict[str, Any]]]:
    """Each night's measured frames in time order (filename, kind, date_obs, median)."""
    nights: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for filename, kind, date_obs, median, night in archive.conn.execute(
        "SELECT f.filename, f.kind, f.date_obs, q.median, f.night FROM frames f JOIN qc q USING (file_id)"
        " WHERE f.night IS NOT NULL ORDER BY f.date_obs"
    ):
        nights[night].append({"filename": filename, "kind": kind, "date_obs": date_obs, "median": median})
    return nights


# Flags -----------------------------------------------------------------------------------

_FLAG_FACTS = ("file_id", "filename", "night", "instrument", "kind", "filter", "naxis1", "naxis2",
               "binning", "median", "std", "signal", "saturated_fraction", "pattern", "bright_sources")
Flag = Callable[[dict, str, Any, Any, bool, str], None]
Limits = dict[str | None, QcThresholds]


def _flag_facts(archive: Archive) -> list[dict[str, Any]]:
    rows = archive.conn.execute(
        "SELECT fr.file_id, fr.filename, fr.night, fr.instrument, fr.kind, fr.filter, fr.naxis1,"
        " fr.naxis2, fr.binning, q.median, q.std, q.signal, q.saturated_fraction,"
        " q.pattern_json, q.bright_sources FROM frames fr LEFT JOIN qc q USING (file_id)"
    ).fetchall()
    return [dict(zip(_FLAG_FACTS, r)) for r in rows]


def flag_frames(archive: Archive, activity_id: int | None = None) -> Counter:
    """Recompute every QC flag from the stored figures; returns counts by flag."""
    frames = _flag_facts(archive)
    limits: Limits = {i: _thresholds_of(i) for i in {f["instrument"] for f in frames}}
    flags: list[tuple] = []

    def flag(frame: dict, name: str, figure: Any, threshold: Any, excludes: bool, message: str) -> None:
        flags.append((frame["file_id"], name, figure, threshold, int(excludes), message, activity_id))

    by_night: dict[str | None, list[dict]] = defaultdict(list)
    for f in frames:
        by_night[f["night"]].append(f)
    for night, members in by_night.items():
        _flag_shapes(members, flag)
        _flag_biases([f for f in members if f["kind"] == "bias" and f["median"] is not None], limits, flag)
    flats = [f for f in frames if f["kind"] in FLAT_KINDS and f["median"] is not None]
    for f in flats:
        _flag_flat_levels(f, limits, flag)
    level_flagged = {row[0] for row in flags if row[4]}
    _flag_blocked(flats, level_flagged, limits, flag)
    excluded = {row[0] for row in flags if row[4]}
    flat_groups: dict[tuple, list[dict]] = defaultdict(list)
    for f in flats:
        flat_groups[(f["night"], f["filter"], f["kind"], f["naxis1"], f["naxis2"])].append(f)
    for members in flat_groups.values():
        _flag_patterns(members, excluded, limits, flag)
    for f in frames:
        _flag_saturation(f, limits, flag)
    with archive.transaction() as conn:
        conn.execute("DELETE FROM flags")
        conn.executemany(
            "INSERT INTO flags (file_id, flag, figure, threshold, excludes, message, activity_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            flags,
        )
    return Counter(row[1] for row in flags)


def _flag_saturation(f: dict, limits: Limits, flag: Flag) -> None:
    limit = limits[f["instrument"]].saturated_fraction_max
    fraction = f["saturated_fraction"]
    if fraction and f["kind"] in ("bias",) + FLAT_KINDS and fraction > limit:
        flag(f, "saturated", fraction, limit, True,
             f"{fraction:.2%} of the pixels saturated (limit {limit:.2%})")
    elif fraction and fraction > 0:
        flag(f, "saturated_pixels", fraction, 0.0, False,
             f"{fraction:.4%} of the pixels at saturation: masked, frame kept")


def _flag_shapes(members: list[dict], flag: Flag) -> None:
    shapes = Counter((f["naxis1"], f["naxis2"], f["binning"]) for f in members)
    if not shapes:
        return
    (n1, n2, binning), _ = shapes.most_common(1)[0]
    for f in members:
        if (f["naxis1"], f["naxis2"], f["binning"]) != (n1, n2, binning):
            flag(f, "odd_shape", None, None, True,
                 f"{f['naxis1']} x {f['naxis2']} ({f['binning']}) readout; the night's frames are"
                 f" {n1} x {n2} ({binning}): a window or test frame")


def _flag_biases(biases: list[dict], limits: Limits, flag: Flag) -> None:
    if len(biases) < 2:
        return
    level = float(np.median([f["median"] for f in biases]))
    noise = float(np.median([f["std"] for f in biases]))
    for f in biases:
        tol = limits[f["instrument"]].bias_level_tolerance
        factor = limits[f["instrument"]].bias_noise_factor
        if abs(f["median"] - level) > tol:
            flag(f, "bias_level", f["median"], tol, True,
                 f"bias level {f['median']:.1f} ADU, {f['median'] - level:+.1f} from the night's"
                 f" {level:.1f} (tolerance {tol:g})")
        if f["std"] > factor * noise:
            flag(f, "bias_noise", f["std"], factor * noise, True,
                 f"noise {f['std']:.2f} ADU, over {factor:g} x the night's {noise:.2f}")


def _flag_flat_levels(f: dict, limits: Limits, flag: Flag) -> None:
    """Too faint on the median; too bright on the best-lit part of the field."""
    signal = f["signal"] if f["signal"] is not None else f["median"]
    bias = f["median"] - signal
    pattern = _pattern(f)
    peak = f["median"] * float(pattern.max()) - bias if pattern is not None else signal
    low = limits[f["instrument"]].flat_min_counts
    high = limits[f["instrument"]].flat_max_counts
    if signal < low:
        flag(f, "too_faint", signal, low, True,
             f"median {signal:.0f} ADU above bias, under the {low:.0f} ADU floor: too noisy to combine")
    elif peak > high:
        flag(f, "too_bright", peak, high, True,
             f"{peak:.0f} ADU above bias in the best-lit part, over the {high:.0f} ADU ceiling:"
             " risks non-linearity")
    sigma = limits[f["instrument"]].flat_star_sigma
    if f["kind"] == "sky_flat" and f["bright_sources"]:
        flag(f, "star", float(f["bright_sources"]), sigma, False,
             f"{f['bright_sources']} star(s) above {sigma:g} sigma: kept, the median combine removes them")


def _pattern(f: dict) -> np.ndarray | None:
    return np.array(json.loads(f["pattern"])) if f["pattern"] else None


def _flag_blocked(flats: list[dict], level_flagged: set[int], limits: Limits, flag: Flag) -> None:
    """Flats where part of the field gets far less light than it should.

    "Should" is the night's good sky flats of the same filter (the sky lights the
    telescope as science frames see it); without two of those, the flats of the frame's
    own group. A rotated filter casts a shadow no lamp pattern or twilight gradient can.
    """
    by_filter: dict[tuple, list[dict]] = defaultdict(list)
    for f in flats:
        by_filter[(f["night"], f["filter"], f["naxis1"], f["naxis2"])].append(f)
    for members in by_filter.values():
        usable = [f for f in members if f["file_id"] not in level_flagged and f["pattern"]]
        sky = [_pattern(f) for f in usable if f["kind"] == "sky_flat"]
        for f in members:
            pattern = _pattern(f)
            if pattern is None:
                continue
            if len(sky) >= 2:
                reference, against = np.median(sky, axis=0), "the night's sky flats"
            else:
                own = [_pattern(g) for g in usable if g["kind"] == f["kind"]]
                if len(own) < 2:
                    continue
                reference, against = np.median(own, axis=0), "its group"
            ratio = pattern / np.where(reference > 0, reference, np.nan)
            worst = float(np.nanmin(ratio))
            limit = limits[f["instrument"]].flat_blocked_fraction
            if worst < limit:
                flag(f, "blocked_beam", worst, limit, True,
                     f"part of the field gets {worst:.0%} of the light it gets in {against}"
                     f" (limit {limit:.0%}): something in the beam, such as a rotated filter")


def _flag_patterns(members: list[dict], excluded: set[int], limits: Limits, flag: Flag) -> None:
    """Flats whose illumination pattern disagrees with the good flats of their group."""
    good = [f for f in members if f["file_id"] not in excluded and f["pattern"]]
    if not good:
        return
    patterns = {f["file_id"]: np.array(json.loads(f["pattern"])) for f in members if f["pattern"]}
    reference = np.median([patterns[f["file_id"]] for f in good], axis=0)
    for f in members:
        if f["file_id"] in excluded or f["file_id"] not in patterns or len(good) < 2:
            continue
        tol = limits[f["instrument"]].flat_pattern_tolerance
        # Differences in units of the median level: dark corners do not amplify noise.
        deviation = float(np.max(np.abs(patterns[f["file_id"]] - reference)))
        if deviation > tol:
            flag(f, "pattern_mismatch", deviation, tol, True,
                 f"illumination differs from its group's by up to {deviation:.1%} of the median"
                 f" level (tolerance {tol:.1%})")
