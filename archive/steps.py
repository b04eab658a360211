"""Making one product: what a worker does, wherever it runs. No database here.

A task (from ``nota.archive.reduction``'s plan) names its inputs by path and content
hash; the functions here read them, call the pixel steps of ``nota.reduce``, and write
the product atomically (temporary name, then rename). They return what the coordinator
records: the product's hash and size, its previews and plots, and per-step figures.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

import nota
from nota.archive import provenance
from nota.archive.ingest import content_hash
from nota.archive.products import read_product
from nota.errors import NotaError
from nota.reduce.calibrate import (
    flat_correct,
    mask_saturated,
    subtract_bias,
    subtract_overscan,
    to_ccd,
    trim,
    with_deviation,
)
from nota.reduce.combine import FrameStack, median_combine
from nota.reduce.cosmics import CosmicsParameters, remove_cosmics
from nota.reduce.plots import bias_histograms_png, image_png
from nota.reduce.preview import THUMB_SIZE, VIEW_SIZE, cmap_for, preview_png
from nota.reduce.rawdata import read_pixels
from nota.reduce.sections import to_slices

__all__ = ["RawInput", "Task", "STEP_VERSIONS", "TMP_PREFIX", "execute_task", "write_product"]

# Bump a step's version when its algorithm changes: its products become stale.
STEP_VERSIONS = {"master_bias": 1, "master_flat": 1, "reduced": 2, "stack": 1}
TMP_PREFIX = ".nota-tmp-"


@dataclass(frozen=True)
class RawInput:
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
class Task:
    """One product to make."""

    kind: str  # master_bias, master_flat, reduced
    key: str
    output: str
    night: str | None
    filter: str | None
    params: dict[str, Any]
    inputs: tuple[RawInput, ...]
    group_id: int | None = None
    file_id: int | None = None
    needs: dict[str, str] = field(default_factory=dict)  # role -> recipe key of a master
    failure: str | None = None  # set when the plan already knows it cannot be made


def _read_raw(raw: RawInput) -> np.ndarray:
    return read_pixels(raw.path, raw.layout, raw.data_hdu, raw.data_offset, raw.naxis1, raw.naxis2,
                       raw.bitpix, raw.bzero, raw.bscale)


def _raw_header(raw: RawInput) -> fits.Header:
    """The frame's header as ALFOSC wrote it (image HDU's cards over the primary's)."""
    with fits.open(raw.path, memmap=False, lazy_load_hdus=True) as hdul:
        header = hdul[0].header.copy()
        if raw.data_hdu:
            for card in hdul[raw.data_hdu].header.cards:
                if card.keyword not in ("XTENSION", "PCOUNT", "GCOUNT", "EXTNAME", "INHERIT", ""):
                    header[card.keyword] = (card.value, card.comment)
    for keyword in ("BZERO", "BSCALE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND"):
        header.remove(keyword, ignore_missing=True, remove_all=True)
    return header


def _prepare(raw: RawInput, params: dict[str, Any]) -> tuple[CCDData, np.ndarray]:
    """Raw pixels -> (overscan-subtracted,) trimmed CCDData; also the trimmed raw values."""
    pixels = _read_raw(raw)
    ccd = to_ccd(pixels)
    if params.get("overscan"):
        ccd = subtract_overscan(ccd, params["biassec"], params.get("overscan_model", "median"))
    return trim(ccd, params["trimsec"]), pixels[to_slices(params["trimsec"])]


def _stamp(header: fits.Header, task: Task, history: list[str], masters: dict[str, Any]) -> fits.Header:
    header = header.copy()
    header["FILENAME"] = os.path.basename(task.output)
    header["BUNIT"] = "adu"
    header["NOTAVER"] = (nota.__version__, "nota version that made this product")
    header["NOTAKEY"] = (task.key, "nota product id")
    header["NOTASTEP"] = (task.kind, "nota step that made this product")
    if "master_bias" in masters:
        header["NOTABIAS"] = (os.path.basename(masters["master_bias"]), "master bias used")
    if "master_flat" in masters:
        header["NOTAFLAT"] = (os.path.basename(masters["master_flat"]), "master flat used")
    for line in history:
        header["HISTORY"] = line
    return header


