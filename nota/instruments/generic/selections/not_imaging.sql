-- Frames kept out of imaging reduction: spectra (through a grism), arcs, N.I.N.A. snapshots, and frames no rule recognised.
kind IN ('spectrum', 'arc', 'ignored', 'unknown') AND (:night IS NULL OR night = :night)
