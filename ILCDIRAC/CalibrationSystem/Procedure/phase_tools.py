"""Input checks and bookkeeping that the phase modules share, so that every phase refuses bad
columns, settings, constants and summaries the same way.

Messages name the phase by its label ('phase 1 (HCalDigi)'), which each phase module passes as a
string: phases.phase_label cannot be used there, since phases.py imports the phase modules.
"""
import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError, ProcedureError, SettingsError, SummaryError


def pfo_columns(columns, names, label):
    """The PfoAnalysis columns ``names`` as arrays; ProcedureError unless all exist, are 1-D and of equal length.

    :param dict columns: the worker's PfoAnalysis columns
    :param names: the column names the phase needs
    :param str label: the phase's label, for messages
    :return: {name: numpy array}
    """
    missing = [name for name in names if name not in columns]
    if missing:
        raise ProcedureError(f"PfoAnalysis columns {missing} are missing; {label} needs {list(names)}")
    data = {name: np.asarray(columns[name]) for name in names}
    shapes = {name: array.shape for name, array in data.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 1:
        raise ProcedureError(f"PfoAnalysis columns must be 1-D arrays of equal length, got shapes {shapes}")
    return data


def cos_theta_range(settings, key):
    """(low, high) of the ``|cos θ|`` range setting ``key``; SettingsError unless it is two numbers.

    :param dict settings: the calibration settings
    :param str key: e.g. 'ecalBarrelCosThetaRange'
    :return: (low, high) as floats
    """
    value = settings.get(key)
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SettingsError(f"Setting {key} must be a list [low, high] of two numbers, got {value!r}") from None
    return low, high


def abs_cos_theta(column):
    """``|cos θ|`` in the column's own float precision (float64 for an integer column).

    Angular limits are then compared in that precision, so that a float32 angle written from a
    limit (0.65 -> 0.64999998) stays on the (excluded) boundary.

    :param column: the pfoTargetCosTheta0 column
    :return: numpy array
    """
    cos_theta = np.abs(column)
    if cos_theta.dtype.kind != "f":
        cos_theta = cos_theta.astype(np.float64)
    return cos_theta


def split_by_angle(energy, contained, cos_theta, settings, region_settings):
    """float32 ``energy`` of the ``contained`` events per region, {region: range setting}, whose
    ``|cos θ|`` (from ``abs_cos_theta``) lies strictly inside the region's range.

    :param energy: the events' energies
    :param contained: boolean array, the events that passed the phase's other cuts
    :param cos_theta: the events' ``|cos θ|`` (abs_cos_theta)
    :param dict settings: the calibration settings
    :param dict region_settings: {region: name of its cos(theta) range setting}
    :return: {region: float32 array of the selected energies}
    """
    precision = cos_theta.dtype.type
    regions = {}
    for region, key in region_settings.items():
        low, high = cos_theta_range(settings, key)
        inside = contained & (cos_theta > precision(low)) & (cos_theta < precision(high))
        regions[region] = energy[inside].astype(np.float32)
    return regions


def positive_constant(constants, name, needed_by):
    """Constant ``name`` as a positive finite float; ProcedureError otherwise, ``needed_by`` saying
    why it must be there (e.g. 'phase 3 (ElectroMagEnergy) needs it').

    :param dict constants: the constants the step ran with
    :param str name: the constant
    :param str needed_by: the end of the error message
    :return: float
    """
    if name not in constants:
        raise ProcedureError(f"Constant {name} is missing; {needed_by}")
    try:
        value = float(constants[name])
    except (TypeError, ValueError):
        raise ProcedureError(f"Constant {name} must be a number, got {constants[name]!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise ProcedureError(f"Constant {name} must be a positive number, got {value}")
    return value


def gather(summaries, field, label):
    """All workers' values of ``field`` as one float64 array; SummaryError if a summary lacks it.

    :param list summaries: the decoded summaries of the step's workers
    :param str field: the summary field
    :param str label: the phase's label, for messages
    :return: float64 array
    """
    try:
        return np.concatenate([np.asarray(summary[field], dtype=np.float64).ravel() for summary in summaries])
    except KeyError:
        raise SummaryError(f"{label}: a worker summary has no field {field!r}") from None


def positive_peak(fit, values, accuracy, truth_energy, where):
    """``fit(values, accuracy, truth_energy)`` (the phase's histogram.fit_peak), its FitError prefixed
    with ``where`` (phase and distribution); FitError too if the peak is not positive, since the
    constants are divided by it.

    :param fit: histogram.fit_peak, or a function with its signature
    :param values: the selected energies
    :param float accuracy: relative bin width
    :param float truth_energy: the sample's energy (GeV)
    :param str where: phase and distribution, for messages
    :return: histogram.PeakFit
    """
    try:
        peak = fit(values, accuracy, truth_energy)
    except FitError as error:
        raise FitError(f"{where}: {error}") from error
    if not peak.mean > 0:
        raise FitError(f"{where}: peak at {peak.mean} GeV, cannot rescale by it")
    return peak


def peak_metrics(prefix, peak, target):
    """The metrics of a histogram.PeakFit, keys starting with ``prefix`` (e.g. 'barrelMean');
    the relative deviation is from ``target``.

    :param str prefix: e.g. 'barrel'
    :param peak: histogram.PeakFit
    :param float target: the energy the peak should be at
    :return: {name: float or str}
    """
    return {
        f"{prefix}Mean": peak.mean,
        f"{prefix}Sigma": peak.sigma,
        f"{prefix}Entries": float(peak.entries),
        f"{prefix}Bins": float(peak.n_bins),
        f"{prefix}WindowLow": peak.window_low,
        f"{prefix}WindowHigh": peak.window_high,
        f"{prefix}FitMethod": peak.method,
        f"{prefix}FitMessage": peak.message,
        f"{prefix}RelativeDeviation": (peak.mean - target) / target,
    }


def copy_constants(constants):
    """A copy of the constants whose lists are new lists, so that a phase's new constants never
    share a list with the ones it was given.

    :param dict constants: {name: float or list of floats}
    :return: dict
    """
    return {name: list(value) if isinstance(value, list) else value for name, value in constants.items()}
