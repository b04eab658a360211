"""From a profile's checked TOML to a ``Profile``: defaults filled, filters resolved.

Kept apart from the checks (``validate``) so the rules of the language and the shape of
the result can each be read on their own.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from nota.instruments.profile import DEFAULT_EMPTY_NAMES, Filter, KindRule, Profile, parse_filter_table
from nota.instruments.validate import filter_table_path, parse_profile_text

__all__ = ["read_profile_text", "text_digest"]


def text_digest(text: str) -> str:
    """The profile's identity in the archive: sha256 of its text, 16 hex digits."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _tuple(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _kind_rule(raw: dict[str, Any]) -> KindRule:
    fields = dict(raw)
    header = tuple((str(k), str(v)) for k, v in fields.pop("header", {}).items())
    return KindRule(**fields, header=header)


def _named_filter(name: str, spec: Any) -> Filter:
    """A filter known only by name: a speclite curve or a top-hat of centre and width."""
    if isinstance(spec, str):
        return Filter(None, name, name, None, None, None, passband=spec)
    peak = spec.get("peak_transmission")
    return Filter(None, name, name, float(spec["centre_nm"]), float(spec["fwhm_nm"]),
                  None if peak is None else float(peak))


def _filters(raw: dict[str, Any], folder: Path) -> tuple[dict[int, Filter], dict[str, Filter]]:
    """(wheel-id table, named filters); table rows whose short name has a speclite passband
    get it, so B, V, R of a NOT table are Bessell curves when the profile says so."""
    passbands = raw.get("passbands", {})
    table: dict[int, Filter] = {}
    if raw.get("table"):
        table = parse_filter_table(filter_table_path(raw["table"], folder).read_text())
        for fid, filt in table.items():
            spec = passbands.get(filt.short_name.strip())
            if isinstance(spec, str):
                table[fid] = replace(filt, passband=spec)
    named = {name: _named_filter(name, spec) for name, spec in passbands.items()}
    return table, named


def _profile(raw: dict[str, Any], key: str, source: str, text: str) -> Profile:
    instrument = raw["instrument"]
    keywords = {k: _tuple(v) for k, v in raw.get("keywords", {}).items()}
    required = keywords.pop("required", ())
    filters = raw.get("filters", {})
    table, named = _filters(filters, Path(source).parent)
    empty = filters.get("empty_names")
    empty_names = DEFAULT_EMPTY_NAMES if empty is None else frozenset(n.strip().lower() for n in _tuple(empty))
    return Profile(
        key=key,
        name=instrument["name"],
        telescope=instrument.get("telescope", ""),
        match=dict(instrument.get("match", {})),
        site=dict(raw.get("site", {})),
        detector=dict(raw.get("detector", {})),
        keywords=keywords,
        required_keywords=required,
        filter_wheels=_tuple(filters.get("wheels", ())),
        filter_wheel_names=_tuple(filters.get("wheel_names", ())),
        empty_filter_ids=frozenset(int(i) for i in filters.get("empty_ids", ())),
        filters=table,
        kinds=tuple(_kind_rule(rule) for rule in raw.get("kinds", ())),
        standards=dict(raw.get("standards", {})),
        qc=dict(raw.get("qc", {})),
        groups=dict(raw.get("groups", {})),
        reduce=dict(raw.get("reduce", {})),
        photometry=dict(raw.get("photometry", {})),
        fallback=dict(instrument.get("fallback", {})),
        filter_keywords=_tuple(filters.get("keyword", ())),
        filter_aliases={str(k).strip().lower(): v for k, v in filters.get("aliases", {}).items()},
        named_filters=named,
        empty_filter_names=empty_names,
        source=source,
        digest=text_digest(text),
        text=text,
    )


def read_profile_text(text: str, source: str, key: str | None = None) -> Profile:
    """A checked Profile from a TOML text; ``source`` names the file in every message and
    places the profile's selections and filter table; ``key`` defaults to the file's stem."""
    raw = parse_profile_text(text, source)
    return _profile(raw, key or Path(source).stem, source, text)
