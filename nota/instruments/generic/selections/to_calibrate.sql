-- Frames that get a master bias, dark and flat: standards and light frames.
kind IN ('standard', 'science') AND (:night IS NULL OR night = :night)
