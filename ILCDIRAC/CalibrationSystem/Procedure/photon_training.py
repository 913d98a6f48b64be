"""Phase 5, PhotonTraining: merge the workers' photon likelihoods (physics.md §3).

Each worker reconstructs its Z->uds slice with Pandora's photon training switched on and sends
the PDFs of its likelihood file as counts (p·N), so the service only adds numbers; the merged
likelihood is the step's artifact, which stage 3 reconstructs with. Nothing is calibrated, so
the constants stay as they are and the single step always counts as converged.
"""
import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure import phase_tools
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.outcome import PdfComparison, PhaseOutcome
from ILCDIRAC.CalibrationSystem.Procedure.photon_likelihood import (
    KINDS, VARIABLES, histogram_names, merge_weighted, parse_likelihood, weighted_counts, write_likelihood)

SAMPLES = ("zuds",)
CONSTANTS = ()
ARTIFACT = "photonLikelihood"
#: binning: (nbins, low, high) of every histogram in Pandora's order; counts: their p·N, concatenated.
SUMMARY_FIELDS = {
    "energyBinLowerEdges": np.dtype(np.float64),
    "nSignal": np.dtype(np.float64),
    "nBackground": np.dtype(np.float64),
    "binning": np.dtype(np.float64),
    "counts": np.dtype(np.float64),
}


def collect(outputs, settings):
    """The worker's likelihood file as arrays; ProcedureError if the reconstruction made none or it is invalid.

    :param dict outputs: {sample type: worker_output.ReconstructionOutput} of the worker's slice
    :param dict settings: the calibration settings
    :return: the worker's summary, {field: 1-D array} with exactly the fields of SUMMARY_FIELDS
    """
    content = outputs["zuds"].likelihood
    if content is None:
        raise ProcedureError(
            "phase 5 (PhotonTraining): the reconstruction wrote no photon likelihood file; the steering file's"
            " PandoraSettingsXmlFile must name PandoraSettingsPhotonTraining.xml in the training stage"
        )
    data = parse_likelihood(content)
    names = histogram_names(len(data.energy_bin_lower_edges))
    counts = weighted_counts(data)
    return {
        "energyBinLowerEdges": np.asarray(data.energy_bin_lower_edges, dtype=np.float64),
        "nSignal": np.asarray(data.n_signal, dtype=np.float64),
        "nBackground": np.asarray(data.n_background, dtype=np.float64),
        "binning": np.array([data.histograms[name][:3] for name in names], dtype=np.float64).ravel(),
        "counts": np.concatenate([counts[name] for name in names]),
    }


def _unpack(summary, index):
    """(binnings, counts) name -> ..., of one worker's summary; ProcedureError if its arrays do not fit together."""
    n_energy_bins = summary["energyBinLowerEdges"].size
    if n_energy_bins == 0 or summary["nSignal"].size != n_energy_bins or summary["nBackground"].size != n_energy_bins:
        raise ProcedureError(
            f"phase 5 (PhotonTraining): worker summary {index} has {n_energy_bins} energy bins,"
            f" {summary['nSignal'].size} signal and {summary['nBackground'].size} background counts"
        )
    for field in ("nSignal", "nBackground", "counts"):
        if np.any(summary[field] < 0):
            raise ProcedureError(f"phase 5 (PhotonTraining): worker summary {index} has negative {field}")
    names = histogram_names(n_energy_bins)
    binning = summary["binning"]
    if binning.size != 3 * len(names):
        raise ProcedureError(
            f"phase 5 (PhotonTraining): worker summary {index} gives {binning.size} binning numbers,"
            f" {3 * len(names)} are needed for {len(names)} histograms"
        )
    binning = binning.reshape(len(names), 3)
    nbins = binning[:, 0]
    if np.any(nbins < 1) or np.any(nbins != np.floor(nbins)):
        raise ProcedureError(f"phase 5 (PhotonTraining): worker summary {index} has invalid bin numbers")
    sizes = nbins.astype(np.int64) + 2
    if summary["counts"].size != sizes.sum():
        raise ProcedureError(
            f"phase 5 (PhotonTraining): worker summary {index} has {summary['counts'].size} counts,"
            f" its binning needs {int(sizes.sum())}"
        )
    pieces = np.split(summary["counts"], np.cumsum(sizes)[:-1])
    binnings = {name: (int(row[0]), float(row[1]), float(row[2])) for name, row in zip(names, binning)}
    return binnings, dict(zip(names, pieces))


