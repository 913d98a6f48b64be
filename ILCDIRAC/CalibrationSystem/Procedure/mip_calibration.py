"""Phase 2, MuonAndHCalOtherDigi: GeV-to-MIP scales and the HCal ring constant (physics.md §2.3).

Muons give the MIP peaks: the digitised, direction-corrected hit energies set Pandora's
ECal/HCal/Muon GeV-to-MIP constants, and the simulated hit energies in the HCal endcap and ring
(P_EC, P_R) give their sampling ratio. Kaons, reconstructed in this step, give the mean
direction corrections of endcap and ring hits (D_EC, D_R), so the phase does not depend on files
of an earlier step (bug 5 fixed):

    CalibrHCALOther = (D_EC/D_R)·(P_EC/P_R)·A·CalibrHCALEndcap·(T_K/μ_EC, if hcalOtherEndcapMeanCorrection)

with A = (t_abs,EC·t_sc,R)/(t_abs,R·t_sc,EC) from the thickness settings (not hard-coded to 1).
CalibrHCALEndcap is the value phase 1 ended with, and μ_EC is, as in the reference, the HCal
endcap peak its last step measured before that step's update (so T_K/μ_EC re-applies that
step's correction); only when no phase-1 step precedes this one (startPhase 2) is μ_EC measured
on this step's kaons, with the current constants. Without the flag, the formula is PandoraAnalysis'
documented one. The phase runs once and always moves on.
"""
import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure import hcal_digitisation, phase_tools
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.histogram import fit_peak
from ILCDIRAC.CalibrationSystem.Procedure.outcome import FULLEST_BIN, PEAK_FINDER, Distribution, PhaseOutcome
from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_layout import BINNING_PARAMETERS, check_histogram
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY

LABEL = "phase 2 (MuonAndHCalOtherDigi)"
SAMPLES = ("muon", "kaon")
#: constant -> (summary field, muon histogram) whose maximum bin is the MIP peak; the constant is 1/peak.
MIP_SCALES = {
    "ECalToMipCalibration": ("ecalMip", "ECalDirectionCorrectedCaloHitEnergy"),
    "HCalToMipCalibration": ("hcalMip", "HCalDirectionCorrectedCaloHitEnergy"),
    "MuonToMipCalibration": ("muonMip", "MuonDirectionCorrectedCaloHitEnergy"),
}
CALORIMETERS = {"ECalToMipCalibration": "ECal", "HCalToMipCalibration": "HCal", "MuonToMipCalibration": "Muon system"}
#: HCal region -> (summary field, muon histogram) of the simulated MIP peak (P_EC, P_R).
SIM_MIP = {
    "endcap": ("hcalEndcapSimMip", "HCalDirectionCorrectedSimCaloHitEndCap"),
    "ring": ("hcalRingSimMip", "HCalDirectionCorrectedSimCaloHitOther"),
}
#: HCal region -> (summary field, kaon histogram) whose mean is the direction correction (D_EC, D_R).
DIRECTION = {
    "endcap": ("hcalEndcapDirection", "HCalEndCapDirectionCorrectionSimCaloHit"),
    "ring": ("hcalRingDirection", "HCalOtherDirectionCorrectionSimCaloHit"),
}
KAON_ENERGIES = "kaonHCalEndcapEnergy"
CONSTANTS = (*MIP_SCALES, "CalibrHCALOther", "CalibrHCALEndcap")
#: summary field -> muon histogram summed over the workers: its bin contents, and in field + RANGE
#: the [low, high] of its equal-width bins (two numbers instead of all the edges in every upload).
MUON_HISTOGRAMS = dict((*MIP_SCALES.values(), *SIM_MIP.values()))
RANGE = "Range"
SUMMARY_FIELDS = {
    **{field: np.dtype(np.float64) for field in MUON_HISTOGRAMS},
    **{field + RANGE: np.dtype(np.float64) for field in MUON_HISTOGRAMS},
    **{field: np.dtype(np.float64) for field, _ in DIRECTION.values()},  # [sumw, sumwx]
    KAON_ENERGIES: np.dtype(np.float32),
}
PEAK_FINDER_OFFSET = 10  # the SimCaloHit peak finder compares each bin with the bins 10 away


def _histogram(output, name, sample):
    try:
        histogram = output.histograms[name]
    except KeyError:
        raise ProcedureError(
            f"The {sample} reconstruction has no histogram {name}; the PfoAnalysis processor must run with"
            " CollectCalibrationDetails=1"
        ) from None
    check_histogram(name, histogram)
    return histogram


