"""Step parameters: frozen dataclasses built from the profile and the command line.

Every step's parameters are a frozen dataclass, so a misspelt key in a profile is an error
naming it instead of a silently different product. The recipe key of a product hashes its
step, the step's version, its parameters and its inputs' hashes: a changed parameter
changes exactly the keys of the products made with it (and of what is made from them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Iterable, Mapping

from nota.settings import build

__all__ = ["build", "as_dict", "recipe_key"]

def as_dict(params: Any) -> dict[str, Any]:
    """A parameters dataclass (nested ones included) as plain JSON-able values."""
    return json.loads(json.dumps(dataclasses.asdict(params), sort_keys=True, default=str))


def recipe_key(step: str, version: int, params: Any, inputs: Iterable[str], needs: Mapping[str, str]) -> str:
    """The product's id: its step, version, parameters, raw inputs' content and needed products' keys."""
    text = json.dumps(
        {"step": step, "version": version, "params": as_dict(params), "inputs": sorted(inputs),
         "needs": dict(needs)},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]
