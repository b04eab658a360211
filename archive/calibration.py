"""The photometric calibration of each night: zero point, extinction and colour term per filter.

The lecture's last step ("constantes instrumentales y coeficientes de extinción para cada
noche"): the standard stars' reduced frames are measured, their catalogue magnitudes and
colours come from synthetic photometry of their CALSPEC spectra (AB), and
``m_catalogue - m_instrumental = ZP - k X + c C`` is fitted per night and filter, C in the
colour index the instrument profile names for the filter. Like every reduction step it is
recorded as an activity that used the standards' products, and it reruns only when those
products, the profile's photometry settings or this code change.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils
from nota.archive import provenance
from nota.archive.database import ReadOnlyArchive, transaction
from nota.archive.products import read_product
from nota.errors import CalibrationError, NotaError, PhotometryError, ProfileError
from nota.instruments import load_profile
from nota.passbands import passband_for_filter
from nota.reduce.photometry import find_standard, measure_star
from nota.reduce.zeropoint import (
    FitOptions,
    StandardObservation,
    extinction_from_curve,
    fit_zero_point,
    plot_fit_png,
)
from nota.standards import catalogue_colour, catalogue_magnitudes, resolve_filter, standard_for_object

log = logging.getLogger(__name__)

CALIBRATION_VERSION = 2  # bump when measuring or fitting changes: calibrations are redone

__all__ = ["CalibrationReport", "ColourSettings", "calibrate_nights", "colour_settings", "list_calibrations",
           "CALIBRATION_VERSION"]


@dataclass
class CalibrationReport:
    made: list[dict[str, Any]] = field(default_factory=list)
    up_to_date: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (night/filter, why)


_STANDARDS_SQL = """
SELECT p.product_id, p.path, p.content_hash, p.night, p.filter, p.entity_id, o.object,
       COALESCE(p.airmass, o.airmass) AS airmass,
       f.name
FROM products p JOIN observations o ON o.file_id = p.file_id JOIN files f ON f.file_id = p.file_id
WHERE p.kind = 'reduced' AND p.current = 1 AND o.kind = 'standard'
ORDER BY p.night, p.filter, f.name
"""


@dataclass(frozen=True)
class ColourSettings:
    """The profile's ``[photometry]`` for one filter: which colour, and when c is fitted."""

    colour_index: str | None                     # e.g. 'B-V'; None: no colour term
    colour_term: tuple[float, float] | None      # (c, error) given by the user: not fitted
    options: FitOptions


def colour_settings(filt: str, profile_key: str = "alfosc") -> ColourSettings:
    """What the instrument profile says about a filter's colour term (by short name)."""
    photometry = load_profile(profile_key).photometry
    given = photometry.get("fixed_colour_term", {}).get(filt)
    minimums = {k: photometry[k] for k in ("min_colour_stars", "min_colour_range") if k in photometry}
    try:
        colour_term = None if given is None else (float(given[0]), float(given[1]))
    except (TypeError, ValueError, IndexError):
        raise ProfileError(f"instrument profile {profile_key}.toml: [photometry] fixed_colour_term"
                           f" for {filt} is {given!r}, not [c, its error]") from None
    return ColourSettings(colour_index=photometry.get("colour_index", {}).get(filt),
                          colour_term=colour_term, options=FitOptions(**minimums))


def _key(rows: list[tuple], settings: ColourSettings) -> str:
    text = json.dumps({"version": CALIBRATION_VERSION, "inputs": sorted(r[2] for r in rows),
                       "settings": asdict(settings)})
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _observe(row: tuple, colour_index: str | None) -> tuple[StandardObservation | None, str | None]:
    """One standard frame measured and looked up (magnitude and colour), or why it could not be."""
    product_id, path, _, night, filt, _, obj, airmass, name = row
    star = standard_for_object(obj)
    if star is None:
        return None, f"{name}: OBJECT {obj!r} names no known standard"
    try:
        ccd = read_product(path)
        measured = measure_star(ccd, *find_standard(ccd))
        magnitude, _system = catalogue_magnitudes(star, filt)
        colour = catalogue_colour(star, colour_index) if colour_index else None
    except (PhotometryError, NotaError, OSError, ValueError, KeyError) as exc:
        return None, f"{name}: {exc}"
    if not measured.usable:
        return None, f"{name}: {star} not measurable ({', '.join(measured.flags) or 'unusable'})"
    return StandardObservation(name, star, float(airmass), measured.mag, measured.mag_err, magnitude,
                               colour=colour), None


