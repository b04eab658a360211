-- Light frames of spectrophotometric standard stars (OBJECT names one), for the photometric calibration.
kind = 'standard' AND (:night IS NULL OR night = :night) AND (:filter IS NULL OR filter = :filter)
