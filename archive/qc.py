"""Quality control: measure every frame once, then flag what should not be combined.

The lecture looks at every flat in DS9 and at tables of mean/std/min/max before it chooses:
the 800 x 800 focus frame out, the 3 kADU sky flat out, the 39 kADU dome flat out, the
rotated-filter series out, the R flats with a star kept because the median removes it.
``nota qc`` measures each frame's figures into ``qc`` (once per file content, in parallel
processes) and turns them into ``flags``, each with its figure and the instrument profile's
threshold, so every exclusion says why.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import sqlite_utils
from scipy import ndimage

from nota.archive import provenance
from nota.archive.database import transaction
from nota.errors import FitsError, NotaError
from nota.instruments import Profile, load_profile
from nota.parallel import map_in_processes
from nota.reduce.preview import IMPORTS as PREVIEW_IMPORTS
from nota.reduce.preview import THUMB_SIZE, VIEW_SIZE, cmap_for, preview_png
from nota.reduce.rawdata import map_pixels
from nota.reduce.sections import binned, to_slices
from nota.reduce.statistics import (
    MAD_TO_SIGMA,
    binned_image,
    frame_statistics,
    illumination_pattern,
)

log = logging.getLogger(__name__)

FLAT_KINDS = ("sky_flat", "dome_flat")
PATTERN_GRID = 8
STATISTICS_SAMPLE = 4  # median and robust std from every 4th pixel each way (see frame_statistics)

__all__ = ["QcReport", "run_qc", "flag_frames", "FLAT_KINDS"]


@dataclass
class QcReport:
    activity_id: int
    measured: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    flags: Counter = field(default_factory=Counter)


_TASK_SQL = """
SELECT f.file_id, f.path, f.layout, f.data_hdu, f.content_hash, fr.kind, fr.instrument,
       fr.binning, h.data_offset, h.naxis1, h.naxis2, h.bitpix,
       (SELECT value FROM headers c WHERE c.file_id = f.file_id AND c.hdu = f.data_hdu
          AND c.keyword = 'BZERO') AS bzero,
       (SELECT value FROM headers c WHERE c.file_id = f.file_id AND c.hdu = f.data_hdu
          AND c.keyword = 'BSCALE') AS bscale,
       (SELECT value FROM headers c WHERE c.file_id = f.file_id AND c.hdu IN (0, f.data_hdu)
          AND c.keyword = 'BIASSEC' ORDER BY c.hdu DESC LIMIT 1) AS biassec,
       (SELECT value FROM headers c WHERE c.file_id = f.file_id AND c.hdu IN (0, f.data_hdu)
          AND c.keyword = 'TRIMSEC' ORDER BY c.hdu DESC LIMIT 1) AS trimsec
