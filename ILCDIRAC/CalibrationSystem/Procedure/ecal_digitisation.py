"""Phase 0, ECalDigi: ECal digitisation constants from 10 GeV photons (physics.md §2.1).

The worker keeps the digitised ECal energy of contained single-photon events, split into barrel
and endcap by the photon's angle; the service finds the peak of each and scales the barrel
constant and the endcap factor so that the peaks move to the photon energy.
"""
import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure import phase_tools
from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError, ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.histogram import fit_peak
from ILCDIRAC.CalibrationSystem.Procedure.outcome import Distribution, PhaseOutcome

LABEL = "phase 0 (ECalDigi)"
TRUTH_ENERGY = 10.0  # GeV, the photon sample's energy
SAMPLES = ("gamma",)
CONSTANTS = ("CalibrECAL", "ECALEndcapCorrectionFactor")
SUMMARY_FIELDS = {"barrel": np.dtype(np.float32), "endcap": np.dtype(np.float32)}
COLUMNS = (
    "nPfoTargetsTotal",
    "nPfoTargetsPhotons",
    "TotalCaloHitEnergy",
    "ECalTotalCaloHitEnergy",
    "pfoTargetCosTheta0",
)
MAX_ABS_COS_THETA = 0.95
# Energy outside the ECal allowed for a contained photon, as a fraction of the photon energy.
MAX_NON_ECAL_FRACTION = 0.01
REGION_SETTINGS = {"barrel": "ecalBarrelCosThetaRange", "endcap": "ecalEndcapCosThetaRange"}


def collect(outputs, settings):
    """Select contained single-photon events and return their ECal energy per region (float32).

    Cuts: exactly one target, a photon; less than 1 % of 10 GeV outside the ECal; ``|cos θ|`` < 0.95
    and strictly inside the region's range from the settings.

    :param dict outputs: {sample type: worker_output.ReconstructionOutput} of the worker's slice
    :param dict settings: the calibration settings
    :return: the worker's summary, {field: 1-D array} with exactly the fields of SUMMARY_FIELDS
    """
    data = phase_tools.pfo_columns(outputs["gamma"].columns, COLUMNS, LABEL)
    ecal = data["ECalTotalCaloHitEnergy"].astype(np.float64)
    total = data["TotalCaloHitEnergy"].astype(np.float64)
    cos_theta = phase_tools.abs_cos_theta(data["pfoTargetCosTheta0"])
    contained = (
        (data["nPfoTargetsTotal"] == 1)
        & (data["nPfoTargetsPhotons"] == 1)
        & np.isfinite(ecal)
        & (total - ecal < MAX_NON_ECAL_FRACTION * TRUTH_ENERGY)
        & (cos_theta < cos_theta.dtype.type(MAX_ABS_COS_THETA))
    )
    return phase_tools.split_by_angle(ecal, contained, cos_theta, settings, REGION_SETTINGS)


def _current_constants(constants):
    try:
        calibr_ecal = [float(v) for v in np.atleast_1d(constants["CalibrECAL"])]
        endcap_factor = float(constants["ECALEndcapCorrectionFactor"])
    except KeyError as error:
        raise ProcedureError(f"Constant {error} is missing; {LABEL} needs {list(CONSTANTS)}") from None
    except (TypeError, ValueError):
        raise ProcedureError(
            "CalibrECAL must be one or two numbers and ECALEndcapCorrectionFactor a number, got"
            f" {constants['CalibrECAL']!r} and {constants['ECALEndcapCorrectionFactor']!r}"
        ) from None
    if len(calibr_ecal) not in (1, 2) or not all(np.isfinite(calibr_ecal)) or not calibr_ecal[0] > 0:
        raise ProcedureError(f"CalibrECAL must be one or two finite numbers, the first positive: {calibr_ecal}")
    if not (np.isfinite(endcap_factor) and endcap_factor > 0):
        raise ProcedureError(f"ECALEndcapCorrectionFactor must be a positive number, got {endcap_factor}")
    return calibr_ecal[0], endcap_factor


