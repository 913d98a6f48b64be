"""Phase 1 (HCalDigi): kaon selection, recovery of known HCal constants, convergence relative to T_K."""
import dataclasses

import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure import hcal_digitisation
from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError, ProcedureError, SettingsError, SummaryError
from ILCDIRAC.CalibrationSystem.Procedure.histogram import fit_peak
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY as T_K
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import ReconstructionOutput

SETTINGS = {
    "hcalBarrelCosThetaRange": [0.2, 0.6],
    "hcalEndcapCosThetaRange": [0.8, 0.9],
    "digitisationAccuracy": 0.02,
}

# One row per event: (nTargets, nNeutralHadrons, Total, HCal, FromEdge, cosTheta, selected as)
EVENTS = [
    (1, 1, 45.0, 44.0, 0.0, 0.3, "barrel"),
    (2, 1, 45.1, 44.1, 0.0, 0.3, None),  # two targets
    (1, 0, 45.2, 44.2, 0.0, 0.3, None),  # not a neutral hadron
    (1, 1, 46.0, 43.0, 0.0, 0.3, None),  # 3 GeV outside the HCal (limit 2.5)
    (1, 1, 46.0, 44.0, 0.0, -0.4, "barrel"),  # 2 GeV outside: kept
    (1, 1, 45.0, 44.5, 2.3, 0.4, None),  # 5.1 % of the total at the edge
    (1, 1, 45.0, 44.6, 2.2, 0.4, "barrel"),  # 4.9 % at the edge: kept
    (1, 1, 0.0, 0.0, 0.0, 0.4, None),  # no energy: the edge fraction is undefined
    (1, 1, 1e-8, 1e-8, 0.0, 0.4, None),  # total below epsilon fails even with nothing at the edge
    (1, 1, 45.0, 44.7, 0.0, 0.2, None),  # barrel lower limit is strict
    (1, 1, 45.0, 44.8, 0.0, 0.6, None),  # barrel upper limit is strict
    (1, 1, 45.0, 44.9, 0.0, 0.7, None),  # between barrel and endcap
    (1, 1, 45.0, 45.0, 0.0, -0.85, "endcap"),
    (1, 1, 45.0, 45.1, 0.0, 0.9, None),  # endcap upper limit is strict
    (1, 1, 45.0, 45.2, 0.0, 0.95, None),  # beyond the endcap range
    (1, 1, np.nan, np.nan, 0.0, 0.3, None),  # unusable energy
]


def _columns(events):
    return {
        "nPfoTargetsTotal": np.array([e[0] for e in events], np.int32),
        "nPfoTargetsNeutralHadrons": np.array([e[1] for e in events], np.int32),
        "TotalCaloHitEnergy": np.array([e[2] for e in events], np.float32),
        "HCalTotalCaloHitEnergy": np.array([e[3] for e in events], np.float32),
        "hCalCaloHitEnergyFromEdge": np.array([e[4] for e in events], np.float32),
        "pfoTargetCosTheta0": np.array([e[5] for e in events], np.float32),
    }


def _outputs(columns):
    return {"kaon": ReconstructionOutput(columns)}


def test_collect_selection():
    summary = hcal_digitisation.collect(_outputs(_columns(EVENTS)), SETTINGS)
    assert set(summary) == set(hcal_digitisation.SUMMARY_FIELDS)
    for region in ("barrel", "endcap"):
        expected = np.array([e[3] for e in EVENTS if e[6] == region], np.float32)
        assert summary[region].dtype == np.float32
        np.testing.assert_array_equal(summary[region], expected)


def _as_pfoanalysis_stores_it(edge_energies):
    """hCalCaloHitEnergyFromEdge as a real PfoAnalysis file holds it: the float sum truncated into
    an int (CalibrationHelper.h declares it int), whose bytes the "/F" branch writes as a float."""
    return np.trunc(np.asarray(edge_energies, np.float32)).astype(np.int32).view(np.float32)


def test_int_bit_patterns_are_recognised():
    stored = _as_pfoanalysis_stores_it([0.4, 2.3, 3.9, 40.0])
    np.testing.assert_array_equal(stored.view(np.int32), [0, 2, 3, 40])
    assert stored[1] == pytest.approx(2 * 1.4e-45, rel=0.01)  # a subnormal float
    assert hcal_digitisation.holds_int_bit_patterns(stored)
    assert hcal_digitisation.holds_int_bit_patterns(np.zeros(3, np.float32))  # either reading: nothing at the edge
    assert not hcal_digitisation.holds_int_bit_patterns(np.array([0.0, 2.3e-3, 0.5], np.float32))
    assert not hcal_digitisation.holds_int_bit_patterns(np.array([0.0, -1e-45], np.float32))
    assert not hcal_digitisation.holds_int_bit_patterns(stored.astype(np.float64))
    np.testing.assert_array_equal(hcal_digitisation.edge_energy(stored), np.zeros(4))
    np.testing.assert_array_equal(hcal_digitisation.edge_energy(np.array([0.0, 2.5], np.float32)), [0.0, 2.5])


