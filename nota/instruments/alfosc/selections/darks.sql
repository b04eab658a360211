-- Dark frames: the shutter closed for an exposure, the dark current and hot pixels to subtract.
kind = 'dark' AND (:night IS NULL OR night = :night)
