"""Astrometric calibration with astrometry.net, offline.

nota extracts the stars itself, hands their positions to ``solve-field`` with the pixel
scale and pointing from the header (so the solver only searches a small patch of sky),
and reads back a TAN (+SIP) WCS. Index files come from a configured directory: the
standard 4100/5200 series for real data, or ones ``build_index`` makes from any
reference catalogue (the simulator writes one for each of its fields).
"""

from __future__ import annotations

import logging
import re
import shutil
import warnings
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from astropy.table import Table
from astropy.wcs import WCS

from nota.errors import NotaError

log = logging.getLogger(__name__)

__all__ = ["Sources", "AstrometryResult", "extract_sources", "magnitude_column", "build_index", "solve", "refine",
           "match_residuals"]


@dataclass(frozen=True)
class Sources:
    """Star positions (0-based pixels) and fluxes, brightest first."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray


@dataclass(frozen=True)
class AstrometryResult:
    wcs: WCS | None
    matched: int
    rms_arcsec: float | None
    message: str


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise NotaError(f"{name} not found: install astrometry.net (Debian package astrometry.net)")
    return path


def extract_sources(data: np.ndarray, fwhm: float, mask: np.ndarray | None = None,
                    nsigma: float = 8.0, limit: int = 80, error: np.ndarray | None = None) -> Sources:
    """The brightest point sources of an image, for the solver and for matching.

    With ``error`` (the frame's noise per pixel) stars are found on the signal-to-noise
    image: a flat-fielded frame's vignetted corners are noisier than its centre, and one
    threshold for the whole frame finds their noise peaks before a short exposure's stars.
    """
    from photutils.centroids import centroid_2dg, centroid_sources
    from photutils.detection import DAOStarFinder

    values = np.asarray(data, dtype=np.float32)
    _, median, std = sigma_clipped_stats(values, mask=mask, sigma=3.0, maxiters=3)
    detect, threshold = values - median, nsigma * std
    if error is not None:
        noise = np.asarray(error, dtype=np.float32)
        bad = ~np.isfinite(noise) | (noise <= 0) | ~np.isfinite(values)
        mask = bad if mask is None else (np.asarray(mask, bool) | bad)
        detect = np.where(mask, 0.0, detect / np.where(bad, 1.0, noise)).astype(np.float32)
        threshold = nsigma
    finder = DAOStarFinder(fwhm=max(fwhm, 1.0), threshold=threshold, exclude_border=True)
    table = finder(detect, mask=mask)
    if table is None or len(table) == 0:
        return Sources(np.array([]), np.array([]), np.array([]))
    table.sort("flux", reverse=True)
    table = table[:limit]
    x = "x_centroid" if "x_centroid" in table.colnames else "xcentroid"
    y = "y_centroid" if "y_centroid" in table.colnames else "ycentroid"
    rows, cols = values.shape
    # The finder's centroid of a source on a masked edge can fall outside the image (or be
    # NaN), which centroid_sources refuses: such a source is no star to solve on.
    found_x, found_y = np.asarray(table[x], float), np.asarray(table[y], float)
    table = table[np.isfinite(found_x) & np.isfinite(found_y) & (found_x >= 0) & (found_y >= 0)
                  & (found_x <= cols - 1) & (found_y <= rows - 1)]
    if len(table) == 0:
        return Sources(np.array([]), np.array([]), np.array([]))
    # The finder's marginal centroids are biased toward pixel centres for a sharp PSF; a
    # 2-D Gaussian fit to each star is not, and astrometry is only as good as centroids.
    box = max(5, int(2 * round(fwhm) + 1) | 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a faint star's fit may not converge; it is dropped below
        xs, ys = centroid_sources(values - median, np.asarray(table[x]), np.asarray(table[y]),
                                  box_size=box, centroid_func=centroid_2dg, mask=mask)
    # A fit that wandered off its star (or off the image) is no centroid.
    moved = np.hypot(xs - np.asarray(table[x]), ys - np.asarray(table[y]))
    good = (np.isfinite(xs) & np.isfinite(ys) & (moved < box / 2)
            & (xs >= 0) & (ys >= 0) & (xs <= cols - 1) & (ys <= rows - 1))
    return Sources(xs[good], ys[good], np.asarray(table["flux"])[good])


_BANDS = {"U", "B", "V", "R", "I", "J", "H", "K", "Ks", "G", "BP", "RP", "u", "g", "r", "i", "z", "y"}


def _is_magnitude(name: str) -> bool:
    """mag, R, V, Gmag, phot_g_mean_mag, rmag, NII_658 ...: what a catalogue's magnitude may be
    called; errors and flags of one are not."""
    low = name.lower()
    if low.startswith(("e_", "err", "sig", "flag")) or low.endswith(("err", "error", "flag", "_e")):
        return False
    return "mag" in low or name in _BANDS or re.fullmatch(r"[A-Za-z]*_?\d{3,4}(_\d+)?", name) is not None


def magnitude_column(table: Table, catalogue: Path, chosen: str | None = None) -> str:
    """The column that orders the stars: the one asked for, else the catalogue's only
    magnitude (``R`` among several, nota's old default); else an error naming them."""
    names = table.colnames
    if chosen:
        if chosen not in names:
            raise NotaError(f"{catalogue}: no column {chosen!r} (columns: {', '.join(names)})")
        return chosen
    found = [n for n in names if table[n].dtype.kind in "fiu" and _is_magnitude(n)]
    if len(found) == 1:
        return found[0]
    if "R" in found:
        return "R"
    if not found:
        raise NotaError(f"{catalogue}: no magnitude column among its columns {', '.join(names)}:"
                        " name one with --mag-column")
    raise NotaError(f"{catalogue}: {len(found)} magnitude columns ({', '.join(found)}):"
                    " choose one with --mag-column")


def build_index(catalogue: Path, out_dir: Path, *, index_id: int = 9000,
                scales: tuple[int, ...] = (0, 1, 2), mag_column: str | None = None) -> list[Path]:
    """astrometry.net index files from a catalogue (CSV or FITS with ra, dec and a magnitude).

    The magnitude is ``mag_column``, else the catalogue's only magnitude-like column.
    Scale numbers follow astrometry.net (0: quads of 2-2.8 arcmin, 1: 2.8-4, 2: 4-5.6 ...):
    ALFOSC's 6.4 arcmin field is solved by quads of a few arcminutes.
    """
    tool = _tool("build-astrometry-index")
    out_dir.mkdir(parents=True, exist_ok=True)
    table = Table.read(catalogue, format="ascii.csv" if catalogue.suffix == ".csv" else None)
    for column in ("ra", "dec"):
        if column not in table.colnames:
            raise NotaError(f"{catalogue}: no column {column!r} (need ra, dec and a magnitude;"
                            f" columns: {', '.join(table.colnames)})")
    mag_column = magnitude_column(table, catalogue, mag_column)
    fits_catalogue = out_dir / f"{catalogue.stem}.cat.fits"
    Table({"RA": np.asarray(table["ra"], float), "DEC": np.asarray(table["dec"], float),
           "MAG": np.asarray(table[mag_column], float)}).write(fits_catalogue, overwrite=True)
    made = []
    for scale in scales:
        out = out_dir / f"index-{index_id + scale}.fits"
        command = [tool, "-i", str(fits_catalogue), "-o", str(out), "-P", str(scale),
                   "-S", "MAG", "-E", "-I", str(index_id + scale), "-r", "1"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise NotaError(f"build-astrometry-index failed for {catalogue.name}: {done.stderr.strip()[-300:]}")
        made.append(out)
    return made


def solve(sources: Sources, shape: tuple[int, int], *, index_dir: Path, ra: float, dec: float,
          scale: float, radius_deg: float = 0.5, sip_order: int = 0, timeout: float = 60.0,
          odds_to_solve: float = 1e9) -> WCS | None:
    """The WCS of an image from its star positions, or None when it does not solve.

    ``ra``/``dec`` (degrees) and ``scale`` (arcsec/pixel) come from the header and the
    profile; the solver tries scales within 10 % and centres within ``radius_deg``.
    ``odds_to_solve`` is astrometry.net's verification threshold: a field of five or six
    stars cannot reach its default, so a lower one is only for answers checked after.
    """
    tool = _tool("solve-field")
    if len(sources.x) < 5:
        return None
    rows, cols = shape
    with tempfile.TemporaryDirectory(prefix="nota-solve-") as tmp:
        work = Path(tmp)
        xy = work / "stars.xy.fits"
        # astrometry.net counts pixels from 1.
        Table({"X": sources.x + 1.0, "Y": sources.y + 1.0, "FLUX": sources.flux}).write(xy)
        config = work / "astrometry.cfg"
        config.write_text(f"add_path {index_dir}\nautoindex\ninparallel\n")
        command = [
            tool, str(xy), "--config", str(config), "--dir", str(work), "--no-plots", "--overwrite",
            "--no-remove-lines", "--uniformize", "0",
            "--width", str(cols), "--height", str(rows),
            "--x-column", "X", "--y-column", "Y", "--sort-column", "FLUX",
            "--scale-units", "arcsecperpix", "--scale-low", str(scale * 0.9), "--scale-high", str(scale * 1.1),
            "--ra", str(ra), "--dec", str(dec), "--radius", str(radius_deg),
            "--odds-to-solve", f"{odds_to_solve:g}",
            "--cpulimit", str(int(timeout)), "--new-fits", "none", "--corr", "none", "--rdls", "none",
            "--match", "none", "--index-xyls", "none", "--solved", "none",
        ]
        if sip_order >= 2:
            command += ["--tweak-order", str(sip_order)]
        else:
            command += ["--no-tweak"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            log.warning("solve-field timed out")
            return None
        solution = work / "stars.xy.wcs"
        if done.returncode != 0 or not solution.exists():
            log.info("no astrometric solution: %s", done.stdout.strip()[-300:])
            return None
        header = fits.getheader(solution)
    # The .wcs file is a header without an image (NAXIS 0): say the WCS is for a 2-d one.
    header["NAXIS"] = 2
    return WCS(header)


def refine(wcs: WCS, sources: Sources, ra: np.ndarray, dec: np.ndarray, *, sip_degree: int | None = None,
           radius_arcsec: float = 2.0, iterations: int = 3) -> WCS:
    """Refit the solver's WCS to every matched star (least squares, TAN or TAN-SIP).

    The solver's answer rests on a few quads; all the matched stars pin the scale,
    rotation and centre down to the precision of the centroids.
    """
    from astropy.coordinates import SkyCoord
    from astropy.wcs.utils import fit_wcs_from_points
    import astropy.units as u

    reference = SkyCoord(ra * u.deg, dec * u.deg)
    for _ in range(iterations):
        sky = wcs.pixel_to_world(sources.x, sources.y)
        index, separation, _ = sky.match_to_catalog_sky(reference)
        good = separation.arcsec < radius_arcsec
        if good.sum() < 6:
            break
        wcs = fit_wcs_from_points(
            (sources.x[good], sources.y[good]), reference[index[good]], projection="TAN",
            sip_degree=sip_degree,
        )
        radius_arcsec = max(0.5, 5 * float(np.sqrt(np.mean(separation.arcsec[good] ** 2))))
    return wcs


def match_residuals(wcs: WCS, sources: Sources, ra: np.ndarray, dec: np.ndarray,
                    radius_arcsec: float = 1.0) -> tuple[int, float | None]:
    """(matched stars, rms of their offsets in arcsec) between sources and a catalogue.

    Offsets beyond 3 sigma (a cosmic ray or a galaxy knot next to a star) are left out.
    """
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    if len(sources.x) == 0:
        return 0, None
    sky = wcs.pixel_to_world(sources.x, sources.y)
    reference = SkyCoord(ra * u.deg, dec * u.deg)
    index, separation, _ = sky.match_to_catalog_sky(reference)
    offsets = separation.arcsec[separation.arcsec < radius_arcsec]
    if offsets.size == 0:
        return 0, None
    from astropy.stats import sigma_clip

    kept = offsets[~sigma_clip(offsets, sigma=3.0, maxiters=5).mask]
    return int(kept.size), float(np.sqrt(np.mean(kept**2)))

