"""Phase 2 (MuonAndHCalOtherDigi): MIP peaks, direction corrections and CalibrHCALOther on known numbers."""
import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure import mip_calibration
from ILCDIRAC.CalibrationSystem.Procedure.advance import StepRecord
from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError, ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_layout import edges, empty_histogram
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import Histogram, ReconstructionOutput

SETTINGS = {
    "hcalBarrelCosThetaRange": [0.2, 0.6],
    "hcalEndcapCosThetaRange": [0.8, 0.9],
    "digitisationAccuracy": 0.02,
    "hcalEndcapAbsorberThickness": 20.0,
    "hcalEndcapScintillatorThickness": 3.0,
    "hcalRingAbsorberThickness": 20.0,
    "hcalRingScintillatorThickness": 3.0,
    "hcalOtherEndcapMeanCorrection": True,
}
ECAL = "ECalDirectionCorrectedCaloHitEnergy"  # 500 bins on [0, 0.1]: width 0.0002
SIM_ENDCAP = "HCalDirectionCorrectedSimCaloHitEndCap"  # 200 bins on [0, 0.001]: width 5e-6
SIM_RING = "HCalDirectionCorrectedSimCaloHitOther"  # 200 bins on [0, 0.005]: width 2.5e-5
MUON = "MuonDirectionCorrectedCaloHitEnergy"  # 500 bins on [0, 0.002]: width 4e-6


def _spikes(size, **bins):
    counts = np.zeros(size)
    for index, value in bins.items():
        counts[int(index[1:])] = value
    return counts


def test_max_bin_peak_is_the_centre_of_the_first_fullest_bin():
    counts = _spikes(500, b50=6, b123=7, b400=7)
    assert mip_calibration.max_bin_peak(counts, edges(ECAL), ECAL) == pytest.approx(123.5 * 0.0002, rel=1e-12)
    # any binning: the histogram's own edges
    assert mip_calibration.max_bin_peak(counts[:250], np.linspace(0, 0.05, 251), ECAL) == pytest.approx(0.0247)
    with pytest.raises(ProcedureError, match=f"{ECAL} is empty"):
        mip_calibration.max_bin_peak(np.zeros(500), edges(ECAL), ECAL)


def test_max_bin_peak_refuses_an_unresolved_peak():
    """The muon histogram with the processor's default range [0, 1] GeV: a 5e-5 GeV MIP peak is
    in the first 2 MeV bin, where the reference took 1/0.001 as MuonToMipCalibration."""
    default_range = np.linspace(0.0, 1.0, 501)
    with pytest.raises(ProcedureError, match=r"MIP peak of histogram MuonDirectionCorrectedCaloHitEnergy is in its"
                                             r" first bin \(\[0, 0.002\] GeV of 500 bins on \[0, 1\]\).*"
                                             "NBinsMuonCaloHitEnergyHist and XUpperValueMuonCaloHitEnergyHist"):
        mip_calibration.max_bin_peak(_spikes(500, b0=900, b1=3), default_range, MUON)
    with pytest.raises(ProcedureError, match=f"{ECAL} is in its last bin .* check the digitisation constants"):
        mip_calibration.max_bin_peak(_spikes(500, b499=9, b100=3), edges(ECAL), ECAL)


@pytest.mark.parametrize("counts, peak_bin", [
    (200 * np.exp(-0.5 * ((np.arange(200) - 60) / 8.0) ** 2), 60),
    (_spikes(200, b5=100, b40=30), 40),  # the global maximum is below bin 10, where no peak is looked for
    (_spikes(200, b30=9, b70=9), 30),  # first on ties
    (_spikes(200, b10=1), 10),  # lowest bin looked at (ROOT bin 11)
    (_spikes(200, b188=1), 188),  # highest bin looked at (ROOT bin N-11)
    (_spikes(200, b45=5, b55=9, b65=5, b57=8), 55),
])
def test_sim_hit_peak_finder(counts, peak_bin):
    peak = mip_calibration.sim_hit_peak(counts, edges(SIM_ENDCAP), SIM_ENDCAP)
    assert peak == pytest.approx((peak_bin + 0.5) * 5e-6, rel=1e-12)


