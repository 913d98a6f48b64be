"""Phase 4 (HadronicEnergy): kaon selection, 3σ band, chi-square grid scan, hadronic scale update."""
import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure import hadronic_scale
from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError, ProcedureError, SettingsError, SummaryError
from ILCDIRAC.CalibrationSystem.Procedure.outcome import Scatter
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY as T_K
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import ReconstructionOutput

INT_MAX = 2147483647
SETTINGS = {"pandoraPFAAccuracy": 0.025, "nHcalLayers": 60}
GRID = 0.5 * T_K + 1.25 * np.arange(40)
STEP = 1.25

# One row per event: (nTargets, nTargetNH, nPfos, nPfoNH, ECalToHad, HCalToHad, minLayerToEdge, selected)
EVENTS = [
    (1, 1, 1, 1, 5.0, 44.0, 20, True),
    (2, 1, 1, 1, 5.1, 44.1, 20, False),  # two targets
    (1, 0, 1, 1, 5.2, 44.2, 20, False),  # the target is not a neutral hadron
    (1, 1, 2, 2, 5.3, 44.3, 20, False),  # split into two PFOs
    (1, 1, 1, 0, 5.4, 44.4, 20, False),  # the PFO is not a neutral hadron
    (1, 1, 1, 1, 5.5, 44.5, 6, False),  # 6 layers from the edge: not more than ceil(0.1 x 60)
    (1, 1, 1, 1, 5.6, 44.6, 7, True),
    (1, 1, 1, 1, 5.7, 44.7, INT_MAX, True),  # no HCal hit
    (1, 1, 1, 1, -0.1, 44.8, 20, False),  # negative energy has no resolution
    (1, 1, 1, 1, 5.9, np.nan, 20, False),
    (1, 1, 1, 1, 60.0, 70.0, 20, True),  # far from the line: the band is applied by the service
]


def _columns(events):
    names = ("nPfoTargetsTotal", "nPfoTargetsNeutralHadrons", "nPfosTotal", "nPfosNeutralHadrons")
    columns = {name: np.array([e[i] for e in events], np.int32) for i, name in enumerate(names)}
    columns["pfoECalToHadEnergy"] = np.array([e[4] for e in events], np.float32)
    columns["pfoHCalToHadEnergy"] = np.array([e[5] for e in events], np.float32)
    columns["pfoMinHCalLayerToEdge"] = np.array([e[6] for e in events], np.int32)
    return columns


def _collect(events, settings=SETTINGS):
    return hadronic_scale.collect({"kaon": ReconstructionOutput(_columns(events))}, settings)


def test_collect_selection():
    summary = _collect(EVENTS)
    assert set(summary) == set(hadronic_scale.SUMMARY_FIELDS)
    assert summary["ecalToHad"].dtype == summary["hcalToHad"].dtype == np.float32
    np.testing.assert_array_equal(summary["ecalToHad"], np.array([e[4] for e in EVENTS if e[7]], np.float32))
    np.testing.assert_array_equal(summary["hcalToHad"], np.array([e[5] for e in EVENTS if e[7]], np.float32))
    # 44 layers (CLD): more than ceil(4.4) = 5 layers from the edge
    assert _collect(EVENTS, {**SETTINGS, "nHcalLayers": 44})["ecalToHad"].size == 5


def test_collect_refuses_bad_input():
    columns = _columns(EVENTS)
    del columns["pfoMinHCalLayerToEdge"]
    with pytest.raises(ProcedureError, match="pfoMinHCalLayerToEdge"):
        hadronic_scale.collect({"kaon": ReconstructionOutput(columns)}, SETTINGS)
    columns = _columns(EVENTS)
    columns["nPfosTotal"] = columns["nPfosTotal"][1:]
    with pytest.raises(ProcedureError, match="equal length"):
        hadronic_scale.collect({"kaon": ReconstructionOutput(columns)}, SETTINGS)
    with pytest.raises(SettingsError, match="nHcalLayers"):
        _collect(EVENTS, {**SETTINGS, "nHcalLayers": 0})


