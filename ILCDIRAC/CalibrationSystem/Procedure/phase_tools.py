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
    """The metrics of a histogram.PeakFit, keys starting with ``prefix`` (e.g. 'barrelMean',
    'barrelMeanUncertainty', 'barrelChi2' and 'barrelNdf' for a Gaussian fit); the relative
    deviation is from ``target``, with its statistical uncertainty.

    :param str prefix: e.g. 'barrel'
    :param peak: histogram.PeakFit
    :param float target: the energy the peak should be at
    :return: {name: float or str}
    """
    metrics = {
        f"{prefix}Mean": peak.mean,
        f"{prefix}MeanUncertainty": peak.mean_error,
        f"{prefix}Sigma": peak.sigma,
        f"{prefix}Entries": float(peak.entries),
        f"{prefix}Bins": float(peak.n_bins),
        f"{prefix}WindowLow": peak.window_low,
        f"{prefix}WindowHigh": peak.window_high,
        f"{prefix}FitMethod": peak.method,
        f"{prefix}FitMessage": peak.message,
        f"{prefix}RelativeDeviation": (peak.mean - target) / target,
        f"{prefix}RelativeDeviationUncertainty": peak.mean_error / target,
    }
    if peak.chi2 is not None:
        metrics.update({f"{prefix}Chi2": peak.chi2, f"{prefix}Ndf": float(peak.ndf)})
    return metrics


def copy_constants(constants):
    """A copy of the constants whose lists are new lists, so that a phase's new constants never
    share a list with the ones it was given.

    :param dict constants: {name: float or list of floats}
    :return: dict
    """
    return {name: list(value) if isinstance(value, list) else value for name, value in constants.items()}


#: A phase's accuracy must span at least this many standard deviations of its measured quantity,
#: so that a deviation found below the accuracy is resolved and not a fluctuation.
STATISTICS_SIGMAS = 2.0


def worker_spread(estimates):
    """The spread of independent per-worker estimates as an uncertainty of their mean:
    std/sqrt(k) (k-1 in the std), or None with fewer than two estimates.

    :param estimates: one value per worker
    :return: float or None
    """
    estimates = np.asarray(estimates, dtype=np.float64)
    if estimates.size < 2:
        return None
    return float(estimates.std(ddof=1) / np.sqrt(estimates.size))


def worker_peak_spread(fit, summaries, field, accuracy, truth_energy):
    """worker_spread of the peaks ``fit`` finds in each worker's values of ``field``, those with
    too few values for a peak left out: a cross-check of the fit error of the combined peak.

    :param fit: histogram.fit_peak, or a function with its signature
    :param list summaries: the decoded summaries of the step's workers
    :param str field: the summary field
    :param float accuracy: relative bin width
    :param float truth_energy: the sample's energy (GeV)
    :return: float or None
    """
    means = []
    for summary in summaries:
        try:
            means.append(fit(np.asarray(summary[field], dtype=np.float64), accuracy, truth_energy).mean)
        except FitError:
            continue
    return worker_spread(means)


def relative_uncertainty(*relative):
    """Relative uncertainty of a product or quotient of independent quantities: the quadratic sum
    of theirs.

    :param relative: the relative uncertainties of the factors
    :return: float
    """
    return float(np.sqrt(np.sum(np.square(relative))))


def scaled_uncertainty(value, relative):
    """The absolute uncertainty of a constant (a float or the list of a vector constant) whose
    relative uncertainty is ``relative``, in the constant's shape.

    :param value: float or list of floats
    :param float relative: relative uncertainty
    :return: float or list of floats
    """
    if isinstance(value, list):
        return [abs(v) * relative for v in value]
    return abs(value) * relative


