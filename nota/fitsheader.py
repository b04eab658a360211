"""Read every header card of every HDU of a FITS file, fast, without touching the pixels.

Ingest indexes thousands of files, so it cannot afford a full ``astropy.io.fits`` header
parse per file. This module walks the 2880-byte blocks itself, finds each header's END,
hands its cards to ``nota.fitscards`` and skips each data unit by its size. Bytes that are
not FITS raise ``FitsError`` with the reason.
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable

from nota.errors import FitsError
from nota.fitscards import CARD, Card, first_values, parse_cards, parse_value

BLOCK = 2880

__all__ = ["BLOCK", "CARD", "Card", "Hdu", "Truncated", "padded", "read_hdus", "read_file_hdus", "parse_value"]


@dataclass
class Hdu:
    """One header-data unit: its cards, and where its data sits in the file."""

    index: int
    cards: list[Card]
    header_offset: int
    data_offset: int
    data_size: int
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._first: dict[str, Any] | None = None

    @property
    def first_values(self) -> dict[str, Any]:
        """Keyword -> value of its first card (commentary cards excluded)."""
        if self._first is None:
            self._first = first_values(self.cards)
        return self._first

    def get(self, keyword: str, default: Any = None) -> Any:
        return self.first_values.get(keyword, default)

    @property
    def name(self) -> str:
        extname = self.get("EXTNAME")
        if isinstance(extname, str) and extname.strip():
            return extname.strip()
        return "PRIMARY" if self.index == 0 else ""

    @property
    def xtension(self) -> str:
        x = self.get("XTENSION")
        return x.strip() if isinstance(x, str) else ("PRIMARY" if self.index == 0 else "")

    @property
    def is_image(self) -> bool:
        """True for an HDU that holds a 2-D (or more) image, tile-compressed ones included."""
        if self.get("ZIMAGE") is True:
            return int(self.get("ZNAXIS", 0) or 0) >= 2
        return self.xtension in ("PRIMARY", "IMAGE") and int(self.get("NAXIS", 0) or 0) >= 2


def _data_size(values: dict[str, Any]) -> int:
    """Bytes of the data unit that follows a header (before padding)."""
    try:
        naxis = int(values.get("NAXIS", 0))
        bitpix = int(values["BITPIX"])
    except (KeyError, TypeError, ValueError):
        raise FitsError("header lacks a valid BITPIX or NAXIS") from None
    if naxis == 0:
        return 0
    try:
        axes = [int(values[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
    except (KeyError, TypeError, ValueError):
        raise FitsError(f"header says NAXIS = {naxis} but lacks a valid NAXISn") from None
    if values.get("GROUPS") is True and axes and axes[0] == 0:
        axes = axes[1:]  # random groups: NAXIS1 = 0
    size = 1
    for n in axes:
        if n < 0:
            raise FitsError(f"negative axis length {n}")
        size *= n
    pcount = int(values.get("PCOUNT", 0) or 0)
    gcount = int(values.get("GCOUNT", 1) or 1)
    return abs(bitpix) // 8 * gcount * (pcount + size)


def padded(n: int) -> int:
    """Bytes ``n`` bytes take in a FITS file: whole 2880-byte blocks."""
    return (n + BLOCK - 1) // BLOCK * BLOCK


def read_hdus(stream: BinaryIO, file_size: int) -> list[Hdu]:
    """Read every HDU's header from a seekable binary stream positioned at the file start.

    Data units are skipped by seeking. Raises ``FitsError`` when the bytes are not FITS or
    the file ends before a header or data unit does (truncated).
    """

    def read_at(offset: int, n: int) -> bytes:
        stream.seek(offset)
        return stream.read(n)

    return _read_hdus(_Window(read_at), file_size)


class _Window:
    """A file's bytes read ahead in one call: a header is most often a few blocks, and one
    system call for them costs less than one for each (through a buffered stream, more)."""

    AHEAD = 8 * BLOCK

    def __init__(self, read_at: Callable[[int, int], bytes]) -> None:
        self._read_at = read_at
        self._start, self._data, self._eof = 0, b"", False

    def read(self, offset: int, n: int) -> bytes:
        start, data = self._start, self._data
        if not (start <= offset and (offset + n <= start + len(data) or self._eof)):
            want = max(n, self.AHEAD)
            self._start, self._data = start, data = offset, self._read_at(offset, want)
            self._eof = len(data) < want
        return data[offset - start : offset - start + n]


def _read_hdus(window: _Window, file_size: int) -> list[Hdu]:
    hdus: list[Hdu] = []
    offset = 0
    while True:
        first = window.read(offset, BLOCK)
        if not first:
            if not hdus:
                raise FitsError("file is empty")
            break
        if not hdus:
            if not first.startswith(b"SIMPLE  ="):
                raise FitsError("not a FITS file (does not start with SIMPLE)")
        elif not first.startswith(b"XTENSION="):
            if first.strip(b"\0 ") == b"":
                break  # trailing padding after the last HDU
            raise FitsError(
                f"bytes after HDU {len(hdus) - 1} at offset {offset} are not a FITS extension"
            )
        blocks = [first]
        header_end = None
        block = first
        while True:
            if len(block) < BLOCK:
                raise FitsError(f"truncated: header of HDU {len(hdus)} ends mid-block")
            end = _find_end(block)
            if end is not None:
                header_end = end
                break
            block = window.read(offset + BLOCK * len(blocks), BLOCK)
            if not block:
                raise FitsError(f"truncated: header of HDU {len(hdus)} has no END card")
            blocks.append(block)
        raw = b"".join(blocks[:-1]) + blocks[-1][:header_end]
        warnings: list[str] = []
        if not raw.isascii():
            card_no = next(i for i, byte in enumerate(raw) if byte > 127) // CARD + 1
            warnings.append(
                f"HDU {len(hdus)}: card {card_no} has non-ASCII bytes (read as Latin-1)"
            )
        cards, value_warnings = parse_cards(raw)
        warnings += [f"HDU {len(hdus)}: {w}" for w in value_warnings]
        data_offset = offset + BLOCK * len(blocks)
        hdu = Hdu(len(hdus), cards, offset, data_offset, 0, warnings)
        hdu.data_size = _data_size(hdu.first_values)
        hdus.append(hdu)
        size = hdu.data_size
        offset = data_offset + padded(size)
        if data_offset + size > file_size:
            raise Truncated(hdus, data_offset + size, file_size)
        if offset >= file_size:
            break
    return hdus


class Truncated(FitsError):
    """Raised with the headers read so far, so ingest can keep them."""

    def __init__(self, hdus: list[Hdu], needed: int, size: int):
        super().__init__(
            f"truncated: HDU {len(hdus) - 1} needs {needed} bytes, the file has {size}"
        )
        self.hdus = hdus


_END_CARD = b"END" + b" " * 77


def _find_end(block: bytes) -> int | None:
    """Byte offset of the END card's start within a header block, or None."""
    pos = block.find(_END_CARD)
    while pos >= 0:
        if pos % CARD == 0:
            return pos
        pos = block.find(_END_CARD, pos + 1)
    return None


def read_file_hdus(path: str) -> list[Hdu]:
    """Every HDU header of a FITS file on disk, opened read-only (gzip decompressed)."""
    if path.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as gz:
                data = gz.read()
        except (OSError, EOFError) as exc:
            raise FitsError(f"not a readable gzip file: {exc}") from None
        return read_hdus(io.BytesIO(data), len(data))
    # Read-only: raw files are never opened for writing.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        return _read_hdus(_Window(lambda offset, n: os.pread(fd, n, offset)), os.fstat(fd).st_size)
    finally:
        os.close(fd)