def test_intercept_grid():
    np.testing.assert_allclose(hadronic_scale.intercept_grid(0.025), GRID, rtol=0, atol=1e-12)
    assert hadronic_scale.intercept_grid(0.025)[[0, -1]] == pytest.approx([24.751164, 73.501164])
    grid = hadronic_scale.intercept_grid(0.01)
    assert grid.size == 100 and grid[1] - grid[0] == pytest.approx(0.5)
    with pytest.raises(SettingsError, match="at most 0.5"):
        hadronic_scale.intercept_grid(0.6)


def test_band_around_the_ideal_line():
    """|x + y − T_K| ≤ 3·0.55·√(x + y): +12.5 GeV is inside (limit 12.99), −10.5 is outside (10.30)."""
    total = T_K + np.array([0.0, 12.5, 13.2, -10.0, -10.5, 0.0, 0.0])
    hcal = 0.7 * total
    ecal = 0.3 * total
    hcal[5], ecal[5] = -1.0, T_K + 1.0  # negative energies have no resolution
    hcal[6], ecal[6] = np.nan, 10.0
    np.testing.assert_array_equal(hadronic_scale.in_band(hcal, ecal), [True, True, False, True, False, False, False])


def _on_line(ecal_intercept, hcal_intercept, hcal_values):
    hcal = np.asarray(hcal_values, dtype=float)
    return hcal, ecal_intercept * (1.0 - hcal / hcal_intercept)


def _reference_chi2(hcal, ecal, grid):
    """The reference's formula written out: perpendicular distance over its error, per grid point."""
    chi2 = np.empty((grid.size, grid.size))
    for i, a in enumerate(grid):
        for j, b in enumerate(grid):
            norm = np.sqrt(a * a + b * b)
            distance = np.abs(hcal * a + ecal * b - a * b) / norm
            sigma = np.sqrt((0.55 * np.sqrt(hcal) * a) ** 2 + (0.55 * np.sqrt(ecal) * b) ** 2) / norm
            chi2[i, j] = np.sum((distance / sigma) ** 2)
    return chi2


def test_chi_square_grid_matches_the_formula_across_blocks():
    rng = np.random.default_rng(3)
    n = hadronic_scale._BLOCK + 123  # two blocks, the second one partial
    hcal = rng.uniform(15.0, 50.0, n)
    ecal = np.maximum(T_K - hcal + rng.normal(0.0, 3.0, n), 0.0)
    grid = hadronic_scale.intercept_grid(0.05)
    np.testing.assert_allclose(hadronic_scale.chi_square_grid(hcal, ecal, grid, grid),
                               _reference_chi2(hcal, ecal, grid), rtol=1e-10)


@pytest.mark.parametrize("ecal_spread", [3.0, 0.05])
def test_bounded_scan_finds_the_minimum_of_the_full_grid(ecal_spread):
    """grid_minimum abandons hopeless grid points early; its answer must be the full grid's argmin,
    also when the ECal intercept is barely constrained (kaons near the HCal axis)."""
    rng = np.random.default_rng(4)
    n = 3 * hadronic_scale._GUESS_EVENTS + 7
    hcal = rng.uniform(20.0, 52.0, n)
    ecal = np.abs(0.9 * (T_K - hcal) + rng.normal(0.0, ecal_spread, n))
    hcal += rng.normal(0.0, 2.0, n)
    grid = hadronic_scale.intercept_grid(0.025)
    chi2 = hadronic_scale.chi_square_grid(hcal, ecal, grid, grid)
    i, j = np.unravel_index(np.argmin(chi2), chi2.shape)
    ecal_intercept, hcal_intercept, minimum = hadronic_scale.grid_minimum(hcal, ecal, grid)
    assert (ecal_intercept, hcal_intercept) == (grid[i], grid[j])
    assert minimum == pytest.approx(chi2[i, j], rel=1e-12)
    fit = hadronic_scale.fit_intercepts(hcal, ecal, 0.025)
    assert (fit.grid_ecal, fit.grid_hcal, fit.grid_chi2) == (ecal_intercept, hcal_intercept, minimum)
    assert fit.chi2 < minimum  # the refinement only ever moves downhill