def analyse(summaries, constants, settings):
    """Merge all workers' likelihoods: merged N = ΣN, merged p = Σ p·N / ΣN (0 where ΣN = 0).

    ProcedureError if there are no summaries or the workers' energy bins or histogram binnings differ.

    :param list summaries: the decoded summaries of the step's workers
    :param dict constants: the constants the step ran with
    :param dict settings: the calibration settings
    :return: outcome.PhaseOutcome: the complete new constants, metrics, convergence verdict and the merged
        likelihood as the artifact 'photonLikelihood'
    """
    if not summaries:
        raise ProcedureError("phase 5 (PhotonTraining): no worker summaries to merge")
    first = summaries[0]
    reference, _ = _unpack(first, 0)
    parts = []
    for index, summary in enumerate(summaries):
        binnings, counts = _unpack(summary, index)
        if not np.array_equal(summary["energyBinLowerEdges"], first["energyBinLowerEdges"]) or binnings != reference:
            raise ProcedureError(
                f"phase 5 (PhotonTraining): worker {index} used other energy bins or histogram binnings than"
                " worker 0, so their likelihoods cannot be merged; all workers must use the same"
                " PandoraSettingsPhotonTraining.xml"
            )
        parts.append((summary["nSignal"], summary["nBackground"], counts))
    merged = merge_weighted(first["energyBinLowerEdges"], reference, parts)
    metrics = {
        "workersMerged": float(len(summaries)),
        "signalEvents": float(merged.n_signal.sum()),
        "backgroundEvents": float(merged.n_background.sum()),
        "energyBinsWithoutSignal": float(np.count_nonzero(merged.n_signal == 0)),
        "energyBinsWithoutBackground": float(np.count_nonzero(merged.n_background == 0)),
    }
    return PhaseOutcome(phase_tools.copy_constants(constants), metrics, True, training_plots(merged),
                        {ARTIFACT: write_likelihood(merged)})


def _summed_pdf(likelihood, kind, variable, events):
    """A variable's PDF over all energy bins, weighted by each bin's events, and its under/overflow."""
    total = None
    for k, n in enumerate(events):
        contents = likelihood.histograms[f"Photon{kind}{variable}_{k}"][3] * n
        total = contents if total is None else total + contents
    norm = total.sum()
    total = total / norm if norm > 0 else total
    return total[1:-1], float(total[0] + total[-1])


def training_plots(likelihood):
    """One plot per likelihood variable: the photon (signal) and background PDFs summed over the
    energy bins, so that a physicist sees what separates photons in the merged training. A variable
    whose energy bins are binned differently cannot be summed and gets no plot.

    :param likelihood: photon_likelihood.LikelihoodData, the merged likelihood
    :return: tuple of outcome.PdfComparison
    """
    plots = []
    for variable in VARIABLES:
        binnings = {likelihood.histograms[f"Photon{kind}{variable}_{k}"][:3]
                    for kind in KINDS for k in range(likelihood.n_signal.size)}
        if len(binnings) != 1:
            continue
        nbins, low, high = binnings.pop()
        signal, signal_outside = _summed_pdf(likelihood, "Sig", variable, likelihood.n_signal)
        background, background_outside = _summed_pdf(likelihood, "Bkg", variable, likelihood.n_background)
        plots.append(PdfComparison(
            f"photon_{variable}", f"Photon training: {variable}, all energy bins", variable,
            np.linspace(low, high, nbins + 1), signal, background, signal_outside, background_outside,
            float(likelihood.n_signal.sum()), float(likelihood.n_background.sum())))
    return tuple(plots)
