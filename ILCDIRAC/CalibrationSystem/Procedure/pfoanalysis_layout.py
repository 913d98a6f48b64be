"""Layout of the PfoAnalysis ROOT file the calibration reads (physics.md §5.1, §5.2).

Why one module: the worker (real Marlin or the built-in model), the ROOT writer/reader and the
phase collectors must agree on branch types and histogram binnings; histograms from different
workers can only be summed bin by bin when their binning is identical.
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

#: name -> (nbins, low, high) of every TH1F the calibration uses. The muon upper edge is the one
#: iLCDirac configures (0.002), not the processor default (1.0).
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


def check_binning(name, histogram):
    """Refuse a histogram whose binning differs from the layout (it could not be summed).

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
        raise ProcedureError(f"Histogram {name} has {found}; the calibration needs {nbins} bins on "
                             f"[{low:g}, {high:g}]. Configure the PfoAnalysis processor with that binning.")