def test_scan_finds_grid_intercepts_exactly():
    hcal, ecal = _on_line(GRID[18], GRID[21], np.linspace(0.3, 1.0, 50) * GRID[21])
    fit = hadronic_scale.fit_intercepts(hcal, ecal, 0.025)
    assert (fit.ecal, fit.hcal) == (fit.grid_ecal, fit.grid_hcal) == (GRID[18], GRID[21])
    assert fit.chi2 < 1e-20
    assert fit.refine_resolution <= hadronic_scale.REFINE_PRECISION * STEP


@pytest.mark.parametrize("low", [0.3, 0.7])
@pytest.mark.parametrize("ecal_offset, hcal_offset", [(0.3, -0.4), (0.3, 0.45), (0.45, 0.2), (0.45, 0.45)])
def test_refined_intercepts_between_grid_points(low, ecal_offset, hcal_offset):
    """Kaons on a line whose intercepts lie between grid points. The reference's grid point is
    off by up to half a step, or more when the kaons cover only part of the line (the two
    intercepts are then correlated): 2.1 GeV here. The refined intercepts are within 0.01 GeV."""
    true_ecal, true_hcal = GRID[18] + ecal_offset * STEP, GRID[21] + hcal_offset * STEP
    hcal, ecal = _on_line(true_ecal, true_hcal, np.linspace(low, 1.0, 50) * true_hcal)
    fit = hadronic_scale.fit_intercepts(hcal, ecal, 0.025)
    assert fit.grid_ecal in GRID and fit.grid_hcal in GRID  # the reference, quantised to the grid
    assert max(abs(fit.grid_ecal - true_ecal), abs(fit.grid_hcal - true_hcal)) >= 0.25 * STEP
    assert fit.ecal == pytest.approx(true_ecal, abs=0.01)
    assert fit.hcal == pytest.approx(true_hcal, abs=0.01)
    assert fit.chi2 < fit.grid_chi2


def test_grid_point_can_be_more_than_half_a_step_off():
    hcal, ecal = _on_line(GRID[18] + 0.3 * STEP, GRID[21] + 0.45 * STEP, np.linspace(0.7, 1.0, 50) * GRID[21])
    fit = hadronic_scale.fit_intercepts(hcal, ecal, 0.025)
    assert abs(fit.grid_ecal - (GRID[18] + 0.3 * STEP)) > 1.5 * STEP


def test_refinement_stops_after_its_step_budget(monkeypatch):
    """A budget too small to reach the precision: the best point found so far, never above the grid's."""
    hcal, ecal = _on_line(GRID[18] + 0.3 * STEP, GRID[21] + 0.45 * STEP, np.linspace(0.7, 1.0, 50) * GRID[21])
    monkeypatch.setattr(hadronic_scale, "MAX_REFINE_STEPS", 3)
    fit = hadronic_scale.fit_intercepts(hcal, ecal, 0.025)
    assert fit.refine_steps == 3
    assert fit.refine_resolution > hadronic_scale.REFINE_PRECISION * STEP
    assert fit.chi2 < fit.grid_chi2