FROM files f
JOIN frames fr USING (file_id)
JOIN hdus h ON h.file_id = f.file_id AND h.hdu = f.data_hdu
LEFT JOIN qc q ON q.file_id = f.file_id
WHERE q.content_hash IS NOT f.content_hash OR q.file_id IS NULL
ORDER BY f.path
"""


def _sections(task: dict[str, Any], profile: Profile | None) -> tuple[str | None, str | None]:
    """(useful section, overscan section) for a frame, in its own binned pixels."""
    if profile is None:
        return None, None
    xbin, ybin = (int(v) for v in (task["binning"] or "1x1").split("x"))
    useful = task["trimsec"] or binned(profile.detector["trimsec"], xbin, ybin)
    overscan = task["biassec"] or binned(profile.detector["biassec"], xbin, ybin)
    return useful, overscan


def _fits_inside(section: str | None, shape: tuple[int, int]) -> bool:
    if not section:
        return False
    try:
        to_slices(section, shape)
    except NotaError:
        return False
    return True


def count_bright_sources(image: np.ndarray, nsigma: float) -> int:
    """Compact sources well above a smooth background: stars in a sky flat.

    The background is a 15-pixel box mean, the noise the robust spread of what is left.
    Near the vignetted edges a box mean cannot follow the light, so only the well-lit
    field (background over 70 % of its median, 8 pixels in from its edge) is searched.
    A cosmic ray is a few sharp pixels; a star has a wing, so a source counts when it
    peaks above ``nsigma`` and spreads over at least four pixels above 3 sigma.
    """
    small = np.asarray(image, dtype=np.float32)
    background = ndimage.uniform_filter(small, size=15, mode="nearest")
    lit = background > 0.7 * float(np.median(background))
    # Eight pixels in from the edge of the lit field: a box filter does the erosion.
    lit = ndimage.uniform_filter(lit.astype(np.float32), size=17, mode="constant") > 0.999
    if not lit.any():
        return 0
    residual = small - background
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(residual[lit][::7])))
    if sigma <= 0:
        return 0
    labels, n = ndimage.label((residual > 3 * sigma) & lit)
    if n == 0:
        return 0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    seeded = np.unique(labels[residual > nsigma * sigma])
    seeded = seeded[seeded > 0]
    return int(np.count_nonzero(sizes[seeded] >= 4))


def _measure(task: dict[str, Any]) -> dict[str, Any]:
    """Figures of one frame; runs in a worker process, touches no database."""
    profile = load_profile(task["profile"]) if task.get("profile") else None
    saturation = float(profile.detector["saturation"]) if profile else 65535.0
    # Mapped, not read: every pixel is looked at once, in bands, or only in samples.
    image = map_pixels(
        task["path"], task["layout"], task["data_hdu"], task["data_offset"], task["naxis1"],
        task["naxis2"], task["bitpix"], task["bzero"] or 0.0, task["bscale"] or 1.0,
    )
    useful, overscan = _sections(task, profile)
    if not _fits_inside(useful, image.shape):
        useful = f"[1:{image.shape[1]},1:{image.shape[0]}]"  # a window: measure all of it
        overscan = None
    section = image[to_slices(useful)]
    stats = frame_statistics(section, saturation, sample=STATISTICS_SAMPLE)
    bias_level = None
    if _fits_inside(overscan, image.shape):
        bias_level = frame_statistics(image[to_slices(overscan)], saturation).median
    result = {
        "file_id": task["file_id"],
        "content_hash": task["content_hash"],
        "section": useful,
        "n_pixels": stats.n_pixels,
        "mean": stats.mean,
        "median": stats.median,
        "std": stats.std,
        "min": stats.min,
        "max": stats.max,
        "saturated_fraction": stats.saturated_fraction,
        "bias_level": bias_level,
        "signal": stats.median - bias_level if bias_level is not None else None,
        "pattern_json": None,
        "bright_sources": None,
    }
    # Pictures for the catalogue, from every few pixels of the section (384 to 768 a side).
    step = max(1, max(section.shape) // VIEW_SIZE)
    view = np.asarray(section[::step, ::step])
    cmap = cmap_for(task["kind"])
    result["previews"] = {
        "thumb": preview_png(view, max_size=THUMB_SIZE, cmap=cmap),
        "view": preview_png(view, max_size=VIEW_SIZE, cmap=cmap),
    }
    if task["kind"] in FLAT_KINDS:
        # The coarse pattern needs no full resolution: the statistics' sample serves.
        sample = section[::STATISTICS_SAMPLE, ::STATISTICS_SAMPLE]
        pattern = illumination_pattern(sample, PATTERN_GRID)
        result["pattern_json"] = json.dumps([[round(float(v), 5) for v in row] for row in pattern])
    if task["kind"] == "sky_flat":
        # Stars only matter (and only happen) on the sky. Binning to ~500 pixels raises
        # a faint star's contrast and keeps the search cheap.
        nsigma = float(profile.qc.get("flat_star_sigma", 10.0)) if profile else 10.0
        view = binned_image(section, max(1, max(section.shape) // 500))
        result["bright_sources"] = count_bright_sources(view, nsigma)
    return result


def _safe_measure(task: dict[str, Any]) -> dict[str, Any]:
    try:
        return _measure(task)
    except (FitsError, NotaError, OSError, ValueError) as exc:
        return {"file_id": task["file_id"], "error": f"{task['path']}: {exc}"}


def _measure_all(tasks: list[dict[str, Any]], jobs: int | None) -> Iterator[dict[str, Any]]:
    return map_in_processes(
        _safe_measure, tasks, jobs=jobs, parallel_from=8, chunksize=2, preload=PREVIEW_IMPORTS
    )


def run_qc(
    db: sqlite_utils.Database,
    *,
    jobs: int | None = None,
    on_frame: Callable[[int, int], None] | None = None,
) -> QcReport:
    """Measure every frame not yet measured (or changed since), then re-flag the archive."""
    conn = db.conn
    cursor = conn.execute(_TASK_SQL)
    columns = [d[0] for d in cursor.description]
    tasks = [dict(zip(columns, row)) for row in cursor.fetchall()]
    profiles = {p.name: p.key for p in map(load_profile, _profile_keys())}
    for task in tasks:
        task["profile"] = profiles.get(task["instrument"])
    activity_id = provenance.start_activity(conn, "qc", {"frames": len(tasks), "jobs": jobs})
    report = QcReport(activity_id)
    report.skipped = conn.execute("SELECT count(*) FROM qc").fetchone()[0]
    now = provenance.utc_now()
    try:
        rows = []
        for n, result in enumerate(_measure_all(tasks, jobs), 1):
            if "error" in result:
                report.failed.append(result["error"])
            else:
                rows.append(result)
            if on_frame:
                on_frame(n, len(tasks))
        with transaction(db):
            for r in rows:
                pictures = r.pop("previews", {})
                conn.execute("DELETE FROM previews WHERE file_id = ?", (r["file_id"],))
                conn.executemany(
                    "INSERT INTO previews (file_id, size, content_hash, png, made_at) VALUES (?, ?, ?, ?, ?)",
                    [(r["file_id"], size, r["content_hash"], png, now) for size, png in pictures.items()],
                )
                conn.execute(
                    f"INSERT OR REPLACE INTO qc ({', '.join(r)}, measured_at, activity_id)"
                    f" VALUES ({', '.join('?' * len(r))}, ?, ?)",
                    (*r.values(), now, activity_id),
                )
            report.measured = len(rows)
            report.flags = flag_frames(conn, activity_id)
            _plot_nights(conn, now)
            status = "partial" if report.failed else "ok"
            provenance.finish_activity(
                conn, activity_id, status, f"{len(rows)} measured, {len(report.failed)} failed"
            )
    except BaseException:
        provenance.finish_activity(conn, activity_id, "failed", "interrupted")
        raise
    return report


def _plot_nights(conn, now: str) -> None:
    """The night's statistics against time, one plot per night, remade with the figures."""
    from nota.reduce.plots import night_statistics_png

    nights: dict[str, list[dict]] = defaultdict(list)
    for filename, kind, date_obs, median, night in conn.execute(
        "SELECT f.filename, f.kind, f.date_obs, q.median, f.night FROM frames f JOIN qc q USING (file_id)"
        " WHERE f.night IS NOT NULL ORDER BY f.date_obs"
    ):
        nights[night].append({"filename": filename, "kind": kind, "date_obs": date_obs, "median": median})
    conn.execute("DELETE FROM plots WHERE subject = 'night_statistics'")
    for night, rows in nights.items():
        conn.execute(
            "INSERT INTO plots (subject, title, night, png, made_at) VALUES (?, ?, ?, ?, ?)",
            ("night_statistics", f"Median counts through the night of {night}", night,
             night_statistics_png(rows), now),
        )


