-- The night's bias frames: zero-second exposures, IMAGETYP BIAS (the lecture's files_filtered(imagetyp='bias')).
kind = 'bias' AND (:night IS NULL OR night = :night)
