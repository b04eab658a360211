"""Settings as frozen dataclasses: a profile's table becomes one, refusing keys it does not know.

A misspelt key in a profile (``sigclp = 4``) is an error naming it and the file, never a
setting silently ignored. The pipeline's step parameters and the archive's thresholds are
built the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

from nota.errors import ProfileError

__all__ = ["build"]

P = TypeVar("P")


def build(cls: type[P], settings: Mapping[str, Any], *, where: str, **fixed: Any) -> P:
    """``cls(**settings, **fixed)``, refusing a key ``cls`` has no field for.

    ``where`` names the settings for the message (``profile alfosc.toml [reduce.cosmics]``);
    ``fixed`` are fields the caller sets (from the frame, the command line): not settable.
    """
    names = [f.name for f in dataclasses.fields(cls) if f.name not in fixed]  # fixed: not settable
    unknown = sorted(set(settings) - set(names))
    if unknown:
        raise ProfileError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(names))})")
    try:
        return cls(**{**settings, **fixed})
    except TypeError as exc:
        raise ProfileError(f"{where}: {exc}") from None
