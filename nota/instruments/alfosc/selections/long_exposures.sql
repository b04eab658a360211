-- Exposures longer than ten minutes (the lecture's first selection: EXPTIME > 600).
exptime > 600
