"""The cosmic-ray figures on a full-size simulated night, held to its truth, and their CPU.

For every science and standard frame flat-fielded without cleaning (``nota reduce
--no-cosmics``), ``remove_cosmics`` runs once and is scored as tests/test_cosmics.py scores
the small night: recall of the hit pixels 5 sigma or more above their noise (unmasked), and
the fraction of the pixels of bright stars (>= 50 sigma, within 1.5 FWHM; stars a hit
touches left out) that were flagged. CPU is this process's (``time.process_time``), one
frame at a time, so a busy machine changes it less than wall time.

    python bench/cosmics_figures.py NIGHT_DIR PRODUCTS_DIR [--whole-frame] [--json]
    # e.g. nota simulate n7/ --seed 7 && nota --db n7.db ingest n7/N1 \\
    #      && nota --db n7.db reduce --no-cosmics --products n7/products
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def score(night: Path, products: Path, whole_frame: bool = False, limit: int | None = None) -> dict:
    from astropy.nddata import CCDData

    from nota.reduce.cosmics import remove_cosmics
    from nota.simulate import load_truth

    truth = load_truth(night)
    frames = [f for f in truth["frames"] if f["kind"] in ("science", "standard")][:limit]
    found = detectable = flagged = stars_total = 0
    cpu = []
    for frame in frames:
        path = next(products.rglob(f"fzt_{frame['filename']}"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ccd = CCDData.read(path, hdu_uncertainty="UNCERT", hdu_mask="MASK")
        gain, read_noise = float(ccd.header["GAIN"]), float(ccd.header["RDNOISE"])
        t = time.process_time()
        clean, _ = remove_cosmics(ccd, gain=gain, read_noise=read_noise, saturation=60000.0,
                                  tiled=not whole_frame)
        cpu.append(time.process_time() - t)
        row0, col0 = _offsets(ccd, frame)
        z = np.load(night / "truth" / "cosmics" / f"{frame['filename'].removesuffix('.fits')}.npz")
        rows, cols = np.unravel_index(z["index"], frame["shape"])
        rows, cols = rows - row0, cols - col0
        inside = (rows >= 0) & (rows < ccd.shape[0]) & (cols >= 0) & (cols < ccd.shape[1])
        hit = np.zeros(ccd.shape, bool)
        adu = np.zeros(ccd.shape, np.float32)
        hit[rows[inside], cols[inside]] = True
        adu[rows[inside], cols[inside]] = z["adu"][inside]
        newly = clean.mask & ~ccd.mask
        det = hit & ~ccd.mask & (adu >= 5 * ccd.uncertainty.array)
        found += int((newly & det).sum())
        detectable += int(det.sum())
        stars = _star_pixels(frame, ccd, hit, row0, col0) & ~ccd.mask & ~hit
        flagged += int((newly & stars).sum())
        stars_total += int(stars.sum())
    return {"night": str(night), "frames": len(frames), "whole_frame": whole_frame,
            "recall": found / max(detectable, 1), "found": found, "detectable": detectable,
            "star_fraction": flagged / max(stars_total, 1), "star_flagged": flagged,
            "star_pixels": stars_total, "cpu_per_frame": float(np.mean(cpu)),
            "cpu_max": float(np.max(cpu))}


def _offsets(ccd, frame) -> tuple[int, int]:
    """Raw (row, col) of the reduced frame's first pixel: its trim section (FITS, 1-based)."""
    section = ccd.header.get("TRIMSEC") or ("[16:525,6:508]" if frame["shape"][0] < 1000 else "[61:2100,21:2032]")
    xs, ys = section.strip("[]").split(",")
    return int(ys.split(":")[0]) - 1, int(xs.split(":")[0]) - 1


def _star_pixels(frame, ccd, hit, row0, col0, min_snr: float = 50.0) -> np.ndarray:
    shape = ccd.shape
    sky_sigma = float(np.median(ccd.uncertainty.array))
    radius = 1.5 * frame["fwhm_px"]
    out = np.zeros(shape, bool)
    r = int(radius) + 4
    for star in frame["stars"]:
        flux = star["adu_per_s"] * frame["exptime"] * star["response"]
        x, y = star["x"] - 1 - col0, star["y"] - 1 - row0
        if flux < min_snr * sky_sigma or not (0 <= x < shape[1] and 0 <= y < shape[0]):
            continue
        y0, y1, x0, x1 = max(int(y) - r, 0), min(int(y) + r + 1, shape[0]), max(int(x) - r, 0), min(int(x) + r + 1, shape[1])
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d2 = (yy - y) ** 2 + (xx - x) ** 2
        if not (hit[y0:y1, x0:x1] & (d2 <= (radius + 2) ** 2)).any():
            out[y0:y1, x0:x1] |= d2 <= radius**2
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("night", type=Path, help="the simulated night (with truth/)")
    parser.add_argument("products", type=Path, help="products of `nota reduce --no-cosmics`")
    parser.add_argument("--whole-frame", action="store_true", help="L.A.Cosmic on the whole frame (the reference)")
    parser.add_argument("--limit", type=int, help="only the first N frames")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = score(args.night, args.products, args.whole_frame, args.limit)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['night']}: {result['frames']} frames, "
              f"{'whole frame' if args.whole_frame else 'tiled'}: recall {result['recall']:.2%} "
              f"({result['found']}/{result['detectable']}), bright-star pixels flagged "
              f"{result['star_fraction']:.3%} ({result['star_flagged']}/{result['star_pixels']}), "
              f"CPU {result['cpu_per_frame']:.2f} s per frame (max {result['cpu_max']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
