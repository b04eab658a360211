"""A simulated NOT/ALFOSC run: raw frames that look and behave like the April 2008 nights.

``simulate_run`` writes nights of raw frames (the lecture's night 1, quirks included) with a
truth directory beside each night, so every later step can be checked against what made
the pixels. ``load_truth`` reads that truth back. ``simulate_run(camera="generic")`` writes
a small observatory's cooled CMOS camera instead (``nota.simulate.generic``).
"""

from nota.simulate.run import CAMERAS, NightSummary, simulate_run
from nota.simulate.truth import load_truth

__all__ = ["CAMERAS", "NightSummary", "load_truth", "simulate_run"]