def write_product(ccd: CCDData, path: str, planes: dict[str, np.ndarray] | None = None) -> tuple[str, int]:
    """Write data (float32), UNCERT and MASK atomically; returns (content hash, size).

    ``planes`` are further uint8 image extensions by name (``CRMASK``: the pixels of MASK
    that are cosmic rays), which ``CCDData.read`` passes over.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(ccd.data, dtype=np.float32)
    out = CCDData(
        data,
        unit=ccd.unit,
        meta=ccd.meta,
        uncertainty=None if ccd.uncertainty is None
        else StdDevUncertainty(np.asarray(ccd.uncertainty.array, dtype=np.float32)),
        mask=None if ccd.mask is None else np.asarray(ccd.mask, dtype=bool),
    )
    hdul = out.to_hdu(hdu_mask="MASK", hdu_uncertainty="UNCERT", as_image_hdu=False)
    for hdu in hdul:
        if hdu.name == "MASK":
            hdu.data = hdu.data.astype(np.uint8)
    for name, plane in (planes or {}).items():
        hdul.append(fits.ImageHDU(np.asarray(plane, dtype=np.uint8), name=name))
    temporary = target.with_name(f"{TMP_PREFIX}{os.getpid()}-{target.name}")
    try:
        hdul.writeto(temporary, overwrite=True)
        digest = content_hash(str(temporary))
        size = temporary.stat().st_size
        os.replace(temporary, target)  # the product appears whole, or not at all
    finally:
        temporary.unlink(missing_ok=True)
    return digest, size


def _pictures(data: np.ndarray, kind: str, mask: np.ndarray | None = None) -> dict[str, bytes]:
    """Catalogue previews of a product, from a view of about 512 pixels."""
    step = max(1, max(data.shape) // VIEW_SIZE)
    view = data[::step, ::step]
    small_mask = None if mask is None else mask[::step, ::step]
    cmap = cmap_for(kind)
    return {"thumb": preview_png(view, max_size=THUMB_SIZE, cmap=cmap, mask=small_mask),
            "view": preview_png(view, max_size=VIEW_SIZE, cmap=cmap, mask=small_mask)}


@functools.lru_cache(maxsize=4)
def _read_master(path: str, _size: int = 0) -> CCDData:
    """A master, read once per worker (keyed by path and size)."""
    return read_product(path)


def _build_master(task: Task, masters: dict[str, Any], memory_bytes: int, scratch: str) -> dict[str, Any]:
    used = [i for i in task.inputs if i.included]
    params = task.params
    rows, cols = to_slices(params["trimsec"])
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    bias = (
        _read_master(masters["master_bias"], os.path.getsize(masters["master_bias"])).data
        if task.kind == "master_flat" else None
    )
    with FrameStack(len(used), shape, np.uint16, memory_bytes, Path(scratch)) as stack:
        row_offsets = np.zeros((len(used), shape[0]), np.float32) if params.get("overscan") else None
        scale = []
        samples = []  # a view of each bias for its histogram
        for i, raw in enumerate(used):  # each input read once
            pixels = _read_raw(raw)
            trimmed = pixels[rows, cols]
            if trimmed.shape != shape:
                raise NotaError(f"{raw.name}: {trimmed.shape} differs from the group's {shape}")
            stack.array[i] = trimmed
            if task.kind == "master_bias":
                samples.append((raw.name, np.array(trimmed[::4, ::4])))
            if row_offsets is not None:
                oscan = to_ccd(pixels)
                levels = oscan.data - subtract_overscan(oscan, params["biassec"], params["overscan_model"]).data
                row_offsets[i] = levels[rows, 0]
            if task.kind == "master_flat":
                corrected = trimmed.astype(np.float32) - bias
                if row_offsets is not None:
                    corrected -= row_offsets[i][:, None]
                scale.append(1.0 / float(np.median(corrected)))
        combined = median_combine(
            stack.array,
            method=params["combine"],
            row_offsets=row_offsets,
            offset=bias,
            scale=scale or None,
            clip_max=params.get("clip_max"),
            memory_bytes=memory_bytes // 2,
        )
    data, sigma = combined.data, combined.uncertainty
    history = [f"nota {task.kind}: {params['combine']} of {len(used)} frames, trimmed {params['trimsec']}"]
    if task.kind == "master_bias":
        history.append(f"values above {params['clip_max']} ADU rejected before combining")
    else:
        norm = float(np.mean(data, dtype=np.float64))
        data, sigma = data / np.float32(norm), sigma / np.float32(norm)
        history.append("bias-subtracted flats scaled by 1/median, then normalised to mean 1")
    history.append("frames: " + ", ".join(i.name for i in used))
    header = _raw_header(used[0])
    header["NCOMBINE"] = (len(used), "frames combined")
    ccd = CCDData(data, unit="adu", uncertainty=StdDevUncertainty(sigma), mask=combined.mask,
                  meta=_stamp(header, task, history, masters))
    digest, size = write_product(ccd, task.output)
    name = os.path.basename(task.output)
    plots = [("master", f"{name}", image_png(data, name, cmap=cmap_for(task.kind), mask=combined.mask))]
    if samples:
        plots.append(("bias_histograms", f"Bias frames combined into {name}", bias_histograms_png(samples)))
    return {"key": task.key, "path": task.output, "content_hash": digest, "size": size,
            "previews": _pictures(data, task.kind, combined.mask), "plots": plots}


def _reduce_frame(task: Task, masters: dict[str, Any]) -> dict[str, Any]:
    params = task.params
    (raw,) = task.inputs
    ccd, raw_trimmed = _prepare(raw, params)
    bias = _read_master(masters["master_bias"], os.path.getsize(masters["master_bias"]))
    flat = _read_master(masters["master_flat"], os.path.getsize(masters["master_flat"]))
    header = _raw_header(raw)
    history = [f"nota: trimmed {params['trimsec']}" + (", overscan subtracted" if params["overscan"] else "")]
    if params.get("keep_intermediate"):
        write_product(CCDData(ccd.data, unit="adu", meta=_stamp(header, task, history, {})),
                      str(Path(task.output).with_name("t_" + raw.name)))
    ccd = subtract_bias(ccd, bias)
    ccd = with_deviation(ccd, float(params["gain"]), float(params["read_noise"]))
    ccd = mask_saturated(ccd, raw_trimmed, float(params["saturation"]))
    history.append(f"nota: bias subtracted with {os.path.basename(masters['master_bias'])}")
    if params.get("keep_intermediate"):
        write_product(CCDData(ccd.data, unit="adu", meta=_stamp(header, task, history, masters)),
                      str(Path(task.output).with_name("zt_" + raw.name)))
    ccd = flat_correct(ccd, flat, min_value=float(params["flat_min_value"]))
    history.append(f"nota: flat fielded with {os.path.basename(masters['master_flat'])}")
    planes, cosmic_pixels = {}, None
    if params.get("cosmics"):
        ccd, planes["CRMASK"], cosmic_pixels = _clean_cosmics(ccd, params)
        header["NCOSMIC"] = (cosmic_pixels, "pixels cleaned of cosmic rays (CRMASK)")
        c = params["cosmics"]
        history.append(f"nota: L.A.Cosmic sigclip={c['sigclip']} objlim={c['objlim']} niter={c['niter']},"
                       f" stars spared: {cosmic_pixels} px cleaned (CRMASK)")
    astrometry = None
    if params.get("astrometry"):
        astrometry = _solve_frame(ccd, header, params["astrometry"])
        if astrometry["wcs"] is not None:
            header.update(astrometry.pop("wcs").to_header(relax=True))
            history.append(f"nota: WCS from astrometry.net, {astrometry['matched']} stars,"
                           f" rms {astrometry['rms_arcsec']:.3f} arcsec")
        else:
            astrometry.pop("wcs")
        header["NOTAWCS"] = (astrometry["status"], "nota astrometry")
    photzp = _stamp_photometry(header, history, masters.get("calibration"), params.get("airmass"),
                               params.get("exptime")) if "photometry" in params else None
    ccd.meta = _stamp(header, task, history, masters)
    digest, size = write_product(ccd, task.output, planes)
    return {"key": task.key, "path": task.output, "content_hash": digest, "size": size,
            "previews": _pictures(ccd.data, "reduced", ccd.mask), "astrometry": astrometry,
            "cosmic_pixels": cosmic_pixels, "photzp": photzp, "airmass": params.get("airmass"),
            "exptime": params.get("exptime")}


def _stamp_photometry(header: fits.Header, history: list[str], calibration: dict | None,
                      airmass: float | None, exptime: float | None) -> float | None:
    """PHOTZP for this product's airmass and exposure, from its night's solution in its filter.

    The night's fit is m_AB = -2.5 log10(ADU/s) + ZP - k X; a product holds ADU over
    EXPTIME, so PHOTZP = ZP - k X + 2.5 log10(EXPTIME) and m_AB = -2.5 log10(ADU) + PHOTZP.
    """
    if not calibration or calibration.get("zp") is None or not airmass or not exptime:
        history.append("nota: no photometric calibration for this night and filter: no PHOTZP")
        return None
    zp, k = float(calibration["zp"]), float(calibration["k"])
    photzp = zp - k * airmass + 2.5 * math.log10(exptime)
    var = ((calibration.get("zp_err") or 0.0) ** 2 + (airmass * (calibration.get("k_err") or 0.0)) ** 2
           - 2 * airmass * (calibration.get("cov_zp_k") or 0.0))
    header["PHOTZP"] = (round(photzp, 4), "AB mag = -2.5 log10(ADU) + PHOTZP")
    header["PHOTZPER"] = (round(math.sqrt(max(var, 0.0)), 4), "mag, error of PHOTZP")
    header["PHOTSYS"] = ("AB", "magnitude system of PHOTZP")
    header["PHOTAIRM"] = (round(airmass, 4), "mid-exposure airmass PHOTZP is for")
    header["PHOTCAL"] = (calibration.get("calibration_id"), "nota photometric calibration id")
    history.append(f"nota: PHOTZP {photzp:.4f} (AB) = ZP {zp:.4f} - k {k:.4f} x airmass {airmass:.4f}"
                   f" + 2.5 log10(EXPTIME {exptime:g})")
    return photzp


def _stack_series(task: Task, masters: dict[str, Any]) -> dict[str, Any]:
    """Align the series' reduced exposures on the first, clip and average them."""
    from nota.reduce.stack import StackParameters, align_series, stack_series

    params = task.params
    names = params["frames"]
    frames = [read_product(masters[f"exposure:{name}"]) for name in names]
    settings = StackParameters(**{k: params[k] for k in ("high", "low", "relative", "order", "min_frames")
                                  if k in params})
    stack, info = stack_series(align_series(frames, params=settings), params["exptimes"],
                               params["airmasses"], params=settings, names=names)
    header = fits.Header(stack.meta)
    for keyword in ("NCOSMIC", "NOTABIAS", "NOTAFLAT", "PHOTZP", "PHOTZPER", "PHOTSYS", "PHOTAIRM", "PHOTCAL"):
        header.remove(keyword, ignore_missing=True)
    history = [f"nota: {len(names)} exposures aligned on {names[0]} (astroalign), {info['rejected_pixels']}"
               f" values rejected as cosmic rays"]
    photzp = None
    if "photometry" in params:
        photzp = _stamp_photometry(header, history, masters.get("calibration"), info["airmass"], info["exptime"])
    stack.meta = _stamp(header, task, history, {})
    digest, size = write_product(stack, task.output)
    return {"key": task.key, "path": task.output, "content_hash": digest, "size": size,
            "previews": _pictures(stack.data, "reduced", stack.mask), "photzp": photzp,
            "airmass": info["airmass"], "exptime": info["exptime"]}