@pytest.mark.parametrize("counts", [
    np.zeros(200),
    _spikes(200, b9=1, b189=1),  # outside bins 10..188
    np.where((np.arange(200) >= 20) & (np.arange(200) < 60), 5.0, 0.0),  # a plateau: never strictly above ±10
    np.arange(200.0),  # rising: every bin is below the one 10 further
])
def test_sim_hit_peak_finder_refuses_when_there_is_no_peak(counts):
    with pytest.raises(ProcedureError, match=f"No MIP peak in histogram {SIM_ENDCAP}"):
        mip_calibration.sim_hit_peak(counts, edges(SIM_ENDCAP), SIM_ENDCAP)


def test_direction_correction_and_thickness_factor():
    assert mip_calibration.direction_correction(np.array([40.0, 35.0]), "x") == 0.875
    with pytest.raises(ProcedureError, match="x is empty"):
        mip_calibration.direction_correction(np.array([0.0, 0.0]), "x")
    assert mip_calibration.thickness_factor(SETTINGS) == 1.0
    settings = {**SETTINGS, "hcalRingAbsorberThickness": 25.0, "hcalRingScintillatorThickness": 2.5}
    assert mip_calibration.thickness_factor(settings) == pytest.approx(2.0 / 3.0, rel=1e-15)  # (20·2.5)/(25·3)


def test_calibr_hcal_other_formula():
    # (0.88/0.72)·(2e-4/2.5e-4)·1.5·46.9 = 55/45·0.8·1.5·46.9
    expected = 55.0 / 45.0 * 0.8 * 1.5 * 46.9
    assert mip_calibration.calibr_hcal_other(0.88, 0.72, 2e-4, 2.5e-4, 1.5, 46.9) == pytest.approx(expected, rel=1e-14)
    with_mean = mip_calibration.calibr_hcal_other(0.88, 0.72, 2e-4, 2.5e-4, 1.5, 46.9, endcap_mean=45.0)
    assert with_mean == pytest.approx(expected * 49.502328 / 45.0, rel=1e-14)


# Kaon events: (nTargets, nNeutralHadrons, Total, HCal, energy near the edge, cos theta, selected)
KAONS = [
    (1, 1, 48.0, 47.0, 0.5, 0.85, True),
    (2, 1, 48.0, 47.1, 0.5, 0.85, False),  # two targets
    (1, 0, 48.0, 47.2, 0.5, 0.85, False),  # not a neutral hadron
    (1, 1, 48.0, 47.3, 2.5, 0.85, False),  # 5.2 % near the HCal edge
    (1, 1, 48.0, 47.4, 2.3, 0.85, True),  # 4.8 % near the edge: kept
    (1, 1, 48.0, 45.4, 0.0, 0.85, False),  # 2.6 GeV outside the HCal
    (1, 1, 48.0, 45.6, 0.0, -0.85, True),  # 2.4 GeV outside: kept; backward
    (1, 1, 0.0, 0.0, 0.0, 0.85, False),  # no energy: the edge fraction is undefined
    (1, 1, 48.0, 47.5, 0.0, 0.8, False),  # endcap limits are strict
    (1, 1, 48.0, 47.6, 0.0, 0.9, False),
    (1, 1, 48.0, 47.7, 0.0, 0.7, False),  # ring
    (1, 1, np.nan, np.nan, 0.0, 0.85, False),
]


def _kaon_columns(events=KAONS):
    names = ("nPfoTargetsTotal", "nPfoTargetsNeutralHadrons", "TotalCaloHitEnergy", "HCalTotalCaloHitEnergy",
             "hCalCaloHitEnergyFromEdge", "pfoTargetCosTheta0")
    return {
        name: np.array([e[i] for e in events], np.int32 if i < 2 else np.float32) for i, name in enumerate(names)
    }


