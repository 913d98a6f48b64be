"""Phase 5 (PhotonTraining): workers send p·N, the service merges them into one likelihood file."""
import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure import photon_likelihood as pl
from ILCDIRAC.CalibrationSystem.Procedure import photon_training
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import ReconstructionOutput

CONSTANTS = {"CalibrECAL": [37.5, 37.5], "CalibrHCALOther": 57.0}


def _likelihood(n_signal, n_background, pdfs):
    """Canonical 9-bin file; every PDF is uniform except those in ``pdfs`` (name -> contents)."""
    histograms = {}
    for name, (nbins, low, high) in pl.HISTOGRAMS.items():
        contents = np.asarray(pdfs.get(name, np.full(nbins + 2, 1.0 / (nbins + 2))), dtype=float)
        histograms[name] = (nbins, low, high, contents)
    return pl.LikelihoodData(np.array(pl.ENERGY_BIN_LOWER_EDGES), np.array(n_signal, float),
                             np.array(n_background, float), histograms)


def _peak_rms(*values):
    return np.array([*values, *[0.0] * (52 - len(values))])


FILES = [
    _likelihood([4, 0, 1, 0, 0, 0, 0, 0, 2], [1] * 9, {"PhotonSigPeakRms_0": _peak_rms(0, 0.25, 0.75),
                                                  "PhotonSigPeakRms_2": _peak_rms(1)}),
    _likelihood([12, 0, 0, 0, 0, 0, 0, 0, 2], [3] * 9, {"PhotonSigPeakRms_0": _peak_rms(0.5, 0.25, 0.25)}),
    _likelihood([0, 0, 3, 0, 0, 0, 0, 0, 0], [0] * 9, {"PhotonSigPeakRms_0": _peak_rms(0, 0, 1),
                                                  "PhotonSigPeakRms_2": _peak_rms(0, 0, 1)}),
]


def _summary(data):
    return photon_training.collect({"zuds": ReconstructionOutput(likelihood=pl.write_likelihood(data))}, {})


def test_collect_counts():
    summary = _summary(FILES[0])
    assert set(summary) == set(photon_training.SUMMARY_FIELDS)
    assert all(summary[name].dtype == dtype for name, dtype in photon_training.SUMMARY_FIELDS.items())
    np.testing.assert_array_equal(summary["nSignal"], [4, 0, 1, 0, 0, 0, 0, 0, 2])
    np.testing.assert_array_equal(summary["energyBinLowerEdges"], pl.ENERGY_BIN_LOWER_EDGES)
    assert summary["binning"].size == 3 * 108
    np.testing.assert_array_equal(summary["binning"][:6], [50, 0, 5, 50, 0, 5])
    np.testing.assert_array_equal(summary["binning"][-3:], [40, 0, 20])
    assert summary["counts"].size == sum(nbins + 2 for nbins, _, _ in pl.HISTOGRAMS.values())
    np.testing.assert_array_equal(summary["counts"][:4], [0, 1, 3, 0])  # PhotonSigPeakRms_0 times N_sig[0] = 4
    np.testing.assert_array_equal(summary["counts"][52:56], np.full(4, 1 / 52))  # PhotonBkgPeakRms_0 times 1


def test_collect_needs_a_likelihood():
    with pytest.raises(ProcedureError, match="PandoraSettingsPhotonTraining.xml"):
        photon_training.collect({"zuds": ReconstructionOutput()}, {})
    with pytest.raises(ProcedureError, match="Photon likelihood file"):
        photon_training.collect({"zuds": ReconstructionOutput(likelihood=b"<NSignalEvents>1</NSignalEvents>")}, {})


