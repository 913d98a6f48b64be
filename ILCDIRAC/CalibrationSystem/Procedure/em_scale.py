"""Phase 3, ElectroMagEnergy: Pandora's electromagnetic energy scale from 10 GeV photons (physics.md §2.4).

The worker keeps the ECal EM energy of events reconstructed as exactly one photon PFO with
(almost) nothing in the HCal; the service finds its peak and scales ECalToEMGeVCalibration so
that the peak moves to 10 GeV. HCalToEMGeVCalibration follows the ECal value, as upstream.
"""
import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError, ProcedureError, SummaryError
from ILCDIRAC.CalibrationSystem.Procedure.histogram import fit_peak
from ILCDIRAC.CalibrationSystem.Procedure.outcome import Distribution, PhaseOutcome
from ILCDIRAC.CalibrationSystem.Procedure.samples import NOMINAL_ENERGY

TRUTH_ENERGY = NOMINAL_ENERGY["gamma"]  # GeV: binning and target
SAMPLES = ("gamma",)
CONSTANTS = ("ECalToEMGeVCalibration", "HCalToEMGeVCalibration")
SUMMARY_FIELDS = {"ecalToEm": np.dtype(np.float32)}
COLUMNS = (
    "nPfoTargetsTotal",
    "nPfoTargetsPhotons",
    "nPfosTotal",
    "nPfosPhotons",
    "pfoECalToEmEnergy",
    "pfoHCalToEmEnergy",
)
# EM energy allowed in the HCal, as a fraction of the photon energy.
MAX_HCAL_FRACTION = 0.01


def collect(outputs, settings):
    """ECal EM energy (float32) of single-photon events reconstructed as one photon PFO.

    Cuts: one target, a photon; one PFO, a photon; HCal EM energy < 1 % of 10 GeV. No angular cut.
    """
    columns = outputs["gamma"].columns
    missing = [name for name in COLUMNS if name not in columns]
    if missing:
        raise ProcedureError(f"PfoAnalysis columns {missing} are missing; phase 3 needs {list(COLUMNS)}")
    data = {name: np.asarray(columns[name]) for name in COLUMNS}
    shapes = {name: array.shape for name, array in data.items()}
    if len(set(shapes.values())) != 1 or data["pfoECalToEmEnergy"].ndim != 1:
        raise ProcedureError(f"PfoAnalysis columns must be 1-D arrays of equal length, got shapes {shapes}")
    ecal = data["pfoECalToEmEnergy"].astype(np.float64)
    hcal = data["pfoHCalToEmEnergy"].astype(np.float64)
    selected = (
        (data["nPfoTargetsTotal"] == 1)
        & (data["nPfoTargetsPhotons"] == 1)
        & (data["nPfosTotal"] == 1)
        & (data["nPfosPhotons"] == 1)
        & np.isfinite(ecal)
        & (hcal < MAX_HCAL_FRACTION * TRUTH_ENERGY)
    )
    return {"ecalToEm": ecal[selected].astype(np.float32)}


def _current_constant(constants):
    name = CONSTANTS[0]
    if name not in constants:
        raise ProcedureError(f"Constant {name} is missing; phase 3 needs it")
    try:
        value = float(constants[name])
    except (TypeError, ValueError):
        raise ProcedureError(f"Constant {name} must be a number, got {constants[name]!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise ProcedureError(f"Constant {name} must be a positive number, got {value}")
    return value


def analyse(summaries, constants, settings):
    """New ECalToEMGeVCalibration = HCalToEMGeVCalibration from the workers' summaries.

    ECalToEM' = 10·ECalToEM/μ_EM (bins of pandoraPFAAccuracy x 10 GeV); converged when μ_EM,
    measured with the current constant, is within pandoraPFAAccuracy of 10 GeV.
    """
    if not summaries:
        raise FitError("phase 3 (ElectroMagEnergy): no worker summaries to analyse")
    accuracy = float(settings["pandoraPFAAccuracy"])
    current = _current_constant(constants)
    try:
        values = np.concatenate([np.asarray(s["ecalToEm"], dtype=np.float64).ravel() for s in summaries])
    except KeyError:
        raise SummaryError("phase 3 (ElectroMagEnergy): a worker summary has no field 'ecalToEm'") from None
    try:
        peak = fit_peak(values, accuracy, TRUTH_ENERGY)
    except FitError as error:
        raise FitError(f"phase 3 (ElectroMagEnergy), photon EM energy: {error}") from error
    if not peak.mean > 0:
        raise FitError(f"phase 3 (ElectroMagEnergy): EM peak at {peak.mean} GeV, cannot rescale by it")
    new_value = TRUTH_ENERGY * current / peak.mean
    new_constants = {name: list(value) if isinstance(value, list) else value for name, value in constants.items()}
    new_constants["ECalToEMGeVCalibration"] = new_value
    new_constants["HCalToEMGeVCalibration"] = new_value
    deviation = abs(peak.mean - TRUTH_ENERGY) / TRUTH_ENERGY
    metrics = {
        "maxRelativeDeviation": deviation,
        "accuracy": accuracy,
        "emMean": peak.mean,
        "emSigma": peak.sigma,
        "emEntries": float(peak.entries),
        "emBins": float(peak.n_bins),
        "emWindowLow": peak.window_low,
        "emWindowHigh": peak.window_high,
        "emFitMethod": peak.method,
        "emFitMessage": peak.message,
        "emRelativeDeviation": (peak.mean - TRUTH_ENERGY) / TRUTH_ENERGY,
    }
    plot = Distribution.of_peak(
        peak, "em_scale", "EM scale: 10 GeV photons", "ECal EM energy of the photon PFO [GeV]", TRUTH_ENERGY
    )
    return PhaseOutcome(new_constants, metrics, bool(deviation < accuracy), (plot,))