def _profile_keys() -> Iterable[str]:
    from nota.instruments import available_profiles

    return available_profiles()


# Flags -----------------------------------------------------------------------------------


def _threshold(profiles: dict[str, Profile], instrument: str | None, name: str, default: float) -> float:
    profile = profiles.get(instrument or "")
    return float(profile.qc.get(name, default)) if profile else default


def flag_frames(conn, activity_id: int | None = None) -> Counter:
    """Recompute every QC flag from the stored figures; returns counts by flag."""
    from nota.instruments import available_profiles

    profiles = {p.name: p for p in map(load_profile, available_profiles())}
    conn.execute("DELETE FROM flags WHERE source = 'qc'")
    rows = conn.execute(
        "SELECT fr.file_id, fr.filename, fr.night, fr.instrument, fr.kind, fr.filter, fr.naxis1,"
        " fr.naxis2, fr.binning, q.median, q.std, q.signal, q.saturated_fraction,"
        " q.pattern_json, q.bright_sources FROM frames fr LEFT JOIN qc q USING (file_id)"
    ).fetchall()
    frames = [
        dict(zip(("file_id", "filename", "night", "instrument", "kind", "filter", "naxis1",
                  "naxis2", "binning", "median", "std", "signal", "saturated_fraction",
                  "pattern", "bright_sources"), r))
        for r in rows
    ]
    flags: list[tuple] = []

    def flag(frame, name, figure, threshold, excludes, message):
        flags.append((frame["file_id"], name, figure, threshold, int(excludes), message, activity_id))

    by_night: dict[str | None, list[dict]] = defaultdict(list)
    for f in frames:
        by_night[f["night"]].append(f)
    for night, members in by_night.items():
        _flag_shapes(members, flag)
        _flag_biases([f for f in members if f["kind"] == "bias" and f["median"] is not None], profiles, flag)
    flats = [f for f in frames if f["kind"] in FLAT_KINDS and f["median"] is not None]
    for f in flats:
        _flag_flat_levels(f, profiles, flag)
    level_flagged = {row[0] for row in flags if row[4]}
    _flag_blocked(flats, level_flagged, profiles, flag)
    excluded = {row[0] for row in flags if row[4]}
    flat_groups: dict[tuple, list[dict]] = defaultdict(list)
    for f in flats:
        flat_groups[(f["night"], f["filter"], f["kind"], f["naxis1"], f["naxis2"])].append(f)
    for members in flat_groups.values():
        _flag_patterns(members, excluded, profiles, flag)
    for f in frames:
        limit = _threshold(profiles, f["instrument"], "saturated_fraction_max", 0.001)
        fraction = f["saturated_fraction"]
        if fraction and f["kind"] in ("bias",) + FLAT_KINDS and fraction > limit:
            flag(f, "saturated", fraction, limit, True,
                 f"{fraction:.2%} of the pixels saturated (limit {limit:.2%})")
        elif fraction and fraction > 0:
            flag(f, "saturated_pixels", fraction, 0.0, False,
                 f"{fraction:.4%} of the pixels at saturation: masked, frame kept")
    conn.executemany(
        "INSERT INTO flags (file_id, flag, figure, threshold, excludes, message, activity_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        flags,
    )
    return Counter(row[1] for row in flags)


