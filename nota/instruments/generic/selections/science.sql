-- Light frames: the targets of the night.
kind = 'science' AND (:night IS NULL OR night = :night) AND (:filter IS NULL OR filter = :filter)
