-- Exposures of spectrophotometric standard stars (HZ 44, BD+75 325, Feige 34), for the photometric calibration.
kind = 'standard' AND (:night IS NULL OR night = :night) AND (:filter IS NULL OR filter = :filter)