def calibrate_nights(db: sqlite_utils.Database, only: set[tuple[str, str]] | None = None) -> CalibrationReport:
    """Fit every night and filter whose standards changed since its last calibration
    (only these (night, filter) pairs, when given: the reduction calibrates each as soon
    as its standards are done)."""
    conn = db.conn
    report = CalibrationReport()
    groups: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for row in conn.execute(_STANDARDS_SQL):
        if row[3] and row[4]:
            groups[(row[3], row[4])].append(row)
    current = {
        (r[0], r[1]): r[2]
        for r in conn.execute("SELECT night, filter, recipe_key FROM calibrations WHERE current = 1")
    }
    for (night, filt), rows in sorted(groups.items()):
        if only is not None and (night, filt) not in only:
            continue
        settings = colour_settings(filt)
        key = _key(rows, settings)
        if current.get((night, filt)) == key:
            report.up_to_date += 1
            continue
        observations, notes = [], {}
        for row in rows:
            observation, why = _observe(row, settings.colour_index)
            if observation is None:
                notes[row[8]] = why
                log.warning("%s", why)
            else:
                observations.append((row, observation))
        params = {"night": night, "filter": filt, "version": CALIBRATION_VERSION, "standards": len(rows),
                  "colour_index": settings.colour_index, "colour_term_given": settings.colour_term}
        activity_id = provenance.start_activity(conn, "photometric_calibration", params)
        try:
            fallback_k = extinction_from_curve(passband_for_filter(resolve_filter(filt)))
            fit = fit_zero_point([o for _, o in observations], filter_name=filt, fallback_k=fallback_k,
                                 colour_index=settings.colour_index, colour_term=settings.colour_term,
                                 options=settings.options)
            plot = plot_fit_png(fit, [o for _, o in observations])
        except (CalibrationError, NotaError, ValueError, KeyError) as exc:  # KeyError: a filter the table lacks
            with conn:
                provenance.finish_activity(conn, activity_id, "failed", str(exc))
            report.failed.append((f"{night}/{filt}", str(exc)))
            continue
        _record(db, night, filt, key, fit, observations, notes, rows, plot, activity_id)
        report.made.append({"night": night, "filter": filt, "zp": fit.zp, "k": fit.k,
                            "colour_term": fit.colour_term, "method": fit.method})
    return report


def _record(db, night, filt, key, fit, observations, notes, rows, plot, activity_id) -> None:
    now = provenance.utc_now()
    subject = "Zero point, extinction and colour term" if fit.colour_fitted else "Zero point and extinction"
    with transaction(db) as conn:
        conn.execute("UPDATE calibrations SET current = 0 WHERE night = ? AND filter = ?", (night, filt))
        calibration_id = conn.execute(
            "INSERT INTO calibrations (night, filter, magnitude_system, zp, zp_err, k, k_err, cov_zp_k,"
            " colour_term, colour_term_err, colour_index, rms, n_used, n_rejected, airmass_min, airmass_max,"
            " method, recipe_key, activity_id, current, created_at)"
            " VALUES (?, ?, 'AB', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
            (night, filt, fit.zp, fit.zp_err, fit.k, fit.k_err, fit.cov_zp_k, fit.colour_term,
             fit.colour_term_err, fit.colour_index, fit.rms, fit.n_used, fit.n_rejected,
             fit.airmass_range[0], fit.airmass_range[1], fit.method, key, activity_id, now),
        ).lastrowid
        used = set(fit.used)
        for row, o in observations:
            conn.execute(
                "INSERT INTO standard_measurements (calibration_id, product_id, star, airmass, m_instrumental,"
                " m_instrumental_err, m_catalogue, used, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (calibration_id, row[0], o.star, o.airmass, o.m_instrumental, o.m_instrumental_err,
                 o.m_catalogue, int(o.label in used), None if o.label in used else "rejected as an outlier"),
            )
        for row in rows:
            if row[8] in notes:
                conn.execute(
                    "INSERT INTO standard_measurements (calibration_id, product_id, used, note) VALUES (?, ?, 0, ?)",
                    (calibration_id, row[0], notes[row[8]]),
                )
            if row[5] is not None:
                provenance.record_used(conn, activity_id, row[5], "standard")
        conn.execute(
            "INSERT INTO plots (subject, title, night, calibration_id, png, made_at) VALUES (?, ?, ?, ?, ?, ?)",
            ("photometric_calibration", f"{subject}, {filt}, night of {night} (AB)",
             night, calibration_id, plot, now),
        )
        provenance.finish_activity(conn, activity_id, "ok", fit.method)


def list_calibrations(db_path: str | Path, night: str | None = None) -> list[dict[str, Any]]:
    """Each night's current solution per filter (colour term null when not fitted, the method
    says why), with the standards used, for scripts."""
    with ReadOnlyArchive(db_path) as archive:
        found = archive.dicts(
            "SELECT calibration_id AS id, night, filter, magnitude_system, zp, zp_err, k, k_err, colour_term,"
            " colour_term_err, colour_index, rms, n_used, n_rejected, airmass_min, airmass_max, method"
            " FROM calibrations"
            " WHERE current = 1 AND (:night IS NULL OR night = :night) ORDER BY night, filter",
            {"night": night},
        )
        for c in found:
            _, used = archive.run(
                "SELECT s.star, f.name FROM standard_measurements s JOIN products p USING (product_id)"
                " JOIN files f ON f.file_id = p.file_id WHERE s.calibration_id = ? AND s.used = 1 ORDER BY f.name",
                (c["id"],),
            )
            c["stars_used"] = [{"star": star, "frame": frame} for star, frame in used]
    return found
