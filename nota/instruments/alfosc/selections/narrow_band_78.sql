-- Everything taken through NOT filter #78 ([NII] 658_4) in FASU wheel B: the lecture's FBFLTID == 78, on the raw keyword.
header('FBFLTID') = 78
