"""Phase 3 (ElectroMagEnergy): photon PFO selection and recovery of a known EM scale."""
import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure import em_scale
from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError, ProcedureError, SummaryError
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import ReconstructionOutput

SETTINGS = {"pandoraPFAAccuracy": 0.01}

# One row per event: (nTargets, nTargetPhotons, nPfos, nPfoPhotons, ECalToEm, HCalToEm, selected)
EVENTS = [
    (1, 1, 1, 1, 9.0, 0.0, True),
    (2, 0, 2, 0, 9.1, 0.0, False),  # converted photon
    (1, 0, 1, 1, 9.2, 0.0, False),  # the target is not a photon
    (1, 1, 2, 2, 9.3, 0.0, False),  # split into two PFOs
    (1, 1, 1, 0, 9.4, 0.0, False),  # the PFO is not a photon
    (1, 1, 1, 1, 9.5, 0.11, False),  # 1.1 % in the HCal
    (1, 1, 1, 1, 9.6, 0.09, True),  # 0.9 % in the HCal: kept
    (1, 1, 1, 1, 9.7, 0.0, True),  # no angular cut: the column is not even read
    (1, 1, 1, 1, np.nan, 0.0, False),
]


def _columns(events):
    names = ("nPfoTargetsTotal", "nPfoTargetsPhotons", "nPfosTotal", "nPfosPhotons")
    columns = {name: np.array([e[i] for e in events], np.int32) for i, name in enumerate(names)}
    columns["pfoECalToEmEnergy"] = np.array([e[4] for e in events], np.float32)
    columns["pfoHCalToEmEnergy"] = np.array([e[5] for e in events], np.float32)
    return columns


def test_collect_selection():
    summary = em_scale.collect({"gamma": ReconstructionOutput(_columns(EVENTS))}, SETTINGS)
    assert set(summary) == set(em_scale.SUMMARY_FIELDS)
    assert summary["ecalToEm"].dtype == np.float32
    np.testing.assert_array_equal(summary["ecalToEm"], np.array([e[4] for e in EVENTS if e[6]], np.float32))


def test_collect_refuses_bad_input():
    columns = _columns(EVENTS)
    del columns["nPfosPhotons"]
    with pytest.raises(ProcedureError, match="nPfosPhotons"):
        em_scale.collect({"gamma": ReconstructionOutput(columns)}, SETTINGS)
    columns = _columns(EVENTS)
    columns["pfoHCalToEmEnergy"] = columns["pfoHCalToEmEnergy"][:2]
    with pytest.raises(ProcedureError, match="equal length"):
        em_scale.collect({"gamma": ReconstructionOutput(columns)}, SETTINGS)


K_EM = 0.95


def _summaries(scale, n_workers=4, per_worker=1000, seed=1):
    """Photon PFO energy = k_EM x ECalToEM x 10 GeV x (1+eps) (physics.md §7)."""
    rng = np.random.default_rng(seed)
    return [
        {"ecalToEm": (K_EM * scale * 10.0 * (1 + rng.normal(0.0, 0.05, per_worker))).astype(np.float32)}
        for _ in range(n_workers)
    ]


def test_analyse_recovers_the_em_scale():
    constants = {"ECalToEMGeVCalibration": 1.2, "HCalToEMGeVCalibration": 1.0, "CalibrECAL": [37.5, 75.0]}
    outcome = em_scale.analyse(_summaries(1.2), constants, SETTINGS)
    assert outcome.constants["ECalToEMGeVCalibration"] == pytest.approx(1 / K_EM, rel=0.005)
    assert outcome.constants["HCalToEMGeVCalibration"] == outcome.constants["ECalToEMGeVCalibration"]
    assert outcome.constants["CalibrECAL"] == [37.5, 75.0]
    assert constants["ECalToEMGeVCalibration"] == 1.2
    assert outcome.converged is False  # measured at 11.4 GeV
    assert outcome.metrics["emMean"] == pytest.approx(11.4, rel=0.005)
    # bins of a_p x 10 GeV = 0.1 GeV over [0, max]; the plot shows finer ones around the peak
    largest = max(float(summary["ecalToEm"].max()) for summary in _summaries(1.2))
    assert outcome.metrics["emBins"] == float(int(largest / 0.1))
    assert outcome.plots[0].fit_bin_width == pytest.approx(largest / outcome.metrics["emBins"])
    assert np.diff(outcome.plots[0].edges)[0] <= outcome.metrics["emSigma"] / 2.5
    assert outcome.metrics["emEntries"] == 4000.0
    assert outcome.metrics["emFitMethod"] == "gaussian"
    assert all(isinstance(v, (float, str)) for v in outcome.metrics.values())
    assert outcome.plots[0].name == "em_scale" and outcome.plots[0].target == 10.0


def test_analyse_converges_with_the_updated_scale():
    first = em_scale.analyse(_summaries(1.2), {"ECalToEMGeVCalibration": 1.2}, SETTINGS)
    second = em_scale.analyse(_summaries(first.constants["ECalToEMGeVCalibration"], seed=2), first.constants,
                              SETTINGS)
    assert second.converged is True
    assert second.metrics["maxRelativeDeviation"] < 0.005


def test_analyse_errors_name_the_problem():
    with pytest.raises(FitError, match="no worker summaries"):
        em_scale.analyse([], {"ECalToEMGeVCalibration": 1.0}, SETTINGS)
    with pytest.raises(FitError, match="only 2"):
        em_scale.analyse([{"ecalToEm": np.array([9.0, 10.0], np.float32)}], {"ECalToEMGeVCalibration": 1.0}, SETTINGS)
    with pytest.raises(ProcedureError, match="ECalToEMGeVCalibration"):
        em_scale.analyse(_summaries(1.0), {"HCalToEMGeVCalibration": 1.0}, SETTINGS)
    with pytest.raises(SummaryError, match="ecalToEm"):
        em_scale.analyse([{"energy": np.ones(10, np.float32)}], {"ECalToEMGeVCalibration": 1.0}, SETTINGS)


def test_analyse_quotes_the_fit_error_as_the_scales_uncertainty():
    constants = {"ECalToEMGeVCalibration": 1.0, "HCalToEMGeVCalibration": 1.0}
    outcome = em_scale.analyse(_summaries(1.0), constants, SETTINGS)
    relative = outcome.metrics["emMeanUncertainty"] / outcome.metrics["emMean"]
    # 4000 photons of 5 % resolution: the mean to ~0.05/sqrt(4000), a truncated fit somewhat worse
    assert 0.05 / np.sqrt(4000) < relative < 2 * 0.05 / np.sqrt(4000)
    for name in ("ECalToEMGeVCalibration", "HCalToEMGeVCalibration"):
        assert outcome.uncertainties[name] == pytest.approx(outcome.constants[name] * relative)
    assert 0.3 < outcome.metrics["ecalToEmMeanWorkerSpread"] / outcome.metrics["emMeanUncertainty"] < 2.0
    assert outcome.metrics["emNdf"] > 5 and outcome.metrics["emChi2"] > 0
