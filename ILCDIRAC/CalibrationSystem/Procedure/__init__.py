"""Pure domain code of the Pandora calibration: plain Python and numpy, no DIRAC, DB or network."""
