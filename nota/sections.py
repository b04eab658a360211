"""FITS sections ('[x1:x2,y1:y2]', 1-based, inclusive, x first) as numpy slices.

The lecture stumbles here (its trim is off by one column between the FITS and the Python
forms), so nota converts in one place. Sections in an instrument profile are in unbinned
pixels; ``binned`` maps them onto a binned readout.
"""

from __future__ import annotations

import math
import re

from nota.errors import NotaError

__all__ = ["parse_section", "to_slices", "binned", "format_section"]

_SECTION = re.compile(r"^\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]$")


def parse_section(text: str) -> tuple[int, int, int, int]:
    """'[x1:x2,y1:y2]' -> (x1, x2, y1, y2), 1-based inclusive."""
    match = _SECTION.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise NotaError(f"not a FITS section: {text!r} (expected '[x1:x2,y1:y2]')")
    x1, x2, y1, y2 = (int(g) for g in match.groups())
    if x2 < x1 or y2 < y1 or min(x1, y1) < 1:
        raise NotaError(f"empty or reversed FITS section: {text!r}")
    return x1, x2, y1, y2


def format_section(x1: int, x2: int, y1: int, y2: int) -> str:
    return f"[{x1}:{x2},{y1}:{y2}]"


def binned(text: str, xbin: int, ybin: int) -> str:
    """An unbinned-pixel section mapped onto a readout binned xbin x ybin (inner pixels kept)."""
    x1, x2, y1, y2 = parse_section(text)
    return format_section(
        math.ceil((x1 - 1) / xbin) + 1,
        (x2 // xbin),
        math.ceil((y1 - 1) / ybin) + 1,
        (y2 // ybin),
    )


def to_slices(text: str, shape: tuple[int, int] | None = None) -> tuple[slice, slice]:
    """(row slice, column slice) for a numpy array of ``shape`` (rows, columns)."""
    x1, x2, y1, y2 = parse_section(text)
    if shape is not None:
        rows, cols = shape
        if x2 > cols or y2 > rows:
            raise NotaError(f"section {text} lies outside a {cols} x {rows} image")
    return slice(y1 - 1, y2), slice(x1 - 1, x2)
