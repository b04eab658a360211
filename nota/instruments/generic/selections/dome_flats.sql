-- Dome or panel flats of a night and filter: IMAGETYP says flat and OBJECT says dome or panel.
kind = 'dome_flat' AND (:night IS NULL OR night = :night) AND (:filter IS NULL OR filter = :filter)
