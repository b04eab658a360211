"""Source catalogues of reduced frames, in calibrated magnitudes (``nota photometry``).

Stars are found and measured on a flat-fielded product with one aperture for the frame;
their instrumental magnitudes become calibrated ones with the night's solution for the
filter (``m = m_instrumental + ZP - k X``, AB); positions come from the product's solved
WCS. For narrow-band filters (top-hat passbands) the flux in erg/s/cm2 is stored too.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from astropy.wcs import WCS

from nota.archive import provenance
from nota.archive.database import ReadOnlyArchive, transaction
from nota.archive.products import read_product
from nota.errors import NotaError
from nota.reduce.astrometry import extract_sources
from nota.reduce.photometry import measure_stars
from nota.reduce.zeropoint import ZeroPointFit
from nota.standards import resolve_filter

__all__ = ["PhotometryReport", "measure_frame", "list_sources", "line_flux_per_count"]

SPEED_OF_LIGHT_A = 2.99792458e18  # Angstrom / s
NARROW_NM = 20.0  # filters narrower than this get a line flux (erg/s/cm2) per source


@dataclass
class PhotometryReport:
    product_id: int
    filename: str
    sources: int
    calibrated: bool
    solved: bool


def line_flux_per_count(zp: float, k: float, airmass: float, centre_a: float, width_a: float) -> float:
    """erg/s/cm2 in a top-hat passband per ADU/s, from an AB zero point at ``airmass``.

    One ADU/s is AB magnitude ZP - kX, i.e. f_nu = 10**(-0.4 (ZP - kX + 48.6)) erg/s/cm2/Hz;
    f_lambda = f_nu c / lambda^2, times the passband width.
    """
    f_nu = 10 ** (-0.4 * (zp - k * airmass + 48.6))
    return f_nu * SPEED_OF_LIGHT_A / centre_a**2 * width_a


def _fit_from_row(row: dict[str, Any]) -> ZeroPointFit:
    return ZeroPointFit(row["filter"], row["zp"], row["zp_err"], row["k"], row["k_err"], row["cov_zp_k"] or 0.0,
                        row["rms"] or 0.0, 1.0, row["n_used"] or 0, row["n_rejected"] or 0, (), (),
                        (row["airmass_min"] or 0.0, row["airmass_max"] or 0.0), row["method"])


def measure_frame(db: sqlite_utils.Database, frame: str, *, nsigma: float = 5.0, limit: int = 300) -> PhotometryReport:
    """Measure the sources of a frame's current reduced product (or of a stack) and store them."""
    conn = db.conn
    row = conn.execute(
        "SELECT p.product_id, p.path, p.night, p.filter, p.entity_id, f.file_id, COALESCE(f.name, p.path),"
        " COALESCE(p.airmass, o.airmass), p.kind FROM products p LEFT JOIN files f ON f.file_id = p.file_id"
        " LEFT JOIN observations o ON o.file_id = f.file_id"
        " WHERE p.current = 1 AND p.kind IN ('reduced', 'stack')"
        " AND (f.name = ? OR p.path = ? OR p.path LIKE '%/' || ?)",
        (frame, frame, frame),
    ).fetchone()
    if row is None:
        raise NotaError(f"no reduced frame or stack named {frame!r}: run `nota reduce` first")
    product_id, path, night, filt, entity_id, file_id, name, airmass, kind = row
    name = Path(name).name
    ccd = read_product(path)
    solved = ccd.header.get("NOTAWCS") == "solved"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ALFOSC's RADECSYS and OBSGEO cards: astropy fixes them, noisily
        wcs = WCS(ccd.header) if solved else None
    cursor = conn.execute("SELECT * FROM calibrations WHERE current = 1 AND night = ? AND filter = ?", (night, filt))
    columns = [d[0] for d in cursor.description]
    calibration = cursor.fetchone()
    fit = _fit_from_row(dict(zip(columns, calibration))) if calibration else None
    fwhm_guess = float(ccd.header.get("NOTAFWHM", 0) or 0) or 2.0
    found = extract_sources(ccd.data, fwhm_guess, mask=ccd.mask, nsigma=nsigma, limit=limit)
    measured = measure_stars(ccd, list(zip(found.x, found.y)))
    x_airmass = float(airmass or ccd.header.get("AIRMASS") or 1.0)
    per_count = None
    try:
        described = resolve_filter(filt) if filt else None
    except KeyError:  # a filter the profile's table lacks: magnitudes, but no line flux
        described = None
    if fit is not None and described is not None and described.fwhm_nm and described.fwhm_nm < NARROW_NM:
        # A narrow band is a top-hat of its tabulated centre and width (as its passband is).
        per_count = line_flux_per_count(fit.zp, fit.k, x_airmass, described.centre_nm * 10, described.fwhm_nm * 10)
    params = {"frame": name, "nsigma": nsigma, "limit": limit}
    activity_id = provenance.start_activity(conn, "photometry", params)
    rows = []
    for m in measured:
        if not math.isfinite(m.flux):
            continue
        ra = dec = None
        if wcs is not None:
            sky = wcs.pixel_to_world(m.x, m.y)
            ra, dec = float(sky.ra.deg), float(sky.dec.deg)
        mag = mag_err = None
        if fit is not None and math.isfinite(m.mag):
            mag = fit.magnitude(m.mag, x_airmass)
            mag_err = math.hypot(m.mag_err, fit.magnitude_error(x_airmass))
        line = m.flux / m.exptime * per_count if per_count and m.exptime else None
        rows.append((product_id, file_id, m.x, m.y, ra, dec, m.flux, m.flux_err, m.mag, mag, mag_err,
                     "AB" if fit else None, line, ",".join(m.flags) or None,
                     calibration[0] if calibration else None, activity_id))
    with transaction(db):
        conn.execute("DELETE FROM sources WHERE product_id = ?", (product_id,))
        conn.executemany(
            "INSERT INTO sources (product_id, file_id, x, y, ra, dec, flux, flux_err, mag_instrumental, mag,"
            " mag_err, magnitude_system, line_flux, flags, calibration_id, activity_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if entity_id is not None:
            provenance.record_used(conn, activity_id, entity_id, kind)
        provenance.finish_activity(conn, activity_id, "ok", json.dumps({"sources": len(rows)}))
    return PhotometryReport(product_id, name, len(rows), fit is not None, solved)


def list_sources(db_path: str | Path, frame: str) -> list[dict[str, Any]]:
    with ReadOnlyArchive(db_path) as archive:
        return archive.dicts(
            "SELECT s.source_id, s.x, s.y, s.ra, s.dec, s.flux, s.flux_err, s.mag_instrumental, s.mag, s.mag_err,"
            " s.magnitude_system, s.line_flux, s.flags FROM sources s JOIN products p USING (product_id)"
            " LEFT JOIN files f ON f.file_id = p.file_id WHERE p.current = 1"
            " AND (f.name = :frame OR p.path = :frame OR p.path LIKE '%/' || :frame)"
            " ORDER BY s.mag_instrumental", {"frame": frame},
        )