def statistics_verdict(deviation, uncertainty, accuracy, entries, what):
    """Whether a phase may stop iterating, and why its result is statistics-limited if it is.

    The measured ``deviation`` must be below ``accuracy``; the measurement must also be precise
    enough for that to mean something: STATISTICS_SIGMAS·``uncertainty`` <= ``accuracy``. When the
    deviation is within the accuracy but the uncertainty is not, more iterations cannot help (every
    step reconstructs the same events): the note says so and how many selected events would
    reach the accuracy (the uncertainty falls as 1/sqrt(n)).

    :param float deviation: the relative deviation of the phase's measured quantity from its target
    :param float uncertainty: its relative statistical uncertainty
    :param float accuracy: the phase's accuracy setting
    :param int entries: selected events the measurement used
    :param str what: the measured quantity, for the note
    :return: (within the accuracy: bool, note: '' or the statistics limitation)
    """
    within = bool(deviation < accuracy)
    if not within or STATISTICS_SIGMAS * uncertainty <= accuracy:
        return within, ""
    factor = (STATISTICS_SIGMAS * uncertainty / accuracy) ** 2
    return within, (
        f"statistics-limited: {what} is {deviation:.2%} from its target, measured to ±{uncertainty:.2%} with"
        f" {entries} selected events, too coarse for the {accuracy:.2%} accuracy ({STATISTICS_SIGMAS:g} standard"
        f" deviations must fit in it); about {int(np.ceil(entries * factor))} selected events ({factor:.1f} times"
        " as many events per step) would reach it"
    )


def peak_statistics(fit, peaks, summaries, accuracy, truth_energy, target, what):
    """The statistics of a phase that moves its peaks to ``target``: the metric
    '{field}MeanWorkerSpread' of each peak (worker_peak_spread, when two workers or more give one),
    and the statistics_verdict on the peaks' largest deviation with the largest fit error.

    :param fit: histogram.fit_peak, or a function with its signature
    :param dict peaks: {summary field: histogram.PeakFit}
    :param list summaries: the decoded summaries of the step's workers
    :param float accuracy: the phase's accuracy (also the relative bin width)
    :param float truth_energy: the sample's energy (GeV), which sets the bin width
    :param float target: where the peaks must be (GeV)
    :param str what: the measured quantity, for the note
    :return: (metrics, within the accuracy, note)
    """
    metrics = {}
    for field, peak in peaks.items():
        spread = worker_peak_spread(fit, summaries, field, accuracy, truth_energy)
        if spread is not None:
            metrics[f"{field}MeanWorkerSpread"] = spread
    deviation = max(abs(peak.mean - target) for peak in peaks.values()) / target
    coarsest = max(peaks.values(), key=lambda peak: peak.mean_error)
    uncertainty = coarsest.mean_error / target
    metrics["maxRelativeDeviationUncertainty"] = uncertainty
    return (metrics, *statistics_verdict(deviation, uncertainty, accuracy, coarsest.entries, what))


#: Bounds of a measured response slope: beyond them two steps tell noise, not the response.
SLOPE_RANGE = (0.25, 4.0)
#: Below this change of log(constant) between two steps the slope is not measured.
MIN_SLOPE_STEP = 0.005


def response_slope(previous, metric, current, target):
    """d log(measured)/d log(constant) from the phase's step before and this one, on the same events.

    The step before measured ``previous.metrics[metric]`` = m₀ and set the constant to
    C = C₀·target/m₀; this step measures ``current`` with C, so the slope is
    log(current/m₀)/log(target/m₀). A constant's uncertainty is its peak's over the slope: with a
    response μ ∝ C^γ the constant that puts the peak on target moves 1/γ as much as the peak.
    1 (a response proportional to the constant, as Marlin's digitisation and Pandora's scales)
    when there is no step before in this phase, or it changed the constant by less than
    MIN_SLOPE_STEP; clipped to SLOPE_RANGE.

    :param previous: advance.StepRecord of the step before when it is of the same stage and phase, or None
    :param str metric: the metric of the measured quantity (e.g. 'barrelMean')
    :param float current: its value in this step
    :param float target: where the phase moves it
    :return: float
    """
    before = previous.metrics.get(metric) if previous is not None else None
    if isinstance(before, bool) or not isinstance(before, (int, float)) or not before > 0 or not current > 0:
        return 1.0
    step = np.log(target / before)
    if abs(step) < MIN_SLOPE_STEP:
        return 1.0
    return float(np.clip(np.log(current / before) / step, *SLOPE_RANGE))
