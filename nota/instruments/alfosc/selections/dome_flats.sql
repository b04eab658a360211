-- Dome flats of a night and filter: OBJECT says 'Dome Flat' (the lecture's object ~ 'flat').
kind = 'dome_flat' AND (:night IS NULL OR night = :night) AND (:filter IS NULL OR filter = :filter)