def _equal_bins_range(name, histogram):
    """[low, high] of a histogram whose bins have equal widths, as PfoAnalysis books them."""
    edges = np.asarray(histogram.edges, dtype=np.float64)
    if not np.allclose(np.diff(edges), (edges[-1] - edges[0]) / (edges.size - 1), rtol=1e-9, atol=0.0):
        raise ProcedureError(
            f"Histogram {name} has bins of different widths; PfoAnalysis books equal-width bins, and phase 2"
            " needs them"
        )
    return np.array([edges[0], edges[-1]])


def collect(outputs, settings):
    """Muon histogram counts and ranges (float64), kaon direction-correction sums [sumw, sumwx],
    kaon endcap energies.

    The histograms keep the binning of the worker's file (equal-width bins). The kaons are those
    phase 1 takes for its endcap peak, reconstructed with the current constants.

    :param dict outputs: {sample type: worker_output.ReconstructionOutput} of the worker's slice
    :param dict settings: the calibration settings
    :return: the worker's summary, {field: 1-D array} with exactly the fields of SUMMARY_FIELDS
    """
    muon, kaon = outputs["muon"], outputs["kaon"]
    summary = {}
    for field, name in MUON_HISTOGRAMS.items():
        histogram = _histogram(muon, name, "muon")
        summary[field] = np.asarray(histogram.counts, dtype=np.float64)
        summary[field + RANGE] = _equal_bins_range(name, histogram)
    for field, name in DIRECTION.values():
        histogram = _histogram(kaon, name, "kaon")
        summary[field] = np.array([histogram.sumw, histogram.sumwx], dtype=np.float64)
    summary[KAON_ENERGIES] = hcal_digitisation.select(kaon.columns, settings)["endcap"]
    return summary


def _bin_centres(edges):
    return 0.5 * (edges[:-1] + edges[1:])


def _binning_advice(name):
    """How to change the binning of histogram ``name``: its processor parameters, if it has any."""
    if name in BINNING_PARAMETERS:
        nbins, upper = BINNING_PARAMETERS[name]
        return f"set the PfoAnalysis parameters {nbins} and {upper} so that the MIP peak lies well inside"
    return "check the digitisation constants and the muon sample: the peak should lie well inside"


def max_bin_peak(counts, edges, name):
    """Centre of the fullest bin of histogram ``name`` (the first one on ties).

    ProcedureError if the histogram is empty, or if the fullest bin is its first or last one:
    the peak is then not resolved (e.g. the muon histogram with the processor's default range
    [0, 1] GeV), where the reference returned that bin's centre.

    :param counts: the summed bin contents
    :param edges: their bin edges
    :param str name: the histogram's name, for messages
    :return: float, the peak position
    """
    counts = np.asarray(counts, dtype=np.float64)
    if not counts.max(initial=0.0) > 0:
        raise ProcedureError(f"Histogram {name} is empty: the muon sample gave no hits to find a MIP peak in")
    index = int(np.argmax(counts))
    if index in (0, counts.size - 1):
        which = "first" if index == 0 else "last"
        raise ProcedureError(
            f"The MIP peak of histogram {name} is in its {which} bin ([{edges[index]:g}, {edges[index + 1]:g}] GeV"
            f" of {counts.size} bins on [{edges[0]:g}, {edges[-1]:g}]), so its position is not measured:"
            f" {_binning_advice(name)}"
        )
    return float(_bin_centres(edges)[index])


def sim_hit_peak(counts, edges, name):
    """The SimCaloHit MIP peak of histogram ``name`` (PandoraAnalysis' peak finder, 0-based here).

    Bin j (10 <= j <= N-12, i.e. ROOT bins 11..N-11) is a candidate if it holds more than the bins
    10 below and 10 above; the fullest candidate wins, the first one on ties. Upstream returned
    bin 0 when there was none; here that is a ProcedureError.

    :param counts: the summed bin contents
    :param edges: their bin edges
    :param str name: the histogram's name, for messages
    :return: float, the peak position
    """
    counts = np.asarray(counts, dtype=np.float64)
    offset = PEAK_FINDER_OFFSET
    j = np.arange(offset, counts.size - offset - 1)
    candidates = j[(counts[j] > counts[j - offset]) & (counts[j] > counts[j + offset]) & (counts[j] > 0)]
    if candidates.size == 0:
        raise ProcedureError(
            f"No MIP peak in histogram {name} ({counts.sum():g} entries): no bin holds more than the bins"
            f" {offset} below and above it. Use more muon events or check the muon sample"
        )
    best = candidates[int(np.argmax(counts[candidates]))]
    return float(_bin_centres(edges)[best])


