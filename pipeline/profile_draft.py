"""``nota profile draft``: a starting profile from a camera's real headers.

Writing a profile from nothing means knowing which of a dozen keyword conventions one's
camera software follows. The headers already say: this module looks for the common
conventions (MaxIm DL / N.I.N.A. / ACP / SGP, IRAF's OBSTYPE, ESO's DPR keywords), says
which it found, which kind each frame-type value suggests, and the detector's shape and
binning; ``nota.pipeline.profile_toml`` writes that as a commented TOML profile which is
read back through the profile checker before it is written.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nota.errors import NotaError
from nota.instruments.profile import header_value, value_text
from nota.instruments.values import binning, number
from nota.pipeline.profile_tools import FrameHeader, read_headers

__all__ = ["CONVENTIONS", "Draft", "Survey", "survey_frames", "suggest_kind", "frame_binning", "draft_profile"]

# What a profile reads -> the keywords of the common conventions, in the order a profile
# should try them (the first present in a frame wins).
CONVENTIONS: dict[str, tuple[str, ...]] = {
    "imagetyp": ("IMAGETYP", "OBSTYPE", "FRAMETYP", "HIERARCH ESO DPR TYPE"),
    "technique": ("HIERARCH ESO DPR TECH",),
    "object": ("OBJECT",),
    "filter": ("FILTER", "FILTERS", "FILTER1", "HIERARCH ESO INS FILT1 NAME"),
    "exptime": ("EXPTIME", "EXPOSURE", "EXPOS", "ITIME"),
    "date_obs": ("DATE-OBS", "DATE_OBS"),
    "time_obs": ("TIME-OBS", "UT", "UTSTART"),
    "airmass": ("AIRMASS", "SECZ"),
    "xbin": ("XBINNING", "HIERARCH ESO DET WIN1 BINX"),
    "ybin": ("YBINNING", "HIERARCH ESO DET WIN1 BINY"),
    "binning": ("BINNING", "CCDSUM"),
    "ccd_temp": ("CCD-TEMP", "CCDTEMP", "SET-TEMP"),
    "gain": ("EGAIN", "GAIN"),
    "read_noise": ("RDNOISE", "READNOIS", "RON"),
    "ra": ("OBJCTRA", "RA"),
    "dec": ("OBJCTDEC", "DEC"),
    "site_latitude": ("SITELAT", "LAT-OBS"),
    "site_longitude": ("SITELONG", "LONG-OBS"),
    "focal_length": ("FOCALLEN",),
    "pixel_size": ("XPIXSZ",),
    "sections": ("TRIMSEC", "BIASSEC", "DATASEC"),
    "instrument": ("INSTRUME", "TELESCOP", "OBSERVAT", "SITEELEV"),
    "software": ("SWCREATE", "PROGRAM", "CREATOR", "SOFTWARE"),
    "saturation": ("SATURATE", "DATAMAX"),
    "grating": ("GRATING",),
}

# Frame-type words -> kind, first match wins (MaxIm/N.I.N.A./ACP/SGP, IRAF, ESO DPR TYPE).
# "flat" alone is a flat of unknown origin: a sky flat unless its OBJECT says dome.
KIND_WORDS: tuple[tuple[str, str], ...] = (
    (r"dark\s*flat|flat\s*dark", "dark"),
    (r"bias|zero|offset", "bias"),
    (r"dark", "dark"),
    (r"flat.*(sky|twilight)|(sky|twilight).*flat", "sky_flat"),
    (r"flat.*(dome|lamp|screen|panel)|(dome|lamp|screen|panel).*flat", "dome_flat"),
    (r"flat", "flat"),
    (r"arc|comp|wave|lamp|thar|hear|neon", "arc"),
    (r"focus", "focus"),
    (r"snapshot|test|acq", "ignored"),
    (r"\bstd\b|standard", "standard"),
    (r"light|object|science|\bsci\b", "science"),
)
DOME_OBJECT = r"dome|panel|screen|light\s*box"
GRISM = r"grism|grating|star\s*analy[sz]er|^sa-?\d{2,3}$"
NOT_GRATING = r"^(none|open|mirror|clear|empty)?$"
NINA = r"n\.?i\.?n\.?a"


def _present(header: dict[str, Any], keyword: str) -> bool:
    value = header_value(header, keyword)
    return value is not None and value != ""


@dataclass
class Survey:
    """What the frames' headers hold: per keyword of the conventions, frames and values."""

    frames: list[FrameHeader]
    found: dict[str, int] = field(default_factory=dict)  # keyword -> frames carrying it
    values: dict[str, Counter] = field(default_factory=dict)  # keyword -> value text counts
    comments: dict[str, str] = field(default_factory=dict)  # keyword -> a card comment

    def keywords(self, fact: str) -> list[str]:
        """The convention's keywords for ``fact`` that some frame carries, in reading order."""
        return [k for k in CONVENTIONS[fact] if self.found.get(k)]

    def numbers(self, keyword: str, read=number) -> list[float]:
        return [v for f in self.frames if (v := read(header_value(f.header, keyword))) is not None]

    def first_value(self, frame: FrameHeader, fact: str) -> tuple[str | None, str | None]:
        """(keyword, value text) of the first of the fact's keywords present in the frame."""
        for keyword in self.keywords(fact):
            if _present(frame.header, keyword):
                return keyword, value_text(header_value(frame.header, keyword))
        return None, None