def _clean_cosmics(ccd: CCDData, params: dict) -> tuple[CCDData, np.ndarray, int]:
    """L.A.Cosmic on the flat-fielded frame; also the map of what it cleaned."""
    before = np.zeros(ccd.shape, bool) if ccd.mask is None else np.asarray(ccd.mask, bool)
    cleaned, n = remove_cosmics(ccd, gain=float(params["gain"]), read_noise=float(params["read_noise"]),
                                saturation=float(params["saturation"]),
                                params=CosmicsParameters(**params["cosmics"]))
    return cleaned, np.asarray(cleaned.mask, bool) & ~before, n


@functools.lru_cache(maxsize=2)
def _reference_stars(index_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """RA and Dec of the catalogues the index files were built from (for the refit)."""
    from astropy.table import Table, vstack

    tables = [Table.read(p) for p in sorted(Path(index_dir).glob("*.cat.fits"))]
    if not tables:
        return np.array([]), np.array([])
    stars = vstack(tables)
    return np.asarray(stars["RA"], float), np.asarray(stars["DEC"], float)


def _solve_frame(ccd: CCDData, header: fits.Header, params: dict) -> dict:
    """Solve a reduced frame; a frame that does not solve is reported, never fatal."""
    from nota.reduce.astrometry import extract_sources, match_residuals, refine, solve

    ra, dec = header.get("RA"), header.get("DEC")
    if not isinstance(ra, (int, float)) or not isinstance(dec, (int, float)):
        return {"wcs": None, "status": "not solved: no RA/DEC in the header", "matched": 0, "rms_arcsec": None}
    sources = extract_sources(ccd.data, params["fwhm_px"], mask=ccd.mask)
    wcs = solve(sources, ccd.shape, index_dir=Path(params["index_dir"]), ra=float(ra), dec=float(dec),
                scale=params["pixel_scale"], timeout=params.get("timeout", 5.0))
    if wcs is None:
        return {"wcs": None, "status": f"not solved ({len(sources.x)} stars found)", "matched": 0, "rms_arcsec": None}
    reference_ra, reference_dec = _reference_stars(params["index_dir"])
    if reference_ra.size:
        wcs = refine(wcs, sources, reference_ra, reference_dec)
        matched, rms = match_residuals(wcs, sources, reference_ra, reference_dec)
    else:
        matched, rms = 0, None
    return {"wcs": wcs, "status": "solved", "matched": matched, "rms_arcsec": rms}


def execute_task(task: Task, masters: dict[str, Any], memory_bytes: int, scratch: str) -> dict[str, Any]:
    """Make one product (in whatever process or cluster worker runs this); never raises."""
    started = provenance.utc_now()
    cpu = time.process_time()
    try:
        if task.kind == "reduced":
            result = _reduce_frame(task, masters)
        elif task.kind == "stack":
            result = _stack_series(task, masters)
        else:
            result = _build_master(task, masters, memory_bytes, scratch)
        result["error"] = None
    except Exception as exc:  # one frame's failure must not stop the night
        result = {"key": task.key, "path": task.output, "error": f"{type(exc).__name__}: {exc}"}
    result.update(
        started_at=started,
        ended_at=provenance.utc_now(),
        host=platform.node(),
        cpu_seconds=time.process_time() - cpu,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    return result
