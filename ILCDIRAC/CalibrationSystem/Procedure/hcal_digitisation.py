"""Phase 1, HCalDigi: HCal digitisation constants from 50 GeV K0L (physics.md §2.2).

The worker keeps the digitised HCal energy of single-kaon events whose shower is contained in the
HCal, split into barrel and endcap by the kaon's angle; the service finds the peak of each and
scales the barrel and endcap constants so that the peaks move to the kaon's kinetic energy T_K
(the mass is not seen by the calorimeters). Binning uses the nominal 50 GeV, as upstream.
"""
import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError, ProcedureError, SettingsError, SummaryError
from ILCDIRAC.CalibrationSystem.Procedure.histogram import fit_peak
from ILCDIRAC.CalibrationSystem.Procedure.outcome import Distribution, PhaseOutcome
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY, NOMINAL_ENERGY

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
# Energy outside the HCal allowed for a shower starting in the HCal, as a fraction of 50 GeV.
MAX_NON_HCAL_FRACTION = 0.05
REGION_SETTINGS = {"barrel": "hcalBarrelCosThetaRange", "endcap": "hcalEndcapCosThetaRange"}
REGION_CONSTANTS = {"barrel": "CalibrHCALBarrel", "endcap": "CalibrHCALEndcap"}


def _cos_theta_range(settings, key):
    value = settings.get(key)
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SettingsError(f"Setting {key} must be a list [low, high] of two numbers, got {value!r}") from None
    return low, high


def select(columns, settings):
    """HCal energy (float32) of contained single-kaon events per region: {'barrel': ..., 'endcap': ...}.

    Cuts: exactly one target, a neutral hadron; edge energy < 5 % of the total (fails when the
    total is ~0); less than 5 % of 50 GeV outside the HCal; |cos θ| strictly inside the region's
    range. Public because phase 2 measures the endcap peak of the same selection.
    """
    missing = [name for name in COLUMNS if name not in columns]
    if missing:
        raise ProcedureError(f"PfoAnalysis columns {missing} are missing; phase 1 needs {list(COLUMNS)}")
    data = {name: np.asarray(columns[name]) for name in COLUMNS}
    shapes = {name: array.shape for name, array in data.items()}
    if len(set(shapes.values())) != 1 or data["HCalTotalCaloHitEnergy"].ndim != 1:
        raise ProcedureError(f"PfoAnalysis columns must be 1-D arrays of equal length, got shapes {shapes}")
    hcal = data["HCalTotalCaloHitEnergy"].astype(np.float64)
    total = data["TotalCaloHitEnergy"].astype(np.float64)
    edge = data["hCalCaloHitEnergyFromEdge"].astype(np.float64)
    edge_fraction = np.divide(edge, total, out=np.full_like(total, np.inf), where=total >= MIN_TOTAL_ENERGY)
    # Angular limits are compared in the column's own precision (see ecal_digitisation).
    cos_theta = np.abs(data["pfoTargetCosTheta0"])
    if cos_theta.dtype.kind != "f":
        cos_theta = cos_theta.astype(np.float64)
    precision = cos_theta.dtype.type
    contained = (
        (data["nPfoTargetsTotal"] == 1)
        & (data["nPfoTargetsNeutralHadrons"] == 1)
        & np.isfinite(hcal)
        & (edge_fraction < MAX_EDGE_FRACTION)
        & (total - hcal < MAX_NON_HCAL_FRACTION * TRUTH_ENERGY)
    )
    selected = {}
    for region, key in REGION_SETTINGS.items():
        low, high = _cos_theta_range(settings, key)
        inside = contained & (cos_theta > precision(low)) & (cos_theta < precision(high))
        selected[region] = hcal[inside].astype(np.float32)
    return selected


def collect(outputs, settings):
    """The worker's summary: the selected HCal energies per region (see ``select``)."""
    return select(outputs["kaon"].columns, settings)


def peak(values, region, accuracy):
    """Peak of the HCal energies of ``region`` (bins of accuracy x 50 GeV); FitError naming the region."""
    try:
        result = fit_peak(values, accuracy, TRUTH_ENERGY)
    except FitError as error:
        raise FitError(f"phase 1 (HCalDigi), HCal {region}: {error}") from error
    if not result.mean > 0:
        raise FitError(f"phase 1 (HCalDigi), HCal {region}: peak at {result.mean} GeV, cannot rescale by it")
    return result


def _current_constant(constants, name):
    if name not in constants:
        raise ProcedureError(f"Constant {name} is missing; phase 1 needs {list(CONSTANTS)}")
    try:
        value = float(constants[name])
    except (TypeError, ValueError):
        raise ProcedureError(f"Constant {name} must be a number, got {constants[name]!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise ProcedureError(f"Constant {name} must be a positive number, got {value}")
    return value


def _gather(summaries, field):
    try:
        return np.concatenate([np.asarray(summary[field], dtype=np.float64).ravel() for summary in summaries])
    except KeyError:
        raise SummaryError(f"phase 1 (HCalDigi): a worker summary has no field {field!r}") from None


def analyse(summaries, constants, settings):
    """New CalibrHCALBarrel and CalibrHCALEndcap from the workers' summaries.

    C' = T_K·C/μ per region; converged when both peaks, measured with the current constants, are
    within digitisationAccuracy of T_K (relative to T_K: upstream divided by 50, bug 4).
    """
    if not summaries:
        raise FitError("phase 1 (HCalDigi): no worker summaries to analyse")
    accuracy = float(settings["digitisationAccuracy"])
    current = {region: _current_constant(constants, name) for region, name in REGION_CONSTANTS.items()}
    peaks = {region: peak(_gather(summaries, region), region, accuracy) for region in REGION_SETTINGS}
    new_constants = {name: list(value) if isinstance(value, list) else value for name, value in constants.items()}
    for region, name in REGION_CONSTANTS.items():
        new_constants[name] = TARGET_ENERGY * current[region] / peaks[region].mean
    deviation = max(abs(result.mean - TARGET_ENERGY) for result in peaks.values()) / TARGET_ENERGY
    metrics = {"maxRelativeDeviation": deviation, "accuracy": accuracy, "target": TARGET_ENERGY}
    for region, result in peaks.items():
        metrics.update(
            {
                f"{region}Mean": result.mean,
                f"{region}Sigma": result.sigma,
                f"{region}Entries": float(result.entries),
                f"{region}Bins": float(result.n_bins),
                f"{region}WindowLow": result.window_low,
                f"{region}WindowHigh": result.window_high,
                f"{region}FitMethod": result.method,
                f"{region}FitMessage": result.message,
                f"{region}RelativeDeviation": (result.mean - TARGET_ENERGY) / TARGET_ENERGY,
            }
        )
    plots = tuple(
        Distribution.of_peak(
            result, f"hcal_{region}", f"HCal {region}: 50 GeV K0L", "HCal calorimeter hit energy [GeV]", TARGET_ENERGY
        )
        for region, result in peaks.items()
    )
    return PhaseOutcome(new_constants, metrics, bool(deviation < accuracy), plots)
