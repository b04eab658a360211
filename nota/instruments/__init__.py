"""Instrument profiles: what nota knows about a camera, read from a TOML file.

The profile, not the code, says where a camera writes its filter, what kind of frame a
file is, its sections, gain and saturation. Profiles are found in ``NOTA_PROFILES``, the
user's config directory and beside this module (``search``), checked on load
(``validate``) and read into frozen dataclasses (``profile``); ``alfosc.toml`` is the
worked example of every key, ``generic.toml`` the fallback for the common small-observatory
convention (MaxIm DL, N.I.N.A., ACP, SGP).
"""

from __future__ import annotations

from nota.instruments.profile import (
    KINDS,
    NON_IMAGING_KINDS,
    Filter,
    KindRule,
    Profile,
    read_filter_table,
)
from nota.instruments.read import read_profile_text
from nota.instruments.search import (
    available_profiles,
    load_profile,
    load_profile_file,
    load_profiles,
    profile_dirs,
    profile_for_header,
    profile_if_any,
    profile_named,
    profile_paths,
)

__all__ = [
    "KINDS",
    "NON_IMAGING_KINDS",
    "Filter",
    "KindRule",
    "Profile",
    "available_profiles",
    "load_profile",
    "load_profile_file",
    "load_profiles",
    "profile_dirs",
    "profile_for_header",
    "profile_if_any",
    "profile_named",
    "profile_paths",
    "read_filter_table",
    "read_profile_text",
]
