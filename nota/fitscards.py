"""One header card: its 80 characters as keyword, typed value, comment and the value's text.

FITS allows strings (quotes doubled inside), logicals, integers, reals, complex numbers and
undefined values; long strings continue over CONTINUE cards, which are merged as astropy
merges them; a value FITS does not allow is kept verbatim and reported. Most cards repeat
exactly from file to file of a night, so each distinct card image is parsed once.
``nota.fitsheader`` finds the cards of each HDU in a file.
"""

from __future__ import annotations

import re
import struct
from operator import itemgetter
from typing import Any, NamedTuple

CARD = 80
COMMENTARY = frozenset({"COMMENT", "HISTORY", ""})

__all__ = ["CARD", "COMMENTARY", "Card", "UnparsableValue", "parse_value", "parse_cards", "first_values"]


class Card(NamedTuple):
    """One header card as FITS writes it; ``value`` typed, ``raw`` the value text as found."""

    keyword: str
    value: Any
    comment: str
    raw: str


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
