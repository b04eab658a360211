-- The night's bias frames: IMAGETYP 'Bias Frame', BIAS, Offset or Zero.
kind = 'bias' AND (:night IS NULL OR night = :night)
