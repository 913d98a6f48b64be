"""Phase 3, ElectroMagEnergy: Pandora's electromagnetic energy scale from 10 GeV photons (physics.md §2.4).

The worker keeps the ECal EM energy of events reconstructed as exactly one photon PFO with
(almost) nothing in the HCal; the service finds its peak and scales ECalToEMGeVCalibration so
that the peak moves to 10 GeV. HCalToEMGeVCalibration follows the ECal value, as upstream.
"""
import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure import phase_tools
from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError
from ILCDIRAC.CalibrationSystem.Procedure.histogram import fit_peak
from ILCDIRAC.CalibrationSystem.Procedure.outcome import Distribution, PhaseOutcome
from ILCDIRAC.CalibrationSystem.Procedure.samples import NOMINAL_ENERGY

LABEL = "phase 3 (ElectroMagEnergy)"
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

    :param dict outputs: {sample type: worker_output.ReconstructionOutput} of the worker's slice
    :param dict settings: the calibration settings
    :return: the worker's summary, {field: 1-D array} with exactly the fields of SUMMARY_FIELDS
    """
    data = phase_tools.pfo_columns(outputs["gamma"].columns, COLUMNS, LABEL)
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


def analyse(summaries, constants, settings, previous=None):
    """New ECalToEMGeVCalibration = HCalToEMGeVCalibration from the workers' summaries.

    ECalToEM' = 10·ECalToEM/μ_EM (bins of pandoraPFAAccuracy x 10 GeV); converged when μ_EM,
    measured with the current constant, is within pandoraPFAAccuracy of 10 GeV and measured
    precisely enough for it (phase_tools.statistics_verdict). Uncertainty: δμ_EM/μ_EM over the
    response slope (phase_tools.response_slope), relative.

    :param list summaries: the decoded summaries of the step's workers
    :param dict constants: the constants the step ran with
    :param dict settings: the calibration settings
    :param previous: advance.StepRecord of the step before if it was of this phase (stage), else None
    :return: outcome.PhaseOutcome: the complete new constants, metrics, convergence verdict and plots;
        FitError if the peaks cannot be measured
    """
    if not summaries:
        raise FitError(f"{LABEL}: no worker summaries to analyse")
    accuracy = float(settings["pandoraPFAAccuracy"])
    current = phase_tools.positive_constant(constants, "ECalToEMGeVCalibration", f"{LABEL} needs it")
    values = phase_tools.gather(summaries, "ecalToEm", LABEL)
    peak = phase_tools.positive_peak(fit_peak, values, accuracy, TRUTH_ENERGY, f"{LABEL}, photon EM energy")
    new_value = TRUTH_ENERGY * current / peak.mean
    new_constants = phase_tools.copy_constants(constants)
    new_constants["ECalToEMGeVCalibration"] = new_value
    new_constants["HCalToEMGeVCalibration"] = new_value
    deviation = abs(peak.mean - TRUTH_ENERGY) / TRUTH_ENERGY
    slope = phase_tools.response_slope(previous, "emMean", peak.mean, TRUTH_ENERGY)
    uncertainty = phase_tools.scaled_uncertainty(new_value, peak.mean_error / peak.mean / slope)
    statistics, within, note = phase_tools.peak_statistics(
        fit_peak, {"ecalToEm": peak}, summaries, accuracy, TRUTH_ENERGY, TRUTH_ENERGY, "the photon EM energy peak"
    )
    metrics = {
        "maxRelativeDeviation": deviation,
        "accuracy": accuracy,
        **statistics,
        **phase_tools.peak_metrics("em", peak, TRUTH_ENERGY),
        "emResponseSlope": slope,
    }
    plot = Distribution.of_peak(
        peak, "em_scale", "EM scale: 10 GeV photons", "ECal EM energy of the photon PFO [GeV]", TRUTH_ENERGY, values
    )
    return PhaseOutcome(new_constants, metrics, within, (plot,), statistics_note=note,
                        uncertainties={name: uncertainty for name in CONSTANTS})