def direction_correction(sums, name):
    """Mean of the filled values from the summed ROOT statistics [Σw, Σwx]; ProcedureError if empty.

    :param sums: [sum of weights, sum of weight x value] over all workers
    :param str name: the histogram's name, for messages
    :return: float
    """
    sumw, sumwx = sums
    if not sumw > 0:
        raise ProcedureError(
            f"Histogram {name} is empty: no contained kaon gave HCal hits to average the direction correction"
        )
    return float(sumwx / sumw)


def thickness_factor(settings):
    """A = (t_abs,EC·t_sc,R)/(t_abs,R·t_sc,EC): the ring's sampling relative to the endcap's.

    :param dict settings: the calibration settings (the four HCal thickness settings)
    :return: float A
    """
    return (float(settings["hcalEndcapAbsorberThickness"]) * float(settings["hcalRingScintillatorThickness"])) / (
        float(settings["hcalRingAbsorberThickness"]) * float(settings["hcalEndcapScintillatorThickness"])
    )


def calibr_hcal_other(d_endcap, d_ring, p_endcap, p_ring, factor, calibr_hcal_endcap, endcap_mean=None):
    """CalibrHCALOther = (D_EC/D_R)(P_EC/P_R)·A·CalibrHCALEndcap, times T_K/μ_EC when ``endcap_mean`` is given.

    :param float d_endcap: mean direction correction of HCal endcap hits (D_EC)
    :param float d_ring: mean direction correction of HCal ring hits (D_R)
    :param float p_endcap: simulated MIP peak in the HCal endcap (P_EC)
    :param float p_ring: simulated MIP peak in the HCal ring (P_R)
    :param float factor: the thickness factor A
    :param float calibr_hcal_endcap: the current CalibrHCALEndcap
    :param float endcap_mean: the kaons' HCal endcap peak (μ_EC), or None to leave out T_K/μ_EC
    :return: float, the new CalibrHCALOther
    """
    value = (d_endcap / d_ring) * (p_endcap / p_ring) * factor * calibr_hcal_endcap
    return value * KAON_KINETIC_ENERGY / endcap_mean if endcap_mean is not None else value


def reference_endcap_mean(previous):
    """μ_EC as the reference takes it: the HCal endcap peak the last phase-1 step measured (with
    its constants, before its update), from that step's metrics.

    :param previous: advance.StepRecord of the last phase-1 step
    :return: float μ_EC (GeV); ProcedureError if the step's metrics do not hold a positive one
    """
    value = previous.metrics.get(hcal_digitisation.ENDCAP_MEAN_METRIC)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (np.isfinite(value) and value > 0):
        raise ProcedureError(
            f"{LABEL}: the metrics of step {previous.step} (phase 1) hold no positive HCal endcap peak"
            f" {hcal_digitisation.ENDCAP_MEAN_METRIC!r} (got {value!r}), which CalibrHCALOther needs with"
            " hcalOtherEndcapMeanCorrection; the calibration's history is incomplete"
        )
    return float(value)


def bin_uncertainty(edges, peak):
    """Relative uncertainty of a peak taken as a bin centre: the bin width/sqrt(12) (a uniform
    distribution over the bin), over the peak.

    :param edges: the histogram's bin edges
    :param float peak: the peak position
    :return: float
    """
    return float((edges[1] - edges[0]) / np.sqrt(12.0) / peak)


def _worker_spread(summaries, measure):
    """phase_tools.worker_spread of ``measure(summary)`` over the workers it can measure."""
    values = []
    for summary in summaries:
        try:
            values.append(measure(summary))
        except (ProcedureError, KeyError, ValueError):
            continue
    return phase_tools.worker_spread(values)


def _endcap_mean_uncertainty(previous, endcap_peak):
    """Relative uncertainty of μ_EC: its fit error, from the phase-1 step's metrics or this step's fit."""
    if endcap_peak is not None:
        return endcap_peak.mean_error / endcap_peak.mean
    if previous is None:
        return 0.0
    error = previous.metrics.get(hcal_digitisation.ENDCAP_MEAN_METRIC + "Uncertainty")
    return float(error) / reference_endcap_mean(previous) if isinstance(error, (int, float)) else 0.0