def _flag_shapes(members: list[dict], flag) -> None:
    shapes = Counter((f["naxis1"], f["naxis2"], f["binning"]) for f in members)
    if not shapes:
        return
    (n1, n2, binning), _ = shapes.most_common(1)[0]
    for f in members:
        if (f["naxis1"], f["naxis2"], f["binning"]) != (n1, n2, binning):
            flag(f, "odd_shape", None, None, True,
                 f"{f['naxis1']} x {f['naxis2']} ({f['binning']}) readout; the night's frames are"
                 f" {n1} x {n2} ({binning}): a window or test frame")


def _flag_biases(biases: list[dict], profiles, flag) -> None:
    if len(biases) < 2:
        return
    level = float(np.median([f["median"] for f in biases]))
    noise = float(np.median([f["std"] for f in biases]))
    for f in biases:
        tol = _threshold(profiles, f["instrument"], "bias_level_tolerance", 20.0)
        factor = _threshold(profiles, f["instrument"], "bias_noise_factor", 1.5)
        if abs(f["median"] - level) > tol:
            flag(f, "bias_level", f["median"], tol, True,
                 f"bias level {f['median']:.1f} ADU, {f['median'] - level:+.1f} from the night's"
                 f" {level:.1f} (tolerance {tol:g})")
        if f["std"] > factor * noise:
            flag(f, "bias_noise", f["std"], factor * noise, True,
                 f"noise {f['std']:.2f} ADU, over {factor:g} x the night's {noise:.2f}")


def _flag_flat_levels(f: dict, profiles, flag) -> None:
    """Too faint on the median; too bright on the best-lit part of the field."""
    signal = f["signal"] if f["signal"] is not None else f["median"]
    bias = f["median"] - signal
    pattern = _pattern(f)
    peak = f["median"] * float(pattern.max()) - bias if pattern is not None else signal
    low = _threshold(profiles, f["instrument"], "flat_min_counts", 15000)
    high = _threshold(profiles, f["instrument"], "flat_max_counts", 36000)
    if signal < low:
        flag(f, "too_faint", signal, low, True,
             f"median {signal:.0f} ADU above bias, under the {low:.0f} ADU floor: too noisy to combine")
    elif peak > high:
        flag(f, "too_bright", peak, high, True,
             f"{peak:.0f} ADU above bias in the best-lit part, over the {high:.0f} ADU ceiling:"
             " risks non-linearity")
    sigma = _threshold(profiles, f["instrument"], "flat_star_sigma", 10.0)
    if f["kind"] == "sky_flat" and f["bright_sources"]:
        flag(f, "star", float(f["bright_sources"]), sigma, False,
             f"{f['bright_sources']} star(s) above {sigma:g} sigma: kept, the median combine removes them")


def _pattern(f: dict) -> np.ndarray | None:
    return np.array(json.loads(f["pattern"])) if f["pattern"] else None


def _flag_blocked(flats: list[dict], level_flagged: set[int], profiles, flag) -> None:
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
            limit = _threshold(profiles, f["instrument"], "flat_blocked_fraction", 0.5)
            if worst < limit:
                flag(f, "blocked_beam", worst, limit, True,
                     f"part of the field gets {worst:.0%} of the light it gets in {against}"
                     f" (limit {limit:.0%}): something in the beam, such as a rotated filter")


def _flag_patterns(members: list[dict], excluded: set[int], profiles, flag) -> None:
    """Flats whose illumination pattern disagrees with the good flats of their group."""
    good = [f for f in members if f["file_id"] not in excluded and f["pattern"]]
    if not good:
        return
    patterns = {f["file_id"]: np.array(json.loads(f["pattern"])) for f in members if f["pattern"]}
    reference = np.median([patterns[f["file_id"]] for f in good], axis=0)
    for f in members:
        if f["file_id"] in excluded or f["file_id"] not in patterns or len(good) < 2:
            continue
        tol = _threshold(profiles, f["instrument"], "flat_pattern_tolerance", 0.03)
        # Differences in units of the median level: dark corners do not amplify noise.
        deviation = float(np.max(np.abs(patterns[f["file_id"]] - reference)))
        if deviation > tol:
            flag(f, "pattern_mismatch", deviation, tol, True,
                 f"illumination differs from its group's by up to {deviation:.1%} of the median"
                 f" level (tolerance {tol:.1%})")
