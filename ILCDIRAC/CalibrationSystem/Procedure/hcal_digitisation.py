"""Phase 1, HCalDigi: HCal digitisation constants from 50 GeV K0L (physics.md §2.2).

The worker keeps the digitised HCal energy of single-kaon events whose shower is contained in the
HCal, split into barrel and endcap by the kaon's angle; the service finds the peak of each and
scales the barrel and endcap constants so that the peaks move to the kaon's kinetic energy T_K
(the mass is not seen by the calorimeters). Binning uses the nominal 50 GeV, as upstream.

The edge-leakage cut reads hCalCaloHitEnergyFromEdge. PfoAnalysis keeps that value in an int
(CalibrationHelper.h) and branches it as a float ("/F"), so a real file holds the edge energy
truncated to whole GeV as an int32 bit pattern, which reads as 0 or a subnormal float (n GeV ->
n·1.4e-45): the reference's cut never removes an event. edge_energy recognises such a column and
gives the cut nothing to act on, as in the reference; a true float column (the built-in model's)
is cut as intended.
"""
import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure import phase_tools
from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError
from ILCDIRAC.CalibrationSystem.Procedure.histogram import fit_peak
from ILCDIRAC.CalibrationSystem.Procedure.outcome import Distribution, PhaseOutcome
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY, NOMINAL_ENERGY

LABEL = "phase 1 (HCalDigi)"
TRUTH_ENERGY = NOMINAL_ENERGY["kaon"]  # GeV, sets the bin width (accuracy x 50 GeV)
TARGET_ENERGY = KAON_KINETIC_ENERGY  # GeV, where the peaks must end up
SAMPLES = ("kaon",)
CONSTANTS = ("CalibrHCALBarrel", "CalibrHCALEndcap")
SUMMARY_FIELDS = {"barrel": np.dtype(np.float32), "endcap": np.dtype(np.float32)}
COLUMNS = (
    "nPfoTargetsTotal",
    "nPfoTargetsNeutralHadrons",
    "TotalCaloHitEnergy",
    "HCalTotalCaloHitEnergy",
    "hCalCaloHitEnergyFromEdge",
    "pfoTargetCosTheta0",
)
# Energy in the outer HCal layers allowed for a contained shower, as a fraction of the total.
MAX_EDGE_FRACTION = 0.05
# Below this total energy the edge fraction is undefined and the event fails (upstream: FLOAT_MAX).
MIN_TOTAL_ENERGY = float(np.finfo(np.float32).eps)
# int32 values below 2^23 have the bit pattern of +0 or a positive subnormal float32.
_SUBNORMAL_BITS = 1 << 23
# Energy outside the HCal allowed for a shower starting in the HCal, as a fraction of 50 GeV.
MAX_NON_HCAL_FRACTION = 0.05
REGION_SETTINGS = {"barrel": "hcalBarrelCosThetaRange", "endcap": "hcalEndcapCosThetaRange"}
REGION_CONSTANTS = {"barrel": "CalibrHCALBarrel", "endcap": "CalibrHCALEndcap"}
#: Metric of the endcap peak μ_EC (measured with the step's constants, before its update), which
#: phase 2 reads from the last step of this phase.
ENDCAP_MEAN_METRIC = "endcapMean"


def holds_int_bit_patterns(column):
    """Whether a float32 column holds int32 values stored through a float branch, as
    hCalCaloHitEnergyFromEdge of a real PfoAnalysis file: every value is +0 or a positive subnormal.

    A true float energy is never subnormal (below 1.2e-38 GeV); a column of zeros fits both
    readings, which the edge cut treats alike.

    :param column: the hCalCaloHitEnergyFromEdge column
    :return: bool
    """
    column = np.asarray(column)
    if column.dtype != np.float32:
        return False
    bits = column.view(np.int32)
    return bool(np.all((bits >= 0) & (bits < _SUBNORMAL_BITS)))


def edge_energy(column):
    """The HCal energy near the outer edge per event (GeV, float64) that the edge cut compares with
    5 % of the total: the column itself, or zeros for a column of int bit patterns (real
    PfoAnalysis files), on which the reference's cut never acts.

    :param column: the hCalCaloHitEnergyFromEdge column
    :return: float64 array
    """
    if holds_int_bit_patterns(column):
        return np.zeros(np.shape(column))
    return np.asarray(column, dtype=np.float64)


