(bracket.nc - engrave a 40 x 30 mm L-bracket outline and mark its two holes)
(GRBL 1.1, metric, absolute - work zero at the lower left corner of the blank, top face)
G21 G90 G17 G94
G54
M3 S10000
G0 Z5.000
G0 X0.000 Y0.000
G1 Z-0.200 F300
G1 X40.000 F800
G1 Y10.000
G1 X12.000
G1 Y30.000
G1 X0.000
G1 Y0.000
G0 Z5.000
(hole marks: a 0.3 mm plunge at each centre)
G0 X30.000 Y5.000
G1 Z-0.300 F300
G0 Z5.000
G0 X6.000 Y22.000
G1 Z-0.300 F300
G0 Z5.000
M5
G0 X0.000 Y0.000
M30
