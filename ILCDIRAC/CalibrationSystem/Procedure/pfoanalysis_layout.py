"""Layout of the PfoAnalysis ROOT file the calibration reads (physics.md §5.1, §5.2).

Why one module: the worker (real Marlin or the built-in model), the ROOT writer/reader and the
phase collectors must agree on branch types and histogram names. Binnings are another matter:
the analysis takes each histogram's binning from the file (the TH1F's own edges), as the
reference's PandoraPFACalibrate_MipResponse does by cloning the first file's histogram, and sums
the workers' histograms only when their binnings are identical.
"""
import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import Histogram

#: int32 scalar branches of the PfoAnalysisTree.
INT_BRANCHES = (
    'run', 'event', 'nPfosTotal', 'nPfosNeutralHadrons', 'nPfosPhotons', 'nPfosTracks',
    'nPfoTargetsTotal', 'nPfoTargetsNeutralHadrons', 'nPfoTargetsPhotons', 'nPfoTargetsTracks',
    'qPdg', 'pfoMinHCalLayerToEdge',
)
#: float32 scalar branches, plus the leading element of the vector branch pfoTargetCosTheta.
#: PfoAnalysis fills hCalCaloHitEnergyFromEdge from an int: see hcal_digitisation.holds_int_bit_patterns.
FLOAT_BRANCHES = (
    'pfoEnergyTotal', 'pfoEnergyNeutralHadrons', 'pfoEnergyPhotons', 'pfoEnergyTracks',
    'pfoECalToEmEnergy', 'pfoECalToHadEnergy', 'pfoHCalToEmEnergy', 'pfoHCalToHadEnergy',
    'pfoOtherEnergy', 'pfoMuonToEnergy', 'pfoMassTotal',
    'pfoTargetsEnergyTotal', 'pfoTargetsEnergyNeutralHadrons', 'pfoTargetsEnergyPhotons',
    'pfoTargetsEnergyTracks', 'mcEnergyENu', 'mcEnergyFwd',
    'eQQ', 'eQ1', 'eQ2', 'costQQ', 'costQ1', 'costQ2', 'mQQ', 'thrust',
    'hCalCaloHitEnergyFromEdge', 'TotalCaloHitEnergy', 'ECalTotalCaloHitEnergy',
    'HCalTotalCaloHitEnergy', 'MuonTotalCaloHitEnergy', 'BCalTotalCaloHitEnergy',
    'LHCalTotalCaloHitEnergy', 'LCalTotalCaloHitEnergy', 'TotalSimCaloHitEnergy',
    'ECalTotalSimCaloHitEnergy', 'HCalTotalSimCaloHitEnergy', 'MuonTotalSimCaloHitEnergy',
    'BCalTotalSimCaloHitEnergy', 'LHCalTotalSimCaloHitEnergy', 'LCalTotalSimCaloHitEnergy',
    'pfoTargetCosTheta0',
)

#: name -> (nbins, low, high) of every TH1F the calibration uses, as PfoAnalysis books them
#: (CalibrationHelper::CreateHistograms): fixed, except the muon one, whose binning is a processor
#: parameter (BINNING_PARAMETERS; default 500 bins on [0, 1.0] GeV); the value here is the one the
#: reference configured in its pfoAnalysis.xml (500 bins on [0, 0.002]) and the built-in model writes.
HISTOGRAMS = {
    'ECalDirectionCorrectedCaloHitEnergy': (500, 0.0, 0.1),
    'HCalDirectionCorrectedCaloHitEnergy': (500, 0.0, 0.1),
    'MuonDirectionCorrectedCaloHitEnergy': (500, 0.0, 0.002),
    'HCalDirectionCorrectedSimCaloHitBarrel': (200, 0.0, 0.001),
    'HCalDirectionCorrectedSimCaloHitEndCap': (200, 0.0, 0.001),
    'HCalDirectionCorrectedSimCaloHitOther': (200, 0.0, 0.005),
    'ECalDirectionCorrectedSimCaloHit': (200, 0.0, 0.001),
    **{f'{region}DirectionCorrectionSimCaloHit': (200, 0.0, 1.0)
       for region in ('HCalBarrel', 'HCalEndCap', 'HCalOther', 'ECalBarrel', 'ECalEndCap', 'ECalOther')},
}


#: Histograms whose binning is a PfoAnalysis processor parameter: name -> (number of bins, upper edge).
BINNING_PARAMETERS = {
    'MuonDirectionCorrectedCaloHitEnergy': ('NBinsMuonCaloHitEnergyHist', 'XUpperValueMuonCaloHitEnergyHist'),
}


def _binning(name):
    try:
        return HISTOGRAMS[name]
    except KeyError:
        raise ProcedureError(f"Unknown PfoAnalysis histogram {name!r}; known: {sorted(HISTOGRAMS)}") from None


def edges(name):
    """Bin edges (float64, nbins + 1) of histogram ``name``.

    :param str name: a histogram of HISTOGRAMS
    :return: numpy array
    """
    nbins, low, high = _binning(name)
    return np.linspace(low, high, nbins + 1)


def empty_histogram(name):
    """Histogram ``name`` with no entries, ready to be filled or summed into.

    :param str name: a histogram of HISTOGRAMS
    :return: worker_output.Histogram
    """
    nbins = _binning(name)[0]
    return Histogram(np.zeros(nbins), edges(name), 0.0, 0.0)


def check_histogram(name, histogram):
    """Refuse a histogram that is not n >= 1 finite counts on n + 1 finite, increasing edges.

    Any such binning is accepted: the analysis uses the histogram's own edges.

    :param str name: the histogram's name, for messages
    :param histogram: the worker_output.Histogram to check; ProcedureError if it is malformed
    """
    counts = np.asarray(histogram.counts)
    got = np.asarray(histogram.edges)
    if counts.ndim != 1 or counts.size == 0 or got.shape != (counts.size + 1,):
        raise ProcedureError(f"Histogram {name} has counts of shape {counts.shape} and edges of shape {got.shape};"
                             " n >= 1 bins need n + 1 edges")
    if counts.dtype.kind not in 'iuf' or got.dtype.kind not in 'iuf' \
            or not (np.all(np.isfinite(counts)) and np.all(np.isfinite(got)) and np.all(np.diff(got) > 0)):
        raise ProcedureError(f"Histogram {name} must have finite counts and finite, increasing bin edges")


def check_binning(name, histogram):
    """Refuse a histogram whose binning differs from the layout's (what the built-in model writes).

    :param str name: a histogram of HISTOGRAMS
    :param histogram: the worker_output.Histogram to check; ProcedureError if it does not fit
    """
    expected = edges(name)
    counts = np.asarray(histogram.counts)
    got = np.asarray(histogram.edges, dtype=np.float64)
    if got.shape != expected.shape or counts.shape != (expected.size - 1,) \
            or not np.allclose(got, expected, rtol=0.0, atol=1e-9 * (expected[-1] - expected[0])):
        nbins, low, high = HISTOGRAMS[name]
        found = (f"{counts.size} bins, [{got[0]:g}, {got[-1]:g}]" if got.size >= 2
                 else f"{counts.size} bins and {got.size} edges")
        raise ProcedureError(f"Histogram {name} has {found}, not the layout's {nbins} bins on [{low:g}, {high:g}]")