def test_edge_cut_never_acts_on_a_real_pfoanalysis_column():
    """As in the reference: 2.3 GeV (5.1 %) at the edge is cut from a true float column but kept when
    the column holds int bit patterns, and so is an event with 44 of its 45 GeV at the edge; an
    event with no energy still fails."""
    events = [*EVENTS, (1, 1, 45.0, 44.5, 44.0, 0.4, None)]
    float_column = _columns(events)
    int_column = dict(float_column, hCalCaloHitEnergyFromEdge=_as_pfoanalysis_stores_it([e[4] for e in events]))
    cut = hcal_digitisation.collect(_outputs(float_column), SETTINGS)["barrel"]
    kept = hcal_digitisation.collect(_outputs(int_column), SETTINGS)["barrel"]
    np.testing.assert_array_equal(cut, np.float32([44.0, 44.0, 44.6]))
    np.testing.assert_array_equal(kept, np.float32([44.0, 44.0, 44.5, 44.6, 44.5]))


def test_collect_refuses_bad_input():
    columns = _columns(EVENTS)
    del columns["hCalCaloHitEnergyFromEdge"]
    with pytest.raises(ProcedureError, match="hCalCaloHitEnergyFromEdge"):
        hcal_digitisation.collect(_outputs(columns), SETTINGS)
    columns = _columns(EVENTS)
    columns["TotalCaloHitEnergy"] = columns["TotalCaloHitEnergy"][:-1]
    with pytest.raises(ProcedureError, match="equal length"):
        hcal_digitisation.collect(_outputs(columns), SETTINGS)
    with pytest.raises(SettingsError, match="hcalBarrelCosThetaRange"):
        hcal_digitisation.collect(_outputs(_columns(EVENTS)), {**SETTINGS, "hcalBarrelCosThetaRange": None})


C_TRUE = {"barrel": 46.0, "endcap": 46.9}


def _summaries(barrel_constant, endcap_constant, n_workers=4, per_worker=1000, seed=1):
    """Digitised HCal energy = current constant x T_K x (1+eps) / true constant (physics.md §7)."""
    rng = np.random.default_rng(seed)
    current = {"barrel": barrel_constant, "endcap": endcap_constant}
    return [
        {
            region: (current[region] * T_K * (1 + rng.normal(0.0, 0.06, per_worker)) / C_TRUE[region])
            .astype(np.float32)
            for region in ("barrel", "endcap")
        }
        for _ in range(n_workers)
    ]


def test_analyse_recovers_true_constants():
    constants = {"CalibrHCALBarrel": 40.0, "CalibrHCALEndcap": 54.0, "CalibrECAL": [37.5, 75.0]}
    outcome = hcal_digitisation.analyse(_summaries(40.0, 54.0), constants, SETTINGS)
    assert outcome.constants["CalibrHCALBarrel"] == pytest.approx(C_TRUE["barrel"], rel=0.005)
    assert outcome.constants["CalibrHCALEndcap"] == pytest.approx(C_TRUE["endcap"], rel=0.005)
    assert outcome.constants["CalibrECAL"] == [37.5, 75.0]
    assert constants["CalibrHCALBarrel"] == 40.0  # the input is not modified
    assert outcome.converged is False
    assert outcome.metrics["barrelMean"] == pytest.approx(T_K * 40.0 / 46.0, rel=0.005)
    assert outcome.metrics["endcapMean"] == pytest.approx(T_K * 54.0 / 46.9, rel=0.005)
    # phase 2 reads μ_EC from this metric: the peak the update divided by, measured before it
    mean = outcome.metrics[hcal_digitisation.ENDCAP_MEAN_METRIC]
    assert outcome.constants["CalibrHCALEndcap"] == pytest.approx(T_K * 54.0 / mean, rel=1e-15)
    assert outcome.metrics["endcapEntries"] == 4000.0
    assert outcome.metrics["barrelFitMethod"] == "gaussian"
    assert all(isinstance(v, (float, str)) for v in outcome.metrics.values())
    assert [plot.name for plot in outcome.plots] == ["hcal_barrel", "hcal_endcap"]
    assert outcome.plots[0].target == T_K