def test_refinement_matches_a_fine_scan_on_noisy_kaons():
    """Resolution-smeared kaons: the refined minimum is the minimum of a 0.005 GeV scan around it."""
    rng = np.random.default_rng(8)
    hcal = rng.uniform(15.0, 50.0, 3000)
    ecal = np.maximum(0.95 * (T_K - hcal) + rng.normal(0.0, 2.0, hcal.size), 0.0)
    band = hadronic_scale.in_band(hcal, ecal)
    fit = hadronic_scale.fit_intercepts(hcal[band], ecal[band], 0.025)
    fine = lambda centre: centre + np.linspace(-0.1, 0.1, 41)  # noqa: E731
    chi2 = hadronic_scale.chi_square_grid(hcal[band], ecal[band], fine(fit.ecal), fine(fit.hcal))
    i, j = np.unravel_index(np.argmin(chi2), chi2.shape)
    assert (i, j) == (20, 20)
    assert chi2[i, j] == pytest.approx(fit.chi2, rel=1e-12)


def test_scan_uses_a_float_absolute_value():
    """Kaons close to the HCal axis: |x·a + y·b − a·b| < 1 for several ECal intercepts. Truncated to
    integers those would all tie at 0 and the first (too small) intercept would win."""
    hcal, ecal = _on_line(GRID[20], GRID[20], GRID[20] - np.linspace(0.0, 0.25, 20))
    residual = np.abs(hcal * GRID[17] + ecal * GRID[20] - GRID[17] * GRID[20])
    assert residual.max() < 1.0  # the trap is armed
    assert hadronic_scale.grid_minimum(hcal, ecal, GRID)[:2] == (GRID[20], GRID[20])


def test_scan_clamps_to_the_grid():
    """An intercept below the grid stays at the grid's lower end, refined or not; the other one is
    still refined (it is then the best HCal intercept for that clamped ECal intercept)."""
    hcal, ecal = _on_line(20.0, 55.0, np.linspace(35.0, 55.0, 40))  # ECal intercept below 0.5·T_K
    fit = hadronic_scale.fit_intercepts(hcal, ecal, 0.025)
    assert fit.grid_ecal == fit.ecal == GRID[0]
    chi2 = hadronic_scale.chi_square_grid(hcal, ecal, GRID[:1], np.linspace(50.0, 56.0, 601))
    assert fit.hcal == pytest.approx(np.linspace(50.0, 56.0, 601)[np.argmin(chi2)], abs=0.01)
    hcal, ecal = _on_line(80.0, 45.0, np.linspace(30.0, 45.0, 40))  # above the grid's upper end
    fit = hadronic_scale.fit_intercepts(hcal, ecal, 0.025)
    assert fit.grid_ecal == fit.ecal == GRID[-1]
    summaries = [{"ecalToHad": ecal.astype(np.float32), "hcalToHad": hcal.astype(np.float32)}]
    metrics = hadronic_scale.analyse(summaries, _constants(1.0, 1.0), SETTINGS).metrics
    assert metrics["ecalInterceptAtGridEdge"] == 1.0 and metrics["hcalInterceptAtGridEdge"] == 0.0


K_HAD, H_ECAL = 0.96, 0.85


def _kaons(ecal_scale, hcal_scale, n=4000, seed=5, noise=0.03):
    """PFO energies = k_had x scale x deposit; deposits h_E·f·T_K (ECal) and (1−f)·T_K (HCal), physics.md §7."""
    rng = np.random.default_rng(seed)
    fraction = np.where(rng.uniform(size=n) < 0.5, 0.005, rng.uniform(0.1, 0.7, n))
    ecal = K_HAD * ecal_scale * H_ECAL * fraction * T_K * (1 + noise * rng.normal(size=n))
    hcal = K_HAD * hcal_scale * (1 - fraction) * T_K * (1 + noise * rng.normal(size=n))
    return [{"ecalToHad": e.astype(np.float32), "hcalToHad": h.astype(np.float32)}
            for e, h in zip(np.array_split(ecal, 4), np.array_split(hcal, 4))]


def _constants(ecal_scale, hcal_scale):
    return {"ECalToHadGeVCalibrationBarrel": ecal_scale, "ECalToHadGeVCalibrationEndCap": 7.0,
            "HCalToHadGeVCalibration": hcal_scale, "CalibrECAL": [37.5, 75.0]}


