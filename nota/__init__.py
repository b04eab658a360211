"""nota: an archive and reducer for CCD imaging nights.

``nota.archive`` indexes raw frames and records provenance in SQLite; ``nota.reduce`` turns
raw frames into calibrated products; ``nota.simulate`` writes realistic nights to try both on.
"""

__version__ = "0.1.0"
