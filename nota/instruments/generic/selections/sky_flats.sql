-- Twilight flats of a night and filter: IMAGETYP 'Flat Field' or FLAT; preferred to dome flats.
kind = 'sky_flat' AND (:night IS NULL OR night = :night) AND (:filter IS NULL OR filter = :filter)