def test_analyse_recovers_the_hadronic_scales():
    constants = _constants(1.35, 1.0)
    outcome = hadronic_scale.analyse(_kaons(1.35, 1.0), constants, SETTINGS)
    true_ecal, true_hcal = K_HAD * H_ECAL * 1.35 * T_K, K_HAD * T_K  # 54.5 and 47.5 GeV
    assert abs(outcome.metrics["ecalIntercept"] - true_ecal) <= 0.1  # statistics, not the 1.25 GeV grid
    assert abs(outcome.metrics["hcalIntercept"] - true_hcal) <= 0.1
    assert (outcome.metrics["ecalGridIntercept"], outcome.metrics["hcalGridIntercept"]) == (GRID[24], GRID[18])
    assert outcome.metrics["chi2Minimum"] < outcome.metrics["chi2GridMinimum"]
    new = outcome.constants
    assert new["HCalToHadGeVCalibration"] == pytest.approx(T_K * 1.0 / outcome.metrics["hcalIntercept"])
    assert new["ECalToHadGeVCalibrationBarrel"] == pytest.approx(T_K * 1.35 / outcome.metrics["ecalIntercept"])
    assert new["ECalToHadGeVCalibrationEndCap"] == new["ECalToHadGeVCalibrationBarrel"]
    assert new["HCalToHadGeVCalibration"] == pytest.approx(1 / K_HAD, rel=0.1 / true_hcal)
    assert new["ECalToHadGeVCalibrationBarrel"] == pytest.approx(1 / (K_HAD * H_ECAL), rel=0.1 / true_ecal)
    assert new["CalibrECAL"] == [37.5, 75.0] and constants["HCalToHadGeVCalibration"] == 1.0
    assert outcome.converged is False  # the ECal intercept is 10 % high
    assert outcome.metrics["eventsInBand"] == outcome.metrics["eventsSelected"] == 4000.0
    assert outcome.metrics["ecalInterceptAtGridEdge"] == 0.0
    assert all(isinstance(v, (float, str)) for v in outcome.metrics.values())
    (plot,) = outcome.plots
    assert isinstance(plot, Scatter) and plot.line == (outcome.metrics["hcalIntercept"],
                                                       outcome.metrics["ecalIntercept"])
    assert plot.target == T_K and plot.x.size == 4000


def test_analyse_converges_with_the_updated_scales():
    first = hadronic_scale.analyse(_kaons(1.35, 1.0), _constants(1.35, 1.0), SETTINGS)
    ecal_scale = first.constants["ECalToHadGeVCalibrationBarrel"]
    hcal_scale = first.constants["HCalToHadGeVCalibration"]
    second = hadronic_scale.analyse(_kaons(ecal_scale, hcal_scale, seed=6), first.constants, SETTINGS)
    assert second.converged is True
    # Converged at the truth within the statistics, not somewhere in the 2.5 % tolerance as the grid would.
    assert second.metrics["maxRelativeDeviation"] < 0.005


@pytest.mark.parametrize("index, converged", [(20, True), (21, False)])
def test_convergence_uses_the_intercepts_before_the_update(index, converged):
    """Grid point 20 is 0.25 GeV from T_K (0.5 %), point 21 is 1.50 GeV (3.0 % > 2.5 %)."""
    hcal, ecal = _on_line(GRID[index], GRID[index], np.linspace(0.3, 1.0, 50) * GRID[index])
    summaries = [{"ecalToHad": ecal.astype(np.float32), "hcalToHad": hcal.astype(np.float32)}]
    outcome = hadronic_scale.analyse(summaries, _constants(1.2, 1.1), SETTINGS)
    assert outcome.metrics["hcalIntercept"] == outcome.metrics["ecalIntercept"] == GRID[index]
    assert outcome.converged is converged
    assert outcome.metrics["maxRelativeDeviation"] == pytest.approx(abs(GRID[index] - T_K) / T_K)
    assert outcome.constants["HCalToHadGeVCalibration"] == pytest.approx(1.1 * T_K / GRID[index])