def survey_frames(frames: list[FrameHeader]) -> Survey:
    """Count every convention keyword the frames carry and the values written in it."""
    survey = Survey(frames)
    for keyword in {k for keys in CONVENTIONS.values() for k in keys}:
        texts = [value_text(header_value(f.header, keyword)) for f in frames if _present(f.header, keyword)]
        if texts:
            survey.found[keyword] = len(texts)
            survey.values[keyword] = Counter(texts)
            survey.comments[keyword] = next((f.comments.get(keyword, "") for f in frames
                                             if f.comments.get(keyword)), "")
    return survey


def type_word_kind(value: str | None) -> str | None:
    """The kind a frame-type value suggests by its words ('flat' for a flat of either kind)."""
    for pattern, kind in KIND_WORDS:
        if value and re.search(pattern, value, re.IGNORECASE):
            return kind
    return None


def is_grism(value: str | None) -> bool:
    return bool(value) and re.search(GRISM, value, re.IGNORECASE) is not None


def is_spectroscopic_technique(value: str | None) -> bool:
    return bool(value) and not re.match(r"image", value, re.IGNORECASE)


def is_grating(value: str | None) -> bool:
    return value is not None and re.match(NOT_GRATING, value.strip(), re.IGNORECASE) is None


def suggest_kind(frame: FrameHeader, survey: Survey, standards: dict[str, str]) -> str | None:
    """The kind a frame's values suggest, in the order the drafted rules test them: bias and
    dark, arc, spectrum (DPR TECH, a grism in the filter keyword, a GRATING), flats, focus,
    ignored, standard, science; None when nothing says."""
    kind = type_word_kind(survey.first_value(frame, "imagetyp")[1])
    if kind in ("bias", "dark", "arc"):
        return kind
    if is_spectroscopic_technique(survey.first_value(frame, "technique")[1]):
        return "spectrum"
    if any(is_grism(value_text(header_value(frame.header, k))) for k in survey.keywords("filter")
           if _present(frame.header, k)):
        return "spectrum"
    if is_grating(survey.first_value(frame, "grating")[1]):
        return "spectrum"
    obj = survey.first_value(frame, "object")[1] or ""
    if kind == "flat":
        return "dome_flat" if re.search(DOME_OBJECT, obj, re.IGNORECASE) else "sky_flat"
    if kind == "science" and any(re.search(p, obj, re.IGNORECASE) for p in standards.values()):
        return "standard"
    return kind


def frame_binning(frame: FrameHeader) -> tuple[int, int]:
    """(xbin, ybin) as the conventions write it: XBINNING/YBINNING (ESO's DET WIN1 BINX/Y),
    else BINNING or CCDSUM."""
    header = frame.header
    xbin = next((b for k in CONVENTIONS["xbin"] if (b := number(header.get(k))) is not None), None)
    ybin = next((b for k in CONVENTIONS["ybin"] if (b := number(header.get(k))) is not None), None)
    if xbin is None and ybin is None:
        for keyword in CONVENTIONS["binning"]:
            both = binning(header.get(keyword))
            if both is not None:
                return both
    return int(xbin or 1), int(ybin or xbin or 1)


def frame_shape(frame: FrameHeader) -> tuple[int, int] | None:
    """(NAXIS1, NAXIS2) of the image (ZNAXISn for a tile-compressed one)."""
    header = frame.header
    n1 = number(header.get("ZNAXIS1", header.get("NAXIS1")))
    n2 = number(header.get("ZNAXIS2", header.get("NAXIS2")))
    return (int(n1), int(n2)) if n1 and n2 else None


