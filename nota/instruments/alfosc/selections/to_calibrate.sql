-- Frames that get a master bias and a master flat: standards and science exposures.
kind IN ('standard', 'science') AND (:night IS NULL OR night = :night)
