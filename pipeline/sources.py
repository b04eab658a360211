"""Source catalogues of reduced frames and stacks, in calibrated magnitudes (``nota photometry``).

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

from astropy.wcs import WCS

from nota.archive import provenance
from nota.archive.calibrations import solution_for
from nota.archive.database import Archive
from nota.archive.frames import frame_facts
from nota.archive.products import find_product
from nota.archive.sources import replace_sources
from nota.pipeline.product_files import read_product
from nota.reduce.aperture import measure_stars
from nota.reduce.astrometry import extract_sources
from nota.reduce.zeropoint import ZeroPointFit
from nota.instruments import profile_if_any
from nota.standards import find_filter

__all__ = ["PhotometryReport", "measure_frame", "line_flux_per_count"]

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


def measure_frame(archive: Archive, frame: str, *, nsigma: float = 5.0, limit: int = 300) -> PhotometryReport:
    """Measure the sources of a frame's current reduced product (or of a stack) and store them."""
    product = find_product(archive, frame, kinds=("reduced", "stack"))
    facts = frame_facts(archive, [product["file_id"]]).get(product["file_id"], {}) if product["file_id"] else {}
    name = product["raw_name"] or Path(product["path"]).name
    ccd = read_product(product["path"])
    solved = ccd.header.get("NOTAWCS") == "solved"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ALFOSC's RADECSYS and OBSGEO cards: astropy fixes them, noisily
        wcs = WCS(ccd.header) if solved else None
    calibration = solution_for(archive, product["night"], product["filter"])
    fit = _fit_from_row(calibration) if calibration else None
    fwhm_guess = float(ccd.header.get("NOTAFWHM", 0) or 0) or 2.0
    found = extract_sources(ccd.data, fwhm_guess, mask=ccd.mask, nsigma=nsigma, limit=limit)
    measured = measure_stars(ccd, list(zip(found.x, found.y)))
    x_airmass = float(product["airmass"] or facts.get("airmass") or ccd.header.get("AIRMASS") or 1.0)
    profile = profile_if_any(facts.get("instrument"))  # None for a stack: the filter is looked up alone
    per_count = _line_flux_per_count(fit, product["filter"], x_airmass, profile)
    activity_id = provenance.start_activity(archive, "photometry", {"frame": name, "nsigma": nsigma, "limit": limit})
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
        rows.append((product["id"], product["file_id"], m.x, m.y, ra, dec, m.flux, m.flux_err, m.mag, mag, mag_err,
                     "AB" if fit else None, line, ",".join(m.flags) or None,
                     calibration["calibration_id"] if calibration else None, activity_id))
    with archive.transaction():
        replace_sources(archive, product["id"], rows)
        provenance.record_used(archive, activity_id, product["kind"], product_id=product["id"],
                               content_hash=product["content_hash"])
        provenance.finish_activity(archive, activity_id, "ok", json.dumps({"sources": len(rows)}))
    return PhotometryReport(product["id"], name, len(rows), fit is not None, solved)


def _line_flux_per_count(fit: ZeroPointFit | None, filt: str | None, airmass: float, profile) -> float | None:
    """For a narrow band (a top-hat of its tabulated centre and width): erg/s/cm2 per ADU/s."""
    try:
        described = find_filter(filt, profile) if filt else None
    except KeyError:  # a filter the profile's table lacks: magnitudes, but no line flux
        described = None
    if fit is None or described is None or not described.fwhm_nm or described.fwhm_nm >= NARROW_NM:
        return None
    return line_flux_per_count(fit.zp, fit.k, airmass, described.centre_nm * 10, described.fwhm_nm * 10)
