"""Header values as cameras write them: numbers, sexagesimal angles, binnings, dates.

Every camera software spells the same fact its own way ('18 01 03' or 271.26 for an RA,
'2x2' or two keywords for a binning, -1.79769313486232E+308 for "no temperature"), so the
readings live here once, as pure functions that answer None for what they cannot read.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

__all__ = ["number", "positive", "angle", "sexagesimal", "temperature", "binning", "parse_date_obs"]

_SEPARATORS = re.compile(r"[\s:hmsdHMSD°'\"]+")
_EXTRA_DECIMALS = re.compile(r"(\.\d{6})\d+$")
# Dates strptime's formats below read and fromisoformat reads the same way, 30 times quicker
# (strptime also takes one-digit fields, and fromisoformat more than these, so both stay).
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?)?\Z")
_UNSET = -1.0e300  # below this a value is a "not set" marker (-DBL_MAX), not a measurement


def number(value: Any) -> float | None:
    """A finite number from a header value (numbers, or text holding one); else None."""
    kind = type(value)
    if kind is float:  # most values: no isinstance chain (ingest reads 15 a frame)
        return value if math.isfinite(value) else None
    if kind is int or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        try:
            result = float(value)
        except OverflowError:  # an integer of 400 digits is no measurement
            return None
        return result if math.isfinite(result) else None
    if isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
        return result if math.isfinite(result) else None
    return None


def positive(value: Any) -> float | None:
    """A number above zero (a gain of 0 is a camera's way of not knowing); else None."""
    result = number(value)
    return result if result is not None and result > 0 else None


def sexagesimal(text: str) -> float | None:
    """'-12 59 59', '12:30:00.5', '03h04m09.7s', '-22:57:08:99' (hundredths as a fourth
    field) as a decimal number of the first field's unit; None when it is no such text."""
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    fields = [f for f in _SEPARATORS.split(body.lstrip("+-")) if f]
    if not 1 <= len(fields) <= 4:
        return None
    if len(fields) == 4:
        fields = [fields[0], fields[1], f"{fields[2]}.{fields[3]}"]
    try:
        parts = [float(f) for f in fields]
    except ValueError:
        return None
    if any(p < 0 for p in parts) or any(p >= 60 for p in parts[1:]):
        return None
    return sign * sum(p / 60 ** i for i, p in enumerate(parts))


def angle(value: Any, hours: bool = False) -> float | None:
    """An angle in degrees: numbers are degrees; text with several fields is sexagesimal, in
    hours when ``hours`` (an RA); text holding one number is degrees."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        plain = number(text)
        if plain is not None:
            return plain
        parsed = sexagesimal(text)
        return None if parsed is None else parsed * (15.0 if hours else 1.0)
    return number(value)


def temperature(value: Any) -> float | None:
    """A detector temperature; NaN and the -1.79769313486232E+308 'unset' marker are unknown."""
    result = number(value)
    return None if result is None or result < _UNSET else result


def binning(value: Any) -> tuple[int, int] | None:
    """'2x2', '1 2' (CCDSUM), '2' or 2 as (xbin, ybin); None when unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (int(value), int(value)) if value >= 1 else None
    if not isinstance(value, str):
        return None
    fields = [f for f in re.split(r"[\sx×,*]+", value.strip().lower()) if f]
    if not fields or len(fields) > 2 or not all(f.isdigit() and int(f) >= 1 for f in fields):
        return None
    return int(fields[0]), int(fields[-1])


def parse_date_obs(value: Any, time: Any = None) -> datetime | None:
    """A FITS DATE-OBS ('2008-04-12T20:31:31.94' or '2008-04-12') as an aware UTC datetime;
    ``time`` ('00:57:33', a TIME-OBS or UT card) completes a date written without one."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().rstrip("Z")
    if "T" not in text and isinstance(time, str) and time.strip():
        text = f"{text}T{time.strip()}"
    text = _EXTRA_DECIMALS.sub(r"\1", text)  # more decimals than datetime reads
    if _ISO_DATE.match(text):  # the common spelling: read in C, as strptime would read it
        try:
            return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
        except ValueError:  # no such day or time (2008-02-30): strptime says so too
            return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None