def test_analyse_converges_with_updated_constants():
    first = hcal_digitisation.analyse(_summaries(40.0, 54.0), {"CalibrHCALBarrel": 40.0, "CalibrHCALEndcap": 54.0},
                                      SETTINGS)
    barrel, endcap = first.constants["CalibrHCALBarrel"], first.constants["CalibrHCALEndcap"]
    second = hcal_digitisation.analyse(_summaries(barrel, endcap, seed=2), first.constants, SETTINGS)
    assert second.converged is True
    assert second.metrics["maxRelativeDeviation"] < 0.01


def test_bins_are_a_fraction_of_50_gev():
    """Bin width a_d x 50 GeV = 1 GeV: a largest value of 70.7 GeV gives 70 bins (a_d x T_K would give 71)."""
    summaries = _summaries(46.0, 46.9)
    summaries[0]["barrel"][0] = 70.7
    outcome = hcal_digitisation.analyse(summaries, {"CalibrHCALBarrel": 46.0, "CalibrHCALEndcap": 46.9}, SETTINGS)
    assert outcome.metrics["barrelBins"] == 70.0
    assert outcome.plots[0].fit_bin_width == pytest.approx(70.7 / 70)
    # the plot shows the peak; the outlier is counted above its axis
    assert outcome.plots[0].edges[-1] < 70.7 and outcome.plots[0].above >= 1.0


@pytest.mark.parametrize("offset, converged", [(0.98, True), (0.995, False)])
def test_convergence_is_relative_to_the_kinetic_energy(monkeypatch, offset, converged):
    """|μ − T_K| = 0.995 GeV is 2.01 % of T_K but only 1.99 % of 50 GeV: not converged at a_d = 2 %."""
    peak = fit_peak(_summaries(46.0, 46.9)[0]["barrel"], 0.02, 50.0)
    monkeypatch.setattr(hcal_digitisation, "fit_peak",
                        lambda values, accuracy, truth: dataclasses.replace(peak, mean=T_K - offset))
    outcome = hcal_digitisation.analyse(_summaries(46.0, 46.9), {"CalibrHCALBarrel": 46.0, "CalibrHCALEndcap": 46.9},
                                        SETTINGS)
    assert outcome.converged is converged
    assert outcome.metrics["maxRelativeDeviation"] == pytest.approx(offset / T_K)
    assert outcome.constants["CalibrHCALBarrel"] == pytest.approx(46.0 * T_K / (T_K - offset))


def test_analyse_errors_name_the_problem():
    constants = {"CalibrHCALBarrel": 46.0, "CalibrHCALEndcap": 46.9}
    summaries = [{"barrel": _summaries(46.0, 46.9)[0]["barrel"], "endcap": np.zeros(3, np.float32) + 40.0}]
    with pytest.raises(FitError, match="endcap.*only 3"):
        hcal_digitisation.analyse(summaries, constants, SETTINGS)
    with pytest.raises(FitError, match="no worker summaries"):
        hcal_digitisation.analyse([], constants, SETTINGS)
    with pytest.raises(ProcedureError, match="CalibrHCALEndcap"):
        hcal_digitisation.analyse(_summaries(46.0, 46.9), {"CalibrHCALBarrel": 46.0}, SETTINGS)
    with pytest.raises(ProcedureError, match="positive"):
        hcal_digitisation.analyse(_summaries(46.0, 46.9), {**constants, "CalibrHCALBarrel": -1.0}, SETTINGS)
    with pytest.raises(SummaryError, match="endcap"):
        hcal_digitisation.analyse([{"barrel": summaries[0]["barrel"]}], constants, SETTINGS)


def test_analyse_quotes_each_constants_uncertainty_from_its_peak():
    outcome = hcal_digitisation.analyse(_summaries(46.0, 46.9), {"CalibrHCALBarrel": 46.0, "CalibrHCALEndcap": 46.9},
                                        SETTINGS)
    metrics = outcome.metrics
    for region, name in hcal_digitisation.REGION_CONSTANTS.items():
        relative = metrics[f"{region}MeanUncertainty"] / metrics[f"{region}Mean"]
        assert outcome.uncertainties[name] == pytest.approx(outcome.constants[name] * relative)
        assert 0.3 < metrics[f"{region}MeanWorkerSpread"] / metrics[f"{region}MeanUncertainty"] < 2.0
