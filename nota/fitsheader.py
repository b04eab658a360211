"""Read every header card of every HDU of a FITS file, fast, without touching the pixels.

Ingest indexes thousands of files, so it cannot afford a full ``astropy.io.fits`` header
parse per file. This module walks the 2880-byte blocks itself, splits the 80-character
cards, parses the values FITS allows (strings, logicals, integers, reals, complex,
undefined), merges long-string CONTINUE cards as astropy does, and skips each data unit
by its size. Bytes that are not FITS raise ``FitsError`` with the reason.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import struct
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, BinaryIO, Callable, NamedTuple

from nota.errors import FitsError

BLOCK = 2880
CARD = 80
COMMENTARY = frozenset({"COMMENT", "HISTORY", ""})

__all__ = ["BLOCK", "CARD", "Card", "Hdu", "Truncated", "padded", "read_hdus", "read_file_hdus", "parse_value"]


class Card(NamedTuple):
    """One header card as FITS writes it; ``value`` typed, ``raw`` the value text as found."""

    keyword: str
    value: Any
    comment: str
    raw: str


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


_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([EeDd][+-]?\d+)?$")
_COMPLEX = re.compile(r"^\(\s*([^,]+?)\s*,\s*([^)]+?)\s*\)$")


class UnparsableValue(str):
    """A value text FITS does not allow; kept verbatim so nothing is lost."""


def parse_value(text: str) -> Any:
    """Turn a card's value text (no comment) into a Python value, as FITS defines it."""
    t = text.strip()
    if t == "":
        return None
    if t == "T":
        return True
    if t == "F":
        return False
    if (t.isdigit() and t.isascii()) or _INT.match(t):  # the test in C first: most integers are plain
        return int(t)
    if _FLOAT.match(t):
        return float(t.replace("D", "E").replace("d", "e") if "D" in t or "d" in t else t)
    m = _COMPLEX.match(t)
    if m:
        try:
            return complex(parse_value(m.group(1)), parse_value(m.group(2)))
        except (TypeError, ValueError):
            pass
    return UnparsableValue(t)


_STRING = re.compile(r"'((?:[^']|'')*)'")
_VALUE_CACHE: dict[str, Any] = {}  # value texts repeat across files: parse each once


def _closing_quote(text: str) -> int:
    """The end (past it) of the string opening ``text``: the first quote not doubled; -1
    when every quote is doubled to the end (``_STRING`` decides those). A few finds in C,
    where the regular expression took a tenth of reading a new card."""
    end = text.find("'", 1)
    while end >= 0 and text[end + 1 : end + 2] == "'":
        end = text.find("'", end + 2)
    return end + 1 if end >= 0 else -1


def _split_value_comment(body: str) -> tuple[Any, str, str, bool]:
    """Split the part after ``= `` into (value, comment, raw value text, is_string)."""
    stripped = body.lstrip()
    if stripped[:1] == "'":
        # A string: quotes doubled inside, ends at the first lone quote.
        end = _closing_quote(stripped)
        if end < 0:
            m = _STRING.match(stripped)  # what a regular expression makes of the rest
            if m is None:
                # No closing quote: not valid FITS; keep the text as it is.
                return UnparsableValue(stripped.rstrip()), "", stripped.rstrip(), False
            end = m.end()
        inside = stripped[1 : end - 1]
        value = (inside.replace("''", "'") if "''" in inside else inside).rstrip()
        rest = stripped[end:]
        slash = rest.find("/")
        comment = rest[slash + 1 :].strip() if slash >= 0 else ""
        return value, comment, stripped[:end], True
    slash = body.find("/")
    if slash >= 0:
        raw, comment = body[:slash].strip(), body[slash + 1 :].strip()
    else:
        raw, comment = body.strip(), ""
    try:
        value = _VALUE_CACHE[raw]
    except KeyError:
        value = parse_value(raw)
        if len(_VALUE_CACHE) < 100_000:
            _VALUE_CACHE[raw] = value
    return value, comment, raw, False


# Most cards repeat exactly from file to file of a night: parse each distinct card once.
_CARD_CACHE: dict[bytes, Card] = {}
_CARD_CACHE_MAX = 200_000
# Card images that need the careful pass -> whether they open a long string (a string
# ending in '&' that CONTINUE cards may extend); values that are not FITS map to False.
_ODD_CARDS: dict[bytes, bool] = {}
_SPLITTERS: dict[int, struct.Struct] = {}


