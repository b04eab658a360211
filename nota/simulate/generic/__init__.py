"""A second simulated camera: a cooled CMOS sensor at a small observatory (N.I.N.A./MaxIm DL).

Why: ALFOSC needs no darks and writes its own keywords; most cameras users bring are
cooled CMOS sensors whose programs write the MaxIm DL / N.I.N.A. convention. This night
has biases, darks at several exposures and temperatures, twilight flats with their dark
flats, lights in named filters, a standard and grism spectra, with a truth directory
(``N1/truth/``) that rebuilds every frame's dark current and light.
"""

from nota.simulate.generic.run import FOLDERS, simulate_generic
from nota.simulate.generic.truth import frame_truth, true_dark, true_light, truth_map

__all__ = ["FOLDERS", "frame_truth", "simulate_generic", "true_dark", "true_light", "truth_map"]