def _histogram(name, counts=None, sumw=0.0, sumwx=0.0):
    empty = empty_histogram(name)
    return Histogram(empty.counts if counts is None else np.asarray(counts, float), empty.edges, sumw, sumwx)


def _outputs():
    muon = {name: _histogram(name, _spikes(500 if "CaloHitEnergy" in name else 200, b20=3, b60=4 + i))
            for i, (_, name) in enumerate((*mip_calibration.MIP_SCALES.values(), *mip_calibration.SIM_MIP.values()))}
    kaon = {
        name: _histogram(name, sumw=sumw, sumwx=sumwx)
        for name, sumw, sumwx in (("HCalEndCapDirectionCorrectionSimCaloHit", 10, 8),
                                  ("HCalOtherDirectionCorrectionSimCaloHit", 20, 15))
    }
    return {"muon": ReconstructionOutput(histograms=muon), "kaon": ReconstructionOutput(_kaon_columns(), kaon)}


def test_collect():
    summary = mip_calibration.collect(_outputs(), SETTINGS)
    assert set(summary) == set(mip_calibration.SUMMARY_FIELDS)
    assert all(summary[name].dtype == dtype for name, dtype in mip_calibration.SUMMARY_FIELDS.items())
    np.testing.assert_array_equal(summary["ecalMip"], _spikes(500, b20=3, b60=4))
    np.testing.assert_array_equal(summary["ecalMipRange"], [0.0, 0.1])
    np.testing.assert_array_equal(summary["hcalRingSimMip"], _spikes(200, b20=3, b60=8))
    np.testing.assert_array_equal(summary["hcalRingSimMipRange"], [0.0, 0.005])
    np.testing.assert_array_equal(summary["hcalEndcapDirection"], [10.0, 8.0])
    np.testing.assert_array_equal(summary["hcalRingDirection"], [20.0, 15.0])
    expected = np.array([e[3] for e in KAONS if e[6]], np.float32)
    np.testing.assert_array_equal(summary["kaonHCalEndcapEnergy"], expected)


def test_collect_keeps_the_binning_of_the_file():
    outputs = _outputs()
    outputs["muon"].histograms[MUON] = Histogram(_spikes(250, b7=2), np.linspace(0, 0.001, 251), 2.0, 3e-5)
    summary = mip_calibration.collect(outputs, SETTINGS)
    np.testing.assert_array_equal(summary["muonMip"], _spikes(250, b7=2))
    np.testing.assert_array_equal(summary["muonMipRange"], [0.0, 0.001])


@pytest.mark.parametrize("counts, bin_edges, message", [
    (np.zeros(100), np.linspace(0, 0.1, 100), "counts of shape \\(100,\\) and edges of shape \\(100,\\)"),
    (np.zeros(2), np.array([0.0, 0.2, 0.1]), "increasing bin edges"),
    (np.array([1.0, np.inf]), np.array([0.0, 0.1, 0.2]), "finite counts"),
    (np.zeros(2), np.array([0.0, 0.1, 0.3]), "bins of different widths"),
])
def test_collect_refuses_missing_or_malformed_input(counts, bin_edges, message):
    outputs = _outputs()
    del outputs["muon"].histograms[SIM_RING]
    with pytest.raises(ProcedureError, match=f"muon reconstruction has no histogram {SIM_RING}"):
        mip_calibration.collect(outputs, SETTINGS)
    outputs = _outputs()
    outputs["muon"].histograms[ECAL] = Histogram(counts, bin_edges, 0.0, 0.0)
    with pytest.raises(ProcedureError, match=f"Histogram {ECAL} .*{message}"):
        mip_calibration.collect(outputs, SETTINGS)
    outputs = _outputs()
    del outputs["kaon"].columns["hCalCaloHitEnergyFromEdge"]
    with pytest.raises(ProcedureError, match="hCalCaloHitEnergyFromEdge"):
        mip_calibration.collect(outputs, SETTINGS)


