-- Twilight sky flats of a night and filter: OBJECT says 'Sky Flat'; preferred to dome flats.
kind = 'sky_flat' AND (:night IS NULL OR night = :night) AND (:filter IS NULL OR filter = :filter)
