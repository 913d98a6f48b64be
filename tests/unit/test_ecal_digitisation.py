"""Phase 0 (ECalDigi): event selection and recovery of known constants from synthetic photons."""
import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure import ecal_digitisation
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import ReconstructionOutput
from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError, ProcedureError, SettingsError

SETTINGS = {
    "ecalBarrelCosThetaRange": [0.0, 0.65],
    "ecalEndcapCosThetaRange": [0.8, 0.98],
    "digitisationAccuracy": 0.02,
    "ecalResponseCorrectionForThickLayers": 2.0,
}

# One row per event: (nTargets, nPhotons, Total, ECal, cosTheta, selected as)
EVENTS = [
    (1, 1, 9.0, 9.0, -0.3, "barrel"),
    (2, 1, 9.1, 9.1, 0.3, None),  # two targets
    (1, 0, 9.2, 9.2, 0.3, None),  # not a photon
    (1, 1, 9.5, 9.3, 0.3, None),  # 0.2 GeV outside the ECal
    (1, 1, 9.45, 9.4, 0.5, "barrel"),  # 0.05 GeV outside: kept
    (1, 1, 9.5, 9.5, 0.65, None),  # barrel upper limit is strict
    (1, 1, 9.6, 9.6, 0.0, None),  # barrel lower limit 0 is strict too
    (1, 1, 9.7, 9.7, 0.7, None),  # between barrel and endcap
    (1, 1, 9.8, 9.8, 0.8, None),  # endcap lower limit is strict
    (1, 1, 9.9, 9.9, 0.85, "endcap"),
    (1, 1, 10.0, 10.0, -0.93, "endcap"),
    (1, 1, 10.1, 10.1, 0.96, None),  # inside the endcap range, beyond |cos| < 0.95
    (1, 1, np.nan, np.nan, 0.3, None),  # unusable energy
]


def _outputs(columns):
    return {"gamma": ReconstructionOutput(columns)}


def _columns(events):
    return {
        "nPfoTargetsTotal": np.array([e[0] for e in events], np.int32),
        "nPfoTargetsPhotons": np.array([e[1] for e in events], np.int32),
        "TotalCaloHitEnergy": np.array([e[2] for e in events], np.float32),
        "ECalTotalCaloHitEnergy": np.array([e[3] for e in events], np.float32),
        "pfoTargetCosTheta0": np.array([e[4] for e in events], np.float32),
    }


def test_collect_selection():
    summary = ecal_digitisation.collect(_outputs(_columns(EVENTS)), SETTINGS)
    for region in ("barrel", "endcap"):
        expected = np.array([e[3] for e in EVENTS if e[5] == region], np.float32)
        assert summary[region].dtype == np.float32
        np.testing.assert_array_equal(summary[region], expected)


def test_collect_refuses_bad_input():
    columns = _columns(EVENTS)
    del columns["nPfoTargetsPhotons"]
    with pytest.raises(ProcedureError, match="nPfoTargetsPhotons"):
        ecal_digitisation.collect(_outputs(columns), SETTINGS)
    columns = _columns(EVENTS)
    columns["TotalCaloHitEnergy"] = columns["TotalCaloHitEnergy"][:-1]
    with pytest.raises(ProcedureError, match="equal length"):
        ecal_digitisation.collect(_outputs(columns), SETTINGS)
    with pytest.raises(SettingsError, match="ecalEndcapCosThetaRange"):
        ecal_digitisation.collect(_outputs(_columns(EVENTS)), {**SETTINGS, "ecalEndcapCosThetaRange": [0.8]})


C_TRUE_BARREL = 37.52
K_TRUE = 1.032


def _summaries(barrel_constant, endcap_factor, n_workers=4, per_worker=1000, seed=1):
    """Digitised energy = current constant x 10 GeV x (1+eps) / true constant, as in physics.md §7."""
    rng = np.random.default_rng(seed)
    endcap_constant = barrel_constant * endcap_factor
    summaries = []
    for _ in range(n_workers):
        eps_b, eps_e = rng.normal(0.0, 0.05, (2, per_worker))
        summaries.append(
            {
                "barrel": (barrel_constant * 10.0 * (1 + eps_b) / C_TRUE_BARREL).astype(np.float32),
                "endcap": (endcap_constant * 10.0 * (1 + eps_e) / (C_TRUE_BARREL * K_TRUE)).astype(np.float32),
            }
        )
    return summaries


def test_analyse_recovers_true_constants():
    constants = {"CalibrECAL": [32.0, 32.0], "ECALEndcapCorrectionFactor": 1.1, "CalibrHCALBarrel": 46.0}
    outcome = ecal_digitisation.analyse(_summaries(32.0, 1.1), constants, SETTINGS)
    new_barrel, new_thick = outcome.constants["CalibrECAL"]
    assert new_barrel == pytest.approx(C_TRUE_BARREL, rel=0.005)
    assert new_thick == pytest.approx(2.0 * new_barrel)
    assert outcome.constants["ECALEndcapCorrectionFactor"] == pytest.approx(K_TRUE, rel=0.005)
    assert outcome.constants["CalibrHCALBarrel"] == 46.0
    assert constants["CalibrECAL"] == [32.0, 32.0]  # the input is not modified
    # measured with 32 instead of 37.52: the barrel peak is 15 % low, far beyond 2 %
    assert outcome.converged is False
    assert outcome.metrics["barrelMean"] == pytest.approx(10.0 * 32.0 / C_TRUE_BARREL, rel=0.005)
    assert outcome.metrics["maxRelativeDeviation"] > 0.1
    assert outcome.metrics["barrelFitMethod"] == "gaussian"
    assert outcome.metrics["endcapEntries"] == 4000.0
    assert all(isinstance(v, (float, str)) for v in outcome.metrics.values())


def test_analyse_converges_with_updated_constants():
    constants = {"CalibrECAL": [32.0], "ECALEndcapCorrectionFactor": 1.1}
    first = ecal_digitisation.analyse(_summaries(32.0, 1.1), constants, SETTINGS)
    barrel, _ = first.constants["CalibrECAL"]
    factor = first.constants["ECALEndcapCorrectionFactor"]
    second = ecal_digitisation.analyse(_summaries(barrel, factor, seed=2), first.constants, SETTINGS)
    assert second.converged is True
    assert second.metrics["maxRelativeDeviation"] < 0.01


def test_analyse_fit_error_names_the_region():
    summaries = [{"barrel": _summaries(37.52, K_TRUE)[0]["barrel"], "endcap": np.zeros(0, np.float32)}]
    with pytest.raises(FitError, match="endcap"):
        ecal_digitisation.analyse(summaries, {"CalibrECAL": [37.52], "ECALEndcapCorrectionFactor": K_TRUE}, SETTINGS)
    with pytest.raises(FitError, match="no worker summaries"):
        ecal_digitisation.analyse([], {"CalibrECAL": [37.52], "ECALEndcapCorrectionFactor": K_TRUE}, SETTINGS)


def test_analyse_refuses_missing_constant():
    with pytest.raises(ProcedureError, match="ECALEndcapCorrectionFactor"):
        ecal_digitisation.analyse(_summaries(37.52, K_TRUE), {"CalibrECAL": [37.52]}, SETTINGS)