def test_analyse_ignores_events_outside_the_band():
    summaries = _kaons(1.0 / (K_HAD * H_ECAL), 1.0 / K_HAD)
    reference = hadronic_scale.analyse(summaries, _constants(1.2, 1.0), SETTINGS)
    outliers = {"ecalToHad": np.array([2.0, 30.0, 0.0], np.float32),
                "hcalToHad": np.array([5.0, 60.0, 0.0], np.float32)}
    outcome = hadronic_scale.analyse(summaries + [outliers], _constants(1.2, 1.0), SETTINGS)
    assert outcome.constants == reference.constants
    assert outcome.metrics["eventsSelected"] == 4003.0 and outcome.metrics["eventsInBand"] == 4000.0


def test_analyse_refuses_too_few_events_in_the_band():
    summaries = _kaons(1.0, 1.0, n=40)
    summaries[0]["hcalToHad"][:] = 90.0  # 10 events out of the band leaves 30
    assert hadronic_scale.analyse(summaries, _constants(1.0, 1.0), SETTINGS).metrics["eventsInBand"] == 30.0
    far = [{"ecalToHad": np.full(50, 30.0, np.float32), "hcalToHad": np.concatenate(
        [np.full(45, 60.0), np.full(5, 20.0)]).astype(np.float32)}]
    with pytest.raises(FitError, match="only 5 of 50 selected kaons .* at least 10"):
        hadronic_scale.analyse(far, _constants(1.0, 1.0), SETTINGS)
    with pytest.raises(FitError, match="no worker summaries"):
        hadronic_scale.analyse([], _constants(1.0, 1.0), SETTINGS)


def test_fit_refuses_unusable_events():
    with pytest.raises(FitError, match="0 HCal and 0 ECal"):
        hadronic_scale.fit_intercepts(np.zeros(0), np.zeros(0), 0.025)
    with pytest.raises(FitError, match="non-finite"):  # an event without energy lies on no line
        hadronic_scale.fit_intercepts(np.array([0.0, 40.0]), np.array([0.0, 10.0]), 0.025)


def test_analyse_refuses_bad_inputs():
    with pytest.raises(ProcedureError, match="ECalToHadGeVCalibrationBarrel"):
        hadronic_scale.analyse(_kaons(1.0, 1.0), {"HCalToHadGeVCalibration": 1.0}, SETTINGS)
    with pytest.raises(SummaryError, match="hcalToHad"):
        hadronic_scale.analyse([{"ecalToHad": np.ones(20, np.float32)}], _constants(1.0, 1.0), SETTINGS)
    with pytest.raises(SummaryError, match="inconsistent"):
        hadronic_scale.analyse([{"ecalToHad": np.ones(20, np.float32), "hcalToHad": np.ones(19, np.float32)}],
                               _constants(1.0, 1.0), SETTINGS)


def test_chi_square_terms_gradient_is_the_derivative():
    hcal, ecal = np.array([30.0, 10.0, 45.0]), np.array([15.0, 30.0, 0.5])
    q, gradient = hadronic_scale.chi_square_terms(hcal, ecal, 48.0, 47.0)
    step = 1e-6
    for index, (da, db) in enumerate(((step, 0.0), (0.0, step))):
        up = hadronic_scale.chi_square_terms(hcal, ecal, 48.0 + da, 47.0 + db)[0]
        down = hadronic_scale.chi_square_terms(hcal, ecal, 48.0 - da, 47.0 - db)[0]
        assert gradient[index] == pytest.approx((up - down) / (2 * step), rel=1e-5)


