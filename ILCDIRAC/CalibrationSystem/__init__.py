"""The PandoraPFA calorimeter calibration as a DIRAC system."""
