"""Reading the small observatory's truth back: maps, a frame's row, its true dark and light.

Why helpers: a test of a reduction needs "what dark current did this frame collect" and
"what sky + stars fell on it" without knowing how the simulator stores them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from nota.errors import SimulationError
from nota.simulate.generic.camera import dark_factor
from nota.simulate.generic.light import light_signal
from nota.simulate.truth import TRUTH_DIR, load_truth

__all__ = ["frame_truth", "true_dark", "true_light", "truth_map"]

log = logging.getLogger(__name__)


def truth_map(night_dir: Path, name: str) -> np.ndarray:
    """A map of the truth directory by file name (``dark_rate.npy``, ``response_R.npy``...)."""
    path = Path(night_dir) / TRUTH_DIR / name
    if not path.exists():
        raise SimulationError(f"{path} does not exist: not a generic simulated night?")
    return np.load(path)


def frame_truth(truth: dict[str, Any], filename: str) -> dict[str, Any]:
    """A frame's truth row by its file name (``LIGHT/2026-...fits`` or just the name)."""
    for row in truth["frames"]:
        if row["filename"] == filename or Path(row["filename"]).name == filename:
            return row
    raise SimulationError(f"no frame {filename!r} in the night's truth")


def true_dark(night_dir: Path, temperature: float, exptime: float) -> np.ndarray:
    """The dark current (e- per pixel, noiseless) a frame at ``temperature`` collects."""
    rates = truth_map(night_dir, "dark_rate.npy")
    return (rates * np.float32(dark_factor(temperature) * exptime)).astype(np.float32)


def true_light(night_dir: Path, filename: str) -> np.ndarray:
    """The noiseless sky + stars (+ galaxy, spectra) of a light in e-, before the flat."""
    truth = load_truth(Path(night_dir))
    row = frame_truth(truth, filename)
    if "light" not in row:
        raise SimulationError(f"{filename} is a {row['kind']} frame: no light on the sky")
    return light_signal(row["light"], tuple(row["shape"]))
