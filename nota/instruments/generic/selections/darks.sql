-- The night's darks: IMAGETYP 'Dark Frame', DARK, or DARKFLAT (the flats' darks), of any exposure time.
kind = 'dark' AND (:night IS NULL OR night = :night)