def _endcap_mean(summaries, settings, previous):
    """(μ_EC, where it comes from, the PeakFit when measured here or None)."""
    if previous is not None:
        return reference_endcap_mean(previous), f"phase 1, step {previous.step}, before its update", None
    peak = phase_tools.positive_peak(
        fit_peak, phase_tools.gather(summaries, KAON_ENERGIES, LABEL), float(settings["digitisationAccuracy"]),
        hcal_digitisation.TRUTH_ENERGY, f"{LABEL}, kaon HCal endcap energy",
    )
    return peak.mean, "this step's kaons, with the current constants (no phase-1 step before this one)", peak


def _summed(summaries, field, size):
    arrays = [np.asarray(summary[field], dtype=np.float64) for summary in summaries]
    for index, array in enumerate(arrays):
        if array.shape != (size,):
            raise ProcedureError(
                f"{LABEL}: worker summary {index} has {array.size} values of {field}, {size} are needed"
            )
        if np.any(array < 0):
            raise ProcedureError(f"{LABEL}: worker summary {index} has negative {field}")
    return np.sum(arrays, axis=0)


def summed_histogram(summaries, field, name):
    """(counts, edges) of histogram ``name`` summed over the workers' summaries.

    Bin by bin, so only when every worker's binning (number of bins and range) is the first
    one's; ProcedureError otherwise: all workers must run PfoAnalysis with the same parameters.

    :param list summaries: the decoded summaries of the step's workers
    :param str field: the summary field of the histogram's counts (its range is in field + RANGE)
    :param str name: the histogram's name, for messages
    :return: (counts, edges) as float64 arrays
    """
    binnings = [
        (np.asarray(summary[field]).size, *np.asarray(summary[field + RANGE], dtype=np.float64).tolist())
        for summary in summaries
    ]
    for index, binning in enumerate(binnings):
        if len(binning) != 3:
            raise ProcedureError(f"{LABEL}: worker summary {index} has no [low, high] range of histogram {name}")
        if binning != binnings[0]:
            raise ProcedureError(
                f"{LABEL}: histogram {name} of worker summary {index} has {binning[0]} bins on"
                f" [{binning[1]:g}, {binning[2]:g}], worker summary 0 has {binnings[0][0]} bins on"
                f" [{binnings[0][1]:g}, {binnings[0][2]:g}]; they cannot be summed. All workers must run"
                " PfoAnalysis with the same histogram binning"
            )
    nbins, low, high = binnings[0]
    return _summed(summaries, field, nbins), np.linspace(low, high, nbins + 1)