def _summaries(kaon_mean=45.0):
    """Two workers; the peaks are only the fullest bins once both are added."""
    rng = np.random.default_rng(3)
    workers = []
    for ecal, direction_endcap in (({"b285": 5, "b100": 3}, [10.0, 8.0]), ({"b285": 1, "b100": 4}, [30.0, 27.0])):
        workers.append({
            "ecalMip": _spikes(500, **ecal),
            "hcalMip": _spikes(500, b110=2),
            "muonMip": _spikes(500, b12=1),
            "hcalEndcapSimMip": _spikes(200, b39=3),
            "hcalRingSimMip": _spikes(200, b10=2),
            **{field + "Range": edges(name)[[0, -1]] for field, name in mip_calibration.MUON_HISTOGRAMS.items()},
            "hcalEndcapDirection": np.array(direction_endcap),
            "hcalRingDirection": np.array([20.0, 15.0]),
            "kaonHCalEndcapEnergy": rng.normal(kaon_mean, 3.0, 2000).astype(np.float32),
        })
    return workers


CONSTANTS = {"CalibrHCALEndcap": 46.9, "CalibrHCALBarrel": 46.0, "CalibrECAL": [37.5, 37.5], "CalibrHCALOther": 50.0,
             "ECalToMipCalibration": 1.0, "HCalToMipCalibration": 1.0, "MuonToMipCalibration": 1.0}
# D_EC = 35/40, D_R = 30/40, P_EC = 39.5·5e-6, P_R = 10.5·2.5e-5, A = 1
RING_WITHOUT_MEAN = (0.875 / 0.75) * (39.5 * 5e-6) / (10.5 * 2.5e-5) * 46.9


def test_analyse_known_answers():
    outcome = mip_calibration.analyse(_summaries(), CONSTANTS, {**SETTINGS, "hcalOtherEndcapMeanCorrection": False})
    constants, metrics = outcome.constants, outcome.metrics
    assert constants["ECalToMipCalibration"] == pytest.approx(1 / (100.5 * 0.0002), rel=1e-12)
    assert constants["HCalToMipCalibration"] == pytest.approx(1 / (110.5 * 0.0002), rel=1e-12)
    assert constants["MuonToMipCalibration"] == pytest.approx(1 / (12.5 * 4e-6), rel=1e-12)
    assert constants["CalibrHCALOther"] == pytest.approx(RING_WITHOUT_MEAN, rel=1e-12)
    assert constants["CalibrHCALEndcap"] == 46.9 and constants["CalibrECAL"] == [37.5, 37.5]
    assert CONSTANTS["CalibrHCALOther"] == 50.0  # the input is not modified
    assert outcome.converged is True
    assert metrics["ecalMipPeak"] == pytest.approx(0.0201, rel=1e-12)
    assert metrics["hcalEndcapSimMipPeak"] == pytest.approx(1.975e-4, rel=1e-12)
    assert metrics["hcalRingSimMipPeak"] == pytest.approx(2.625e-4, rel=1e-12)
    assert metrics["hcalEndcapDirectionCorrection"] == 0.875
    assert metrics["hcalRingDirectionCorrection"] == 0.75
    assert metrics["thicknessFactor"] == 1.0
    assert metrics["endcapMeanCorrection"] == 1.0
    assert metrics["endcapMeanSource"] == "not used (hcalOtherEndcapMeanCorrection off)"
    assert "endcapMean" not in metrics and "kaonHCalEndcapMean" not in metrics
    assert metrics["ecalMipEntries"] == 13.0
    assert all(isinstance(v, (float, str)) for v in metrics.values())
    mip_plots = {plot.name: plot for plot in outcome.plots[:3]}
    assert set(mip_plots) == {"ecalMip", "hcalMip", "muonMip"}
    assert mip_plots["ecalMip"].peak == metrics["ecalMipPeak"]
    np.testing.assert_array_equal(mip_plots["ecalMip"].counts, _spikes(500, b100=7, b285=6))
    assert mip_plots["ecalMip"].edges.size == 501


