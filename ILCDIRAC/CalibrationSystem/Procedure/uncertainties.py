"""Where the statistical uncertainties of the constants and the statistics-limited phases are kept
in a step's metrics, and how the result of a calibration reads them back (docs/physics.rst,
"Statistical uncertainties").

Each step's metrics hold UNCERTAINTIES, {constant: uncertainty} of every constant measured so
far (this step's replacing the earlier ones), and STATISTICS_LIMITED, {'stage/phase': note} of
every phase so far that ended statistics-limited; both are carried from step to step, so that the
last step's metrics hold them all.

A phase's own uncertainty is that of its measurement. A constant measured on energies that
earlier constants scale (a Pandora scale on digitised energies) is known no better than those:
SCALED_BY adds, in quadrature, the largest relative uncertainty of the constants that scale its
energies, which the phase's fit cannot see. Not for the EM scale: phase 3 measures the photons
phase 0 calibrated CalibrECAL on, so the fluctuation of those photons cancels in the product
(adding it would double the quoted uncertainty); the hadronic scales are measured on kaons
through the HCal barrel mostly, hence CalibrHCALBarrel.
"""
import numpy as np

UNCERTAINTIES = "uncertainties"
STATISTICS_LIMITED = "statisticsLimited"
#: constant -> the earlier constants, measured on other events, that scale the energies it is measured on
SCALED_BY = {
    "ECalToMipCalibration": ("CalibrECAL",),
    "HCalToMipCalibration": ("CalibrHCALBarrel", "CalibrHCALEndcap"),
    "ECalToHadGeVCalibrationBarrel": ("CalibrECAL",),
    "ECalToHadGeVCalibrationEndCap": ("CalibrECAL",),
    "HCalToHadGeVCalibration": ("CalibrHCALBarrel",),
}


def _first(value):
    return value[0] if isinstance(value, list) else value


def _with_inputs(name, uncertainty, value, known, constants):
    """``uncertainty`` of constant ``name`` (new value ``value``) with SCALED_BY's inputs added."""
    inputs = [abs(_first(known[i]) / _first(constants[i]))
              for i in SCALED_BY.get(name, ()) if i in known and i in constants]
    if not inputs:
        return uncertainty
    relative = float(np.hypot(_first(uncertainty) / abs(_first(value)), max(inputs)))
    return [abs(v) * relative for v in value] if isinstance(value, list) else abs(value) * relative


def step_statistics(previous_metrics, stage, phase_name, phase, outcome, constants):
    """The metrics a step adds to its phase's: the uncertainties of the constants so far (this
    step's, with SCALED_BY's inputs, replacing those of the step before), and the
    statistics-limited phases so far (those of the step before, this phase's replaced by its own).

    :param dict previous_metrics: the metrics of the step before ({} for the first step)
    :param int stage: the step's stage
    :param str phase_name: its phase's name, for the note
    :param int phase: its phase
    :param outcome: the phase's outcome.PhaseOutcome
    :param dict constants: the constants the step ran with
    :return: {UNCERTAINTIES: {...}, STATISTICS_LIMITED: {...}}
    """
    known = dict(previous_metrics.get(UNCERTAINTIES) or {})
    uncertainties = {**known, **{
        name: _with_inputs(name, uncertainty, outcome.constants[name], known, constants)
        for name, uncertainty in outcome.uncertainties.items()
    }}
    limited = dict(previous_metrics.get(STATISTICS_LIMITED) or {})
    key = f"{stage}/{phase}"
    limited.pop(key, None)
    if outcome.statistics_note:
        limited[key] = f"{phase_name} (stage {stage}): {outcome.statistics_note}"
    return {UNCERTAINTIES: uncertainties, STATISTICS_LIMITED: limited}


def final_uncertainties(history):
    """{constant: uncertainty} of the final constants: the last analysed step's (each constant's
    from the last step that measured it).

    :param list history: the steps, oldest first, each a dict with 'Metrics' (None for a step not analysed)
    :return: dict, in the shape of the constants (a list for a vector constant)
    """
    result = {}
    for step in history:
        result.update((step.get("Metrics") or {}).get(UNCERTAINTIES) or {})
    return result


def statistics_limitations(history):
    """The notes of the phases that ended statistics-limited, from the last analysed step.

    :param list history: the steps, oldest first, each a dict with 'Metrics'
    :return: list of str, in the order of the phases
    """
    analysed = [step["Metrics"] for step in history if step.get("Metrics")]
    return list((analysed[-1].get(STATISTICS_LIMITED) or {}).values()) if analysed else []
