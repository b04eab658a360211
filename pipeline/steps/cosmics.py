"""Cosmic rays: L.A.Cosmic on each reduced frame, sparing stars (a stage of ``reduced``).

astroscrappy runs with the frame's own noise plane, gain and read noise, on small tiles
around the pixels that could pass its test (found by a cheap prefilter; stars among them
dropped first); every flagged group is then tested against a star profile at the frame's
FWHM, because undersampled stars look sharp enough to L.A.Cosmic to be taken for hits.
Cleaned pixels join MASK and are listed on their own in a ``CRMASK`` extension.
"""

from __future__ import annotations

import numpy as np

from nota.instruments import Profile
from nota.reduce.cosmics import CosmicsParameters, remove_cosmics
from nota.settings import build

NAME = "cosmics"
VERSION = 2  # 2: L.A.Cosmic on tiles around candidates, not on the whole frame

__all__ = ["NAME", "VERSION", "Params", "params_for", "clean_cosmic_rays"]

Params = CosmicsParameters  # the settings of ``nota.reduce.cosmics.remove_cosmics``


def params_for(profile: Profile, options) -> Params | None:
    """The profile's ``[reduce.cosmics]`` over nota's defaults; None when cleaning is off
    (``--no-cosmics``, or ``clean = false``)."""
    settings = dict(profile.reduce.get("cosmics", {}))
    clean = settings.pop("clean", True)
    if not options.cosmics or not clean:
        return None
    return build(Params, settings, where=f"profile {profile.key}.toml [reduce.cosmics]")


def clean_cosmic_rays(frame) -> None:
    """The frame's stage: clean, count (NCOSMIC), keep the map of what was cleaned (CRMASK)."""
    p = frame.params
    if p.cosmics is None:
        return
    ccd = frame.ccd
    before = np.zeros(ccd.shape, bool) if ccd.mask is None else np.asarray(ccd.mask, bool)
    cleaned, n = remove_cosmics(ccd, gain=p.gain, read_noise=p.read_noise, saturation=p.saturation, params=p.cosmics)
    frame.ccd = cleaned
    frame.planes["CRMASK"] = np.asarray(cleaned.mask, bool) & ~before
    frame.figures["cosmic_pixels"] = n
    frame.header["NCOSMIC"] = (n, "pixels cleaned of cosmic rays (CRMASK)")
    c = p.cosmics
    frame.history.append(f"nota: L.A.Cosmic sigclip={c.sigclip} objlim={c.objlim} niter={c.niter},"
                         f" stars spared: {n} px cleaned (CRMASK)")