def _parse_card(image: str) -> tuple[str, Any, str, str, bool]:
    """(keyword, value, comment, raw, is_string) of one 80-character card image."""
    keyword = image[:8].rstrip()
    if keyword == "HIERARCH":
        eq = image.find("=")
        if eq < 0:
            return keyword, image[8:].rstrip(), "", image[8:].rstrip(), False
        value, comment, raw, is_string = _split_value_comment(image[eq + 1 :])
        return "HIERARCH " + image[8:eq].strip(), value, comment, raw, is_string
    if keyword in COMMENTARY or image[8:10] != "= ":
        if keyword == "" and image.strip() == "":
            return "", "", "", "", False  # blank cards: astropy keeps them, and so do we
        # A keyword with no value indicator is commentary text too (FITS 4.1.2.2).
        text = image[8:].rstrip()
        return keyword, text, "", text, False
    value, comment, raw, is_string = _split_value_comment(image[10:])
    return keyword, value, comment, raw, is_string


def _new_card(image: bytes) -> Card:
    """Parse a card image not met before (Latin-1 reads ASCII as ASCII), and remember it."""
    keyword, value, comment, raw, is_string = _parse_card(image.decode("latin-1"))
    card = Card(keyword, value, comment, raw)
    if type(value) is UnparsableValue:
        _ODD_CARDS[image] = False
    elif is_string and value.endswith("&"):
        _ODD_CARDS[image] = True
    if len(_CARD_CACHE) < _CARD_CACHE_MAX:
        _CARD_CACHE[image] = card
    return card


def _split(raw: bytes) -> tuple[bytes, ...]:
    """The 80-byte card images of a header, split in C (slicing in Python costs more)."""
    n = len(raw) // CARD
    splitter = _SPLITTERS.get(n)
    if splitter is None:
        splitter = _SPLITTERS[n] = struct.Struct(f"{CARD}s" * n)
    return splitter.unpack(raw)


def parse_cards(raw: bytes) -> tuple[list[Card], list[str]]:
    """Parse a header's cards (END excluded) into ``Card``s, with warnings for odd ones.

    Cards met before come from the cache in one C loop; only headers holding a long string
    or a value that is not FITS take the careful pass, card by card.
    """
    images = _split(raw)
    cards = list(map(_CARD_CACHE.get, images))
    if None in cards:
        cards = [card or _new_card(image) for image, card in zip(images, cards)]
    if _ODD_CARDS.keys().isdisjoint(images):
        return cards, []
    return _careful_pass(images, cards)


def _careful_pass(images: tuple[bytes, ...], parsed: list[Card]) -> tuple[list[Card], list[str]]:
    """Merge CONTINUE cards into the long strings they extend; report values that are not FITS."""
    cards: list[Card] = []
    warnings: list[str] = []
    continuing = False  # the previous card was a string ending in '&'
    for image, card in zip(images, parsed):
        if card.keyword == "CONTINUE" and continuing and cards:
            # A long string: astropy shows it as one card, and so do we.
            value, comment, raw, is_string = _split_value_comment(image[8:].decode("latin-1"))
            prev = cards[-1]
            joined_comment = " ".join(c for c in (prev.comment, comment) if c)
            merged = prev.value[:-1] + (value if isinstance(value, str) else str(value))
            cards[-1] = Card(prev.keyword, merged, joined_comment, prev.raw + " " + raw)
            continuing = is_string and merged.endswith("&")
            continue
        if type(card.value) is UnparsableValue:
            warnings.append(
                f"card {len(cards) + 1} ({card.keyword}): value {card.raw!r} is not valid FITS"
            )
        cards.append(card)
        continuing = _ODD_CARDS.get(image, False)
    return cards, warnings


_KEYWORD, _VALUE = itemgetter(0), itemgetter(1)


def first_values(cards: list[Card]) -> dict[str, Any]:
    """Keyword -> value of the first card with that keyword, commentary cards left out."""
    backwards = cards[::-1]
    values = dict(zip(map(_KEYWORD, backwards), map(_VALUE, backwards)))  # in C: every HDU
    for keyword in COMMENTARY:
        values.pop(keyword, None)
    return values


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