def _phase1_step(endcap_mean, step=7):
    """The last phase-1 step as the history holds it (its metrics, as hcal_digitisation writes them)."""
    return StepRecord(1, 1, step, {"barrelMean": 49.1, "endcapMean": endcap_mean, "endcapFitMethod": "gaussian"})


def test_endcap_mean_correction_uses_the_last_phase1_step():
    """The reference: CalibrHCALEndcap (already updated by phase 1) x T_K/μ_EC, with μ_EC the endcap
    peak the last phase-1 step measured before its update, not the kaons of this step (at 40 GeV)."""
    settings = {**SETTINGS, "hcalRingAbsorberThickness": 25.0, "hcalRingScintillatorThickness": 2.5}
    outcome = mip_calibration.analyse(_summaries(kaon_mean=40.0), CONSTANTS, settings, _phase1_step(48.25))
    expected = RING_WITHOUT_MEAN * (2.0 / 3.0) * KAON_KINETIC_ENERGY / 48.25
    assert outcome.constants["CalibrHCALOther"] == pytest.approx(expected, rel=1e-14)
    metrics = outcome.metrics
    assert metrics["endcapMean"] == 48.25
    assert metrics["endcapMeanCorrection"] == pytest.approx(KAON_KINETIC_ENERGY / 48.25, rel=1e-15)
    assert metrics["endcapMeanSource"] == "phase 1, step 7, before its update"
    assert "kaonHCalEndcapMean" not in metrics and "kaon_hcal_endcap" not in [plot.name for plot in outcome.plots]


def test_endcap_mean_from_history_needs_no_kaon_peak():
    summaries = _summaries()
    for summary in summaries:
        summary["kaonHCalEndcapEnergy"] = np.zeros(0, np.float32)
    outcome = mip_calibration.analyse(summaries, CONSTANTS, SETTINGS, _phase1_step(50.0))
    assert outcome.constants["CalibrHCALOther"] == pytest.approx(RING_WITHOUT_MEAN * KAON_KINETIC_ENERGY / 50.0)


def test_endcap_mean_is_measured_when_no_phase1_step_precedes():
    """startPhase = 2: μ_EC is the endcap peak of this step's kaons, with the current constants."""
    outcome = mip_calibration.analyse(_summaries(kaon_mean=40.0), CONSTANTS, SETTINGS, None)
    mean = outcome.metrics["kaonHCalEndcapMean"]
    assert mean == pytest.approx(40.0, rel=0.01) and outcome.metrics["endcapMean"] == mean
    assert outcome.metrics["endcapMeanSource"].startswith("this step's kaons")
    assert outcome.metrics["endcapMeanCorrection"] == pytest.approx(KAON_KINETIC_ENERGY / mean, rel=1e-15)
    assert outcome.constants["CalibrHCALOther"] == pytest.approx(RING_WITHOUT_MEAN * KAON_KINETIC_ENERGY / mean,
                                                                 rel=1e-12)
    assert outcome.plots[-1].name == "kaon_hcal_endcap"


@pytest.mark.parametrize("value", [None, 0.0, -3.0, float("nan"), "49.5", True])
def test_endcap_mean_from_history_must_be_positive(value):
    record = _phase1_step(value) if value is not None else StepRecord(1, 1, 7, {})
    with pytest.raises(ProcedureError, match="metrics of step 7 .* no positive HCal endcap peak 'endcapMean'"):
        mip_calibration.analyse(_summaries(), CONSTANTS, SETTINGS, record)


def test_analyse_uses_the_binning_the_workers_used():
    """The muon histogram with 250 bins on [0, 0.001] GeV (width 4e-6, as the default's) in both workers."""
    summaries = _summaries()
    for summary in summaries:
        summary["muonMip"], summary["muonMipRange"] = _spikes(250, b30=2, b31=1), np.array([0.0, 0.001])
    outcome = mip_calibration.analyse(summaries, CONSTANTS, {**SETTINGS, "hcalOtherEndcapMeanCorrection": False})
    assert outcome.metrics["muonMipPeak"] == pytest.approx(30.5 * 4e-6, rel=1e-12)
    plot = next(plot for plot in outcome.plots if plot.name == "muonMip")
    np.testing.assert_array_equal(plot.edges, np.linspace(0, 0.001, 251))


