"""The truth beside a simulated night: what made each frame, for checking a reduction.

Kept in ``<night>/truth/`` and never as FITS, so ingesting the night directory does not
pick it up. ``truth.json`` is the index; maps, hits and catalogues sit beside it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any, Iterable

from nota.errors import SimulationError
from nota.simulate.sky import CATALOGUE_BANDS
from nota.simulate.writer import write_bytes, write_json

__all__ = ["TRUTH_DIR", "TRUTH_FILE", "load_truth", "merge_frames", "write_catalogue",
           "write_truth"]

log = logging.getLogger(__name__)

TRUTH_DIR = "truth"
TRUTH_FILE = "truth.json"


def load_truth(night_dir: Path) -> dict[str, Any]:
    """Read a simulated night's truth (``<night_dir>/truth/truth.json``)."""
    path = Path(night_dir) / TRUTH_DIR / TRUTH_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SimulationError(
            f"{night_dir} has no {TRUTH_DIR}/{TRUTH_FILE}: not a simulated night") from None
    except json.JSONDecodeError as exc:
        raise SimulationError(f"{path} is damaged: {exc}") from exc


def merge_frames(old: dict[str, Any] | None, night: dict[str, Any],
                 frames: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Frames of an earlier run of the same night and seed kept, new ones replacing them."""
    by_seq: dict[int, dict[str, Any]] = {}
    same = old is not None and all(old.get("night", {}).get(k) == night.get(k)
                                   for k in ("date", "seed", "small", "mef"))
    if same:
        by_seq.update({f["sequence"]: f for f in old.get("frames", [])})
    by_seq.update({f["sequence"]: f for f in frames})
    return [by_seq[k] for k in sorted(by_seq)]


def write_truth(truth_dir: Path, truth: dict[str, Any]) -> Path:
    path = truth_dir / TRUTH_FILE
    write_json(path, truth)
    return path


def write_catalogue(path: Path, stars: list[dict[str, Any]]) -> None:
    """A field's stars as CSV: id, ra, dec (deg, J2000) and an AB magnitude per band."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "ra", "dec", *CATALOGUE_BANDS])
    for s in stars:
        writer.writerow([s["id"], f"{s['ra']:.7f}", f"{s['dec']:.7f}",
                         *(f"{s[b]:.4f}" for b in CATALOGUE_BANDS)])
    write_bytes(path, buffer.getvalue().encode())