def select(columns, settings):
    """HCal energy (float32) of contained single-kaon events per region: {'barrel': ..., 'endcap': ...}.

    Cuts: exactly one target, a neutral hadron; edge energy (edge_energy) < 5 % of the total
    (fails when the total is ~0); less than 5 % of 50 GeV outside the HCal; ``|cos θ|`` strictly
    inside the region's range. Public because phase 2 measures the endcap peak of the same selection.

    :param dict columns: PfoAnalysis columns of the kaon sample
    :param dict settings: the calibration settings (HCal cos(theta) ranges)
    :return: {'barrel': float32 array, 'endcap': float32 array}
    """
    data = phase_tools.pfo_columns(columns, COLUMNS, LABEL)
    hcal = data["HCalTotalCaloHitEnergy"].astype(np.float64)
    total = data["TotalCaloHitEnergy"].astype(np.float64)
    edge = edge_energy(data["hCalCaloHitEnergyFromEdge"])
    edge_fraction = np.divide(edge, total, out=np.full_like(total, np.inf), where=total >= MIN_TOTAL_ENERGY)
    contained = (
        (data["nPfoTargetsTotal"] == 1)
        & (data["nPfoTargetsNeutralHadrons"] == 1)
        & np.isfinite(hcal)
        & (edge_fraction < MAX_EDGE_FRACTION)
        & (total - hcal < MAX_NON_HCAL_FRACTION * TRUTH_ENERGY)
    )
    cos_theta = phase_tools.abs_cos_theta(data["pfoTargetCosTheta0"])
    return phase_tools.split_by_angle(hcal, contained, cos_theta, settings, REGION_SETTINGS)


def collect(outputs, settings):
    """The worker's summary: the selected HCal energies per region (see ``select``).

    :param dict outputs: {sample type: worker_output.ReconstructionOutput} of the worker's slice
    :param dict settings: the calibration settings
    :return: the worker's summary, {field: 1-D array} with exactly the fields of SUMMARY_FIELDS
    """
    return select(outputs["kaon"].columns, settings)


def peak(values, region, accuracy):
    """Peak of the HCal energies of ``region`` (bins of accuracy x 50 GeV); FitError naming the region.

    :param values: the selected HCal energies of the region (GeV)
    :param str region: 'barrel' or 'endcap', for messages
    :param float accuracy: relative bin width (digitisationAccuracy)
    :return: histogram.PeakFit, with a positive mean
    """
    return phase_tools.positive_peak(fit_peak, values, accuracy, TRUTH_ENERGY, f"{LABEL}, HCal {region}")


def analyse(summaries, constants, settings, previous=None):
    """New CalibrHCALBarrel and CalibrHCALEndcap from the workers' summaries.

    C' = T_K·C/μ per region; converged when both peaks, measured with the current constants, are
    within digitisationAccuracy of T_K (relative to T_K: upstream divided by 50, bug 4) and measured
    precisely enough for it (phase_tools.statistics_verdict). Uncertainty: δC'/C' = δμ/μ over the
    response slope (phase_tools.response_slope).

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
    needed_by = f"{LABEL} needs {list(CONSTANTS)}"
    current = {
        region: phase_tools.positive_constant(constants, name, needed_by) for region, name in REGION_CONSTANTS.items()
    }
    peaks = {region: peak(phase_tools.gather(summaries, region, LABEL), region, accuracy) for region in REGION_SETTINGS}
    new_constants = phase_tools.copy_constants(constants)
    for region, name in REGION_CONSTANTS.items():
        new_constants[name] = TARGET_ENERGY * current[region] / peaks[region].mean
    slopes = {region: phase_tools.response_slope(previous, f"{region}Mean", result.mean, TARGET_ENERGY)
              for region, result in peaks.items()}
    uncertainties = {
        name: phase_tools.scaled_uncertainty(
            new_constants[name], peaks[region].mean_error / peaks[region].mean / slopes[region])
        for region, name in REGION_CONSTANTS.items()
    }
    deviation = max(abs(result.mean - TARGET_ENERGY) for result in peaks.values()) / TARGET_ENERGY
    statistics, within, note = phase_tools.peak_statistics(
        fit_peak, peaks, summaries, accuracy, TRUTH_ENERGY, TARGET_ENERGY, "the HCal kaon peak"
    )
    metrics = {"maxRelativeDeviation": deviation, "accuracy": accuracy, "target": TARGET_ENERGY, **statistics}
    for region, result in peaks.items():
        metrics.update(phase_tools.peak_metrics(region, result, TARGET_ENERGY))
        metrics[f"{region}ResponseSlope"] = slopes[region]
    plots = tuple(
        Distribution.of_peak(
            result, f"hcal_{region}", f"HCal {region}: 50 GeV K0L", "HCal calorimeter hit energy [GeV]", TARGET_ENERGY,
            phase_tools.gather(summaries, region, LABEL),
        )
        for region, result in peaks.items()
    )
    return PhaseOutcome(new_constants, metrics, within, plots, uncertainties=uncertainties, statistics_note=note)