def test_analyse_refuses_workers_with_different_binnings():
    summaries = _summaries()
    summaries[1]["muonMip"], summaries[1]["muonMipRange"] = _spikes(500, b3=1), np.array([0.0, 1.0])
    with pytest.raises(ProcedureError, match=f"histogram {MUON} of worker summary 1 has 500 bins on \\[0, 1\\],"
                                             " worker summary 0 has 500 bins on \\[0, 0.002\\]; they cannot be"
                                             " summed"):
        mip_calibration.analyse(summaries, CONSTANTS, SETTINGS)
    summaries = _summaries()
    summaries[1]["ecalMip"] = np.zeros(499)
    with pytest.raises(ProcedureError, match=f"histogram {ECAL} of worker summary 1 has 499 bins on \\[0, 0.1\\]"):
        mip_calibration.analyse(summaries, CONSTANTS, SETTINGS)


@pytest.mark.parametrize("field, value, error, message", [
    ("ecalMipRange", np.array([0.0]), ProcedureError, f"summary 0 has no \\[low, high\\] range of histogram {ECAL}"),
    ("hcalRingDirection", np.zeros(2), ProcedureError, "HCalOtherDirectionCorrectionSimCaloHit is empty"),
    ("hcalRingDirection", np.array([-1.0, 1.0]), ProcedureError, "negative hcalRingDirection"),
    ("hcalEndcapSimMip", np.arange(200.0), ProcedureError, f"No MIP peak in histogram {SIM_ENDCAP}"),
    ("kaonHCalEndcapEnergy", np.zeros(0, np.float32), FitError, "kaon HCal endcap energy"),
])
def test_analyse_refuses_unusable_summaries(field, value, error, message):
    summaries = _summaries()
    for summary in summaries:
        summary[field] = value
    with pytest.raises(error, match=message):
        mip_calibration.analyse(summaries, CONSTANTS, SETTINGS)


def test_analyse_needs_the_endcap_constant_and_summaries():
    constants = dict(CONSTANTS)
    del constants["CalibrHCALEndcap"]
    with pytest.raises(ProcedureError, match="CalibrHCALEndcap"):
        mip_calibration.analyse(_summaries(), constants, SETTINGS)
    with pytest.raises(ProcedureError, match="no worker summaries"):
        mip_calibration.analyse([], CONSTANTS, SETTINGS)


def test_analyse_uncertainties_known_answers():
    """Peaks are bin centres, known to width/sqrt(12); D_EC of the two workers, 0.8 and 0.9, is known
    to std/sqrt(2) = 0.05; D_R is the same in both (no spread)."""
    outcome = mip_calibration.analyse(_summaries(), CONSTANTS, {**SETTINGS, "hcalOtherEndcapMeanCorrection": False})
    quoted, constants = outcome.uncertainties, outcome.constants
    ecal_relative = 0.0002 / np.sqrt(12) / 0.0201
    assert quoted["ECalToMipCalibration"] == pytest.approx(constants["ECalToMipCalibration"] * ecal_relative)
    other = np.sqrt((5e-6 / np.sqrt(12) / 1.975e-4) ** 2 + (2.5e-5 / np.sqrt(12) / 2.625e-4) ** 2
                    + (0.05 / 0.875) ** 2)
    assert outcome.metrics["hcalOtherRelativeUncertainty"] == pytest.approx(other)
    assert quoted["CalibrHCALOther"] == pytest.approx(constants["CalibrHCALOther"] * other)
    assert outcome.metrics["hcalEndcapDirectionWorkerSpread"] == pytest.approx(0.05)
    assert outcome.metrics["hcalRingDirectionWorkerSpread"] == 0.0
    assert set(quoted) == {"ECalToMipCalibration", "HCalToMipCalibration", "MuonToMipCalibration", "CalibrHCALOther"}