def test_intercept_covariance_is_the_spread_of_the_fitted_intercepts():
    """Toys of 1000 kaons: the intercepts' spread is the quoted sandwich covariance (within the ±16 %
    that 20 toys allow on a standard deviation at 3 sigma), and it falls as 1/n."""
    fits, quoted = [], []
    for seed in range(20):
        summaries = _kaons(1.0, 1.0, n=1000, seed=100 + seed, noise=0.1)
        hcal = np.concatenate([s["hcalToHad"] for s in summaries]).astype(np.float64)
        ecal = np.concatenate([s["ecalToHad"] for s in summaries]).astype(np.float64)
        fit = hadronic_scale.fit_intercepts(hcal, ecal, 0.025)
        fits.append((fit.ecal, fit.hcal))
        quoted.append(np.sqrt(np.diag(hadronic_scale.intercept_covariance(hcal, ecal, fit.ecal, fit.hcal))))
    ratio = np.array(fits).std(axis=0, ddof=1) / np.mean(quoted, axis=0)
    assert np.all((ratio > 1 - 3 * 0.16) & (ratio < 1 + 3 * 0.16)), ratio
    doubled = hadronic_scale.intercept_covariance(np.tile(hcal, 2), np.tile(ecal, 2), fit.ecal, fit.hcal)
    assert doubled == pytest.approx(hadronic_scale.intercept_covariance(hcal, ecal, fit.ecal, fit.hcal) / 2)


def test_analyse_quotes_the_uncertainty_of_each_scale_and_the_workers_spread():
    outcome = hadronic_scale.analyse(_kaons(1.0, 1.0), _constants(1.0, 1.0), SETTINGS)
    metrics, new, quoted = outcome.metrics, outcome.constants, outcome.uncertainties
    assert quoted["HCalToHadGeVCalibration"] == pytest.approx(
        new["HCalToHadGeVCalibration"] * metrics["hcalInterceptUncertainty"] / metrics["hcalIntercept"])
    assert quoted["ECalToHadGeVCalibrationBarrel"] == pytest.approx(
        new["ECalToHadGeVCalibrationBarrel"] * metrics["ecalInterceptUncertainty"] / metrics["ecalIntercept"])
    assert quoted["ECalToHadGeVCalibrationEndCap"] == quoted["ECalToHadGeVCalibrationBarrel"]
    # four workers of 1000 kaons: their spread agrees with the fit's error within its own ±50 %
    for axis in ("ecal", "hcal"):
        assert 0.3 < metrics[f"{axis}InterceptWorkerSpread"] / metrics[f"{axis}InterceptUncertainty"] < 2.0
    assert metrics["maxRelativeDeviationUncertainty"] == pytest.approx(
        max(metrics["ecalInterceptUncertainty"], metrics["hcalInterceptUncertainty"]) / T_K)
    assert outcome.statistics_note == ""


def test_newton_minimum_is_the_refined_scan_minimum():
    summaries = _kaons(1.0, 1.0, n=2000, seed=9, noise=0.1)
    hcal = np.concatenate([s["hcalToHad"] for s in summaries]).astype(np.float64)
    ecal = np.concatenate([s["ecalToHad"] for s in summaries]).astype(np.float64)
    fit = hadronic_scale.fit_intercepts(hcal, ecal, 0.025)
    ecal_intercept, hcal_intercept = hadronic_scale.newton_minimum(hcal, ecal, (fit.ecal + 1.0, fit.hcal - 1.0))
    # the refinement stops at 1e-3 of the 1.25 GeV grid step
    assert ecal_intercept == pytest.approx(fit.ecal, abs=2e-3) and hcal_intercept == pytest.approx(fit.hcal, abs=2e-3)
    with pytest.raises(FitError, match="did not converge within 1 Newton steps"):
        hadronic_scale.newton_minimum(hcal, ecal, (fit.ecal + 1.0, fit.hcal - 1.0), max_steps=1)