def detector_shape(frames: list[FrameHeader]) -> tuple[int, int] | None:
    """The unbinned detector: the largest NAXIS1 and NAXIS2 times their frame's binning."""
    sizes = []
    for frame in frames:
        shape, (xbin, ybin) = frame_shape(frame), frame_binning(frame)
        if shape:
            sizes.append((shape[0] * xbin, shape[1] * ybin))
    return (max(s[0] for s in sizes), max(s[1] for s in sizes)) if sizes else None


def gain_choice(survey: Survey) -> tuple[str | None, str, str]:
    """(gain keyword, unit, why): EGAIN when written; GAIN unless it is N.I.N.A.'s (or an
    ASCOM driver's) gain setting; else none."""
    if survey.found.get("EGAIN"):
        why = "EGAIN: e-/ADU in the MaxIm/N.I.N.A. convention"
        if survey.found.get("GAIN"):
            why += "; GAIN is also written (the sensor's gain setting, not read)"
        return "EGAIN", "e/adu", why
    if not survey.found.get("GAIN"):
        return None, "e/adu", "no gain keyword: the detector's gain below is used"
    software = " ".join(str(k) for key in CONVENTIONS["software"] for k in survey.values.get(key, {}))
    comment = survey.comments.get("GAIN", "")
    if re.search(NINA, software, re.IGNORECASE) or re.search(r"setting", comment, re.IGNORECASE):
        return None, "e/adu", "GAIN is N.I.N.A.'s gain setting, not e-/ADU: not read"
    unit = "adu/e" if re.search(r"adu\s*/\s*e", comment, re.IGNORECASE) else "e/adu"
    return "GAIN", unit, f"GAIN ({comment.strip() or 'no comment'}): read as {unit}"


def median_or(values: list[float], default: float | None) -> float | None:
    return round(statistics.median(values), 4) if values else default


@dataclass
class Draft:
    """A drafted profile: what was found in the headers, and the TOML text written."""

    path: str
    frames: int
    conventions: list[dict[str, Any]]
    frame_types: list[dict[str, Any]]
    kinds: dict[str, int]
    shape: tuple[int, int] | None
    binnings: dict[str, int]
    instrument: list[str]
    notes: list[str]
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("path", "frames", "conventions", "frame_types", "kinds", "shape",
                                              "binnings", "instrument", "notes", "text")}


def _conventions(survey: Survey) -> list[dict[str, Any]]:
    rows = []
    for fact, keywords in CONVENTIONS.items():
        for keyword in keywords:
            if survey.found.get(keyword):
                values = [v for v, _ in survey.values[keyword].most_common(6)]
                rows.append({"fact": fact, "keyword": keyword, "frames": survey.found[keyword], "values": values})
    return rows


def _frame_types(survey: Survey) -> list[dict[str, Any]]:
    rows = []
    for keyword in survey.keywords("imagetyp"):
        for value, count in survey.values[keyword].most_common():
            rows.append({"keyword": keyword, "value": value, "frames": count, "suggests": type_word_kind(value)})
    return rows


def draft_profile(frames_or_dirs: list[str | Path], out: str | Path) -> Draft:
    """Survey the headers of the frames (files or directories), write a commented profile
    to ``out`` (never over an existing file) and return what was found."""
    from nota.pipeline.profile_toml import profile_text, verified

    out = Path(out)
    if out.exists():
        raise NotaError(f"{out} exists: not overwritten (choose another --out or remove it)")
    frames, skipped = read_headers(frames_or_dirs)
    if not frames:
        raise NotaError("no FITS frame among " + ", ".join(str(p) for p in frames_or_dirs))
    survey = survey_frames(frames)
    text, standards, notes = profile_text(survey, out.stem)
    verified(text, out)
    try:
        with open(out, "x") as stream:
            stream.write(text)
    except OSError as exc:
        raise NotaError(f"{out}: cannot write the profile: {exc.strerror or exc}") from None
    notes += [f"skipped {s['file']}: {s['problem']}" for s in skipped]
    kinds = Counter(suggest_kind(f, survey, standards) or "unknown" for f in frames)
    binnings = Counter("{}x{}".format(*frame_binning(f)) for f in frames)
    instrument = [v for v, _ in survey.values.get("INSTRUME", Counter()).most_common()]
    return Draft(str(out), len(frames), _conventions(survey), _frame_types(survey), dict(kinds.most_common()),
                 detector_shape(frames), dict(binnings), instrument, notes, text)
