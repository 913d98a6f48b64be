"""Exceptions of the pure calibration code.

The domain code raises these; the DIRAC shell (service, worker, scripts) turns them into
``S_ERROR`` with the same message, so a message must say what is wrong and what to do.
"""


class ProcedureError(Exception):
    """Any refusal or failure of the calibration procedure."""


class SettingsError(ProcedureError):
    """Calibration settings or inputs that cannot be used."""


class SteeringError(ProcedureError):
    """A Marlin steering file that cannot be read, or lacks what the calibration needs."""


class SummaryError(ProcedureError):
    """A worker result (summary) that is malformed, oversized or for another phase."""


class FitError(ProcedureError):
    """A distribution from which no trustworthy peak could be extracted."""


class StateError(ProcedureError):
    """A request that the calibration's status does not allow (e.g. resuming a running one)."""