def test_analyse_merges_exactly():
    outcome = photon_training.analyse([_summary(f) for f in FILES], CONSTANTS, {})
    assert outcome.converged is True
    assert outcome.constants == CONSTANTS
    assert outcome.constants["CalibrECAL"] is not CONSTANTS["CalibrECAL"]
    plots = {plot.name: plot for plot in outcome.plots}
    assert set(plots) == {f"photon_{variable}" for variable in pl.VARIABLES}
    peak_rms = plots["photon_PeakRms"]
    # PeakRms signal over the energy bins, weighted by N_sig = 16, 4, 4 in bins 0, 2, 8 (bin 8 uniform):
    # underflow 16·0.375 + 4·0.25 + 4/52, first bin 16·0.25 + 4/52, of 24 events
    assert peak_rms.signal_outside == pytest.approx((6 + 1 + 4 / 52 + 4 / 52) / 24)
    assert peak_rms.signal[0] == pytest.approx((4 + 4 / 52) / 24)
    assert peak_rms.signal.sum() + peak_rms.signal_outside == pytest.approx(1.0)
    assert (peak_rms.edges[0], peak_rms.edges[-1], peak_rms.edges.size) == (0.0, 5.0, 51)
    assert (peak_rms.signal_events, peak_rms.background_events) == (24.0, 36.0)
    assert set(outcome.artifacts) == {"photonLikelihood"}
    merged = pl.parse_likelihood(outcome.artifacts["photonLikelihood"])
    np.testing.assert_array_equal(merged.n_signal, [16, 0, 4, 0, 0, 0, 0, 0, 4])
    np.testing.assert_array_equal(merged.n_background, [4] * 9)
    # (4·[0, .25, .75] + 12·[.5, .25, .25] + 0·[0, 0, 1]) / 16
    np.testing.assert_array_equal(merged.histograms["PhotonSigPeakRms_0"][3][:4], [0.375, 0.25, 0.375, 0])
    # (1·[1, 0, 0] + 3·[0, 0, 1]) / 4 in energy bin 2, where file 2 has signal
    np.testing.assert_array_equal(merged.histograms["PhotonSigPeakRms_2"][3], _peak_rms(0.25, 0, 0.75))
    # energy bin 1 has no signal in any file: p = 0, N = 0
    np.testing.assert_array_equal(merged.histograms["PhotonSigRmsRatio_1"][3], np.zeros(32))
    # the service's merge of summaries is the merge of the files, bit for bit
    assert outcome.artifacts["photonLikelihood"] == pl.write_likelihood(pl.merge_likelihoods(FILES))
    assert outcome.metrics == {
        "workersMerged": 3.0,
        "signalEvents": 24.0,
        "backgroundEvents": 36.0,
        "energyBinsWithoutSignal": 6.0,
        "energyBinsWithoutBackground": 0.0,
    }


def test_analyse_refuses_other_binnings():
    other = _summary(FILES[1])
    other["binning"] = other["binning"].copy()
    other["binning"][2] = 6.0  # PhotonSigPeakRms_0 up to 6 instead of 5
    with pytest.raises(ProcedureError, match="worker 1 used other energy bins or histogram binnings"):
        photon_training.analyse([_summary(FILES[0]), other], CONSTANTS, {})
    other = _summary(FILES[1])
    other["energyBinLowerEdges"] = other["energyBinLowerEdges"] + 0.1
    with pytest.raises(ProcedureError, match="worker 1 used other energy bins"):
        photon_training.analyse([_summary(FILES[0]), other], CONSTANTS, {})


@pytest.mark.parametrize("field, value, message", [
    ("nSignal", np.zeros(8), "9 energy bins, 8 signal"),
    ("binning", np.zeros(3), "binning numbers"),
    ("counts", np.zeros(10), "has 10 counts"),
    ("nBackground", -np.ones(9), "negative nBackground"),
])
def test_analyse_refuses_inconsistent_summaries(field, value, message):
    summary = _summary(FILES[0])
    summary[field] = value
    with pytest.raises(ProcedureError, match=message):
        photon_training.analyse([summary], CONSTANTS, {})


def test_analyse_needs_summaries():
    with pytest.raises(ProcedureError, match="no worker summaries"):
        photon_training.analyse([], CONSTANTS, {})