def analyse(summaries, constants, settings, previous=None):
    """GeV-to-MIP constants (1/MIP peak) and CalibrHCALOther from all workers' summaries; always converged.

    Uncertainties: a peak is a bin centre, known to its bin width/sqrt(12) (bin_uncertainty); the
    direction corrections to the spread of the workers' means (none with one worker: the
    summaries hold no sum of squares); μ_EC to its fit error. CalibrHCALOther's relative
    uncertainty is their quadratic sum. The workers' spread of the MIP peaks is a cross-check.

    :param list summaries: the decoded summaries of the step's workers
    :param dict constants: the constants the step ran with
    :param dict settings: the calibration settings
    :param previous: advance.StepRecord of the last phase-1 step (the step before this one), whose
        HCal endcap peak is μ_EC; None when there is none, and μ_EC is then measured in this step
    :return: outcome.PhaseOutcome: the complete new constants, metrics, convergence verdict and plots;
        ProcedureError if the peaks cannot be measured
    """
    if not summaries:
        raise ProcedureError(f"{LABEL}: no worker summaries to analyse")
    endcap_constant = phase_tools.positive_constant(
        constants, "CalibrHCALEndcap", f"{LABEL} derives CalibrHCALOther from it"
    )
    totals = {field: summed_histogram(summaries, field, name) for field, name in MUON_HISTOGRAMS.items()}
    mip_peaks = {constant: max_bin_peak(*totals[field], name) for constant, (field, name) in MIP_SCALES.items()}
    sim_peaks = {region: sim_hit_peak(*totals[field], name) for region, (field, name) in SIM_MIP.items()}
    directions = {
        region: direction_correction(_summed(summaries, field, 2), name) for region, (field, name) in DIRECTION.items()
    }
    if not all(value > 0 for value in (*sim_peaks.values(), *directions.values())):
        raise ProcedureError(
            f"{LABEL}: MIP peaks {sim_peaks} and direction corrections {directions} must be"
            " positive to form CalibrHCALOther"
        )
    factor = thickness_factor(settings)
    endcap_mean, source, endcap_peak = None, "not used (hcalOtherEndcapMeanCorrection off)", None
    if settings["hcalOtherEndcapMeanCorrection"]:
        endcap_mean, source, endcap_peak = _endcap_mean(summaries, settings, previous)
    other = calibr_hcal_other(
        directions["endcap"], directions["ring"], sim_peaks["endcap"], sim_peaks["ring"], factor, endcap_constant,
        endcap_mean,
    )
    new_constants = phase_tools.copy_constants(constants)
    new_constants.update({constant: 1.0 / peak for constant, peak in mip_peaks.items()})
    new_constants["CalibrHCALOther"] = other
    relative = {
        **{constant: bin_uncertainty(totals[field][1], mip_peaks[constant])
           for constant, (field, _) in MIP_SCALES.items()},
        **{region: bin_uncertainty(totals[field][1], sim_peaks[region]) for region, (field, _) in SIM_MIP.items()},
    }
    spreads = {
        f"{field}PeakWorkerSpread": _worker_spread(summaries, lambda summary, field=field, name=name: max_bin_peak(
            summary[field], np.linspace(*summary[field + RANGE], len(summary[field]) + 1), name))
        for field, name in MIP_SCALES.values()
    }
    direction_errors = {}
    for region, (field, name) in DIRECTION.items():
        spread = _worker_spread(summaries,
                                lambda summary, field=field, name=name: direction_correction(summary[field], name))
        spreads[f"{field}WorkerSpread"] = spread
        direction_errors[region] = (spread or 0.0) / directions[region]
    endcap_mean_error = _endcap_mean_uncertainty(previous, endcap_peak) if endcap_mean is not None else 0.0
    other_relative = phase_tools.relative_uncertainty(
        relative["endcap"], relative["ring"], *direction_errors.values(), endcap_mean_error
    )
    uncertainties = {constant: phase_tools.scaled_uncertainty(new_constants[constant], relative[constant])
                     for constant in MIP_SCALES}
    uncertainties["CalibrHCALOther"] = phase_tools.scaled_uncertainty(other, other_relative)
    metrics = {
        "ecalMipPeak": mip_peaks["ECalToMipCalibration"],
        "hcalMipPeak": mip_peaks["HCalToMipCalibration"],
        "muonMipPeak": mip_peaks["MuonToMipCalibration"],
        "hcalEndcapSimMipPeak": sim_peaks["endcap"],
        "hcalRingSimMipPeak": sim_peaks["ring"],
        "hcalEndcapDirectionCorrection": directions["endcap"],
        "hcalRingDirectionCorrection": directions["ring"],
        "mipPeakRatio": sim_peaks["endcap"] / sim_peaks["ring"],
        "directionCorrectionRatio": directions["endcap"] / directions["ring"],
        "thicknessFactor": factor,
        "endcapMeanSource": source,
        "endcapMeanCorrection": KAON_KINETIC_ENERGY / endcap_mean if endcap_mean is not None else 1.0,
        **{f"{field}Entries": float(counts.sum()) for field, (counts, _) in totals.items()},
        **{name: value for name, value in spreads.items() if value is not None},
        "hcalOtherRelativeUncertainty": other_relative,
    }
    if endcap_mean is not None:
        metrics["endcapMean"] = endcap_mean
    if endcap_peak is not None:
        metrics.update(phase_tools.peak_metrics("kaonHCalEndcap", endcap_peak, KAON_KINETIC_ENERGY))
    plots = (
        *(
            Distribution(field, f"{CALORIMETERS[constant]} MIP peak: 10 GeV muons",
                         "direction-corrected calorimeter hit energy [GeV]", *totals[field], peak=mip_peaks[constant],
                         method=FULLEST_BIN)
            for constant, (field, name) in MIP_SCALES.items()
        ),
        *(
            Distribution(field, f"HCal {region} MIP peak: 10 GeV muons", "direction-corrected sim hit energy [GeV]",
                         *totals[field], peak=sim_peaks[region], method=PEAK_FINDER)
            for region, (field, name) in SIM_MIP.items()
        ),
    )
    if endcap_peak is not None:
        plots += (Distribution.of_peak(endcap_peak, "kaon_hcal_endcap", "HCal endcap: 50 GeV K0L",
                                       "HCal calorimeter hit energy [GeV]", KAON_KINETIC_ENERGY,
                                       phase_tools.gather(summaries, KAON_ENERGIES, LABEL)),)
    return PhaseOutcome(new_constants, metrics, True, plots, uncertainties=uncertainties)
