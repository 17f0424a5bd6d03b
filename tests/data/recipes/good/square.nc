(square.nc - a 10 mm square at the work zero, for the recipe tests)
G21 G90 G17 G94
G0 Z2
G0 X0 Y0
G1 Z-0.1 F200
G1 X10 F600
G1 Y10
G1 X0
G1 Y0
G0 Z2
M30
