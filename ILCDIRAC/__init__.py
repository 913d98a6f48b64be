"""ILCDIRAC: the iLCDirac extension of DIRAC, here carrying the CalibrationSystem."""


def extension_metadata():
    """Tell DIRAC how to load this extension (found through the ``dirac`` entry point)."""
    return {
        "primary_extension": True,
        "priority": 100,
        "setups": {},
        "default_setup": "",
    }