def analyse(summaries, constants, settings, previous=None):
    """New CalibrECAL [barrel, thick-layer] and ECALEndcapCorrectionFactor from the workers' summaries.

    C_B' = 10·C_B/μ_B and C_E' = 10·C_E/μ_E with C_E = C_B·factor; converged when both peaks,
    measured with the current constants, are within digitisationAccuracy of 10 GeV and measured
    precisely enough for it (phase_tools.statistics_verdict). Uncertainties: δC_B'/C_B' = δμ_B/μ_B
    over the response slope (phase_tools.response_slope, 1 for μ_B proportional to C_B),
    δfactor'/factor' = that of the barrel ⊕ that of the endcap.

    :param list summaries: the decoded summaries of the step's workers
    :param dict constants: the constants the step ran with
    :param dict settings: the calibration settings
    :param previous: advance.StepRecord of the step before if it was of this phase (stage), else None
    :return: outcome.PhaseOutcome: the complete new constants, metrics, convergence verdict and plots;
        FitError if the peaks cannot be measured
    """
    if not summaries:
        raise FitError(f"{LABEL}: no worker summaries to analyse")
    accuracy = float(settings["digitisationAccuracy"])
    thick_layer_factor = float(settings["ecalResponseCorrectionForThickLayers"])
    barrel_constant, endcap_factor = _current_constants(constants)
    peaks = {
        region: phase_tools.positive_peak(
            fit_peak, phase_tools.gather(summaries, region, LABEL), accuracy, TRUTH_ENERGY, f"{LABEL}, ECal {region}"
        )
        for region in REGION_SETTINGS
    }
    slopes = {region: phase_tools.response_slope(previous, f"{region}Mean", peak.mean, TRUTH_ENERGY)
              for region, peak in peaks.items()}
    relative = {region: peak.mean_error / peak.mean / slopes[region] for region, peak in peaks.items()}
    new_barrel = TRUTH_ENERGY * barrel_constant / peaks["barrel"].mean
    new_endcap = TRUTH_ENERGY * barrel_constant * endcap_factor / peaks["endcap"].mean
    deviation = max(abs(peak.mean - TRUTH_ENERGY) for peak in peaks.values()) / TRUTH_ENERGY
    new_constants = phase_tools.copy_constants(constants)
    new_constants["CalibrECAL"] = [new_barrel, thick_layer_factor * new_barrel]
    new_constants["ECALEndcapCorrectionFactor"] = new_endcap / new_barrel
    uncertainties = {
        "CalibrECAL": phase_tools.scaled_uncertainty(new_constants["CalibrECAL"], relative["barrel"]),
        "ECALEndcapCorrectionFactor": phase_tools.scaled_uncertainty(
            new_constants["ECALEndcapCorrectionFactor"], phase_tools.relative_uncertainty(*relative.values())
        ),
    }
    statistics, within, note = phase_tools.peak_statistics(
        fit_peak, peaks, summaries, accuracy, TRUTH_ENERGY, TRUTH_ENERGY, "the ECal photon peak"
    )
    metrics = {"maxRelativeDeviation": deviation, "accuracy": accuracy, **statistics}
    for region, peak in peaks.items():
        metrics.update(phase_tools.peak_metrics(region, peak, TRUTH_ENERGY))
        metrics[f"{region}ResponseSlope"] = slopes[region]
    plots = tuple(
        Distribution.of_peak(
            peak, f"ecal_{region}", f"ECal {region}: 10 GeV photons", "ECal calorimeter hit energy [GeV]", TRUTH_ENERGY,
            phase_tools.gather(summaries, region, LABEL),
        )
        for region, peak in peaks.items()
    )
    return PhaseOutcome(new_constants, metrics, within, plots, uncertainties=uncertainties, statistics_note=note)
