"""PNG rendering of step plots and of the convergence history: valid, small, deterministic, and
every element drawn actually changes the image."""
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from ILCDIRAC.CalibrationSystem.Procedure.outcome import Distribution, Scatter
from ILCDIRAC.CalibrationSystem.Procedure.plots import _shown_range, convergence_plot, render_plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 100_000
CONSTANT_NAMES = (
    "CalibrECAL", "ECALEndcapCorrectionFactor", "CalibrHCALBarrel", "CalibrHCALEndcap", "CalibrHCALOther",
    "ECalToMipCalibration", "HCalToMipCalibration", "MuonToMipCalibration", "ECalToEMGeVCalibration",
    "HCalToEMGeVCalibration", "ECalToHadGeVCalibrationBarrel", "ECalToHadGeVCalibrationEndCap",
    "HCalToHadGeVCalibration",
)


def _distribution(**changes):
    rng = np.random.default_rng(7)
    counts, edges = np.histogram(rng.normal(9.6, 0.5, 5000), bins=60, range=(0.0, 12.0))
    fields = dict(name="ecal_barrel", title="ECal barrel: 10 GeV photons", xlabel="ECal hit energy [GeV]",
                  counts=counts.astype(float), edges=edges, window=(8.8, 10.6), gaussian=(390.0, 9.6, 0.5),
                  peak=9.6, target=10.0)
    fields.update(changes)
    return Distribution(**fields)


def _scatter(n, **changes):
    rng = np.random.default_rng(3)
    ecal = rng.uniform(0.1, 0.7, n) * 42.0
    fields = dict(name="hadronic", title="Hadronic scale: 50 GeV K0L", xlabel="HCal hadronic energy [GeV]",
                  ylabel="ECal hadronic energy [GeV]", x=np.maximum(49.5 - ecal / 0.85 + rng.normal(0, 2, n), 0),
                  y=np.maximum(ecal + rng.normal(0, 2, n), 0), line=(51.0, 44.0), target=49.5)
    fields.update(changes)
    return Scatter(**fields)


def _history(changing=CONSTANT_NAMES):
    """Three stages, phases 0-5, every constant in ``changing`` drifting from step to step."""
    sequence = [(1, 0)] * 3 + [(1, 1)] * 3 + [(1, 2), (1, 3), (1, 3), (1, 4), (1, 4), (2, 5)] + [(3, 0)] * 2 + [(3, 4)]
    history = []
    for step, (stage, phase) in enumerate(sequence):
        drift = 1.0 + 0.01 * np.sin(step)
        parameters = {name: (number + 1.0) * (drift if name in changing else 1.0)
                      for number, name in enumerate(CONSTANT_NAMES)}
        parameters["CalibrECAL"] = [parameters["CalibrECAL"], 2.0 * parameters["CalibrECAL"]]
        history.append({"Step": step, "Stage": stage, "Phase": phase, "Parameters": parameters})
    return history


PHASE_0 = ("CalibrECAL", "ECALEndcapCorrectionFactor")


@pytest.fixture(scope="module")
def distribution_png():
    return render_plot(_distribution())


@pytest.fixture(scope="module")
def phase_0_convergence():
    """Only the phase-0 constants change: two panels, the other eleven listed under them."""
    return convergence_plot(_history(changing=PHASE_0))


def _image(png):
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) < MAX_BYTES
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_distribution_png_is_valid_small_and_deterministic(distribution_png):
    assert _image(distribution_png).size == (640, 460)
    assert render_plot(_distribution()) == distribution_png


@pytest.mark.parametrize("change", [
    {"window": None}, {"gaussian": None}, {"peak": None}, {"target": 11.0},
    {"counts": np.roll(_distribution().counts, 3)},
])
def test_every_distribution_element_changes_the_image(change, distribution_png):
    assert render_plot(_distribution(**change)) != distribution_png


@pytest.mark.parametrize("n, change", [(300, {"target": None}), (20000, {"line": None})])
def test_scatter_png(n, change):
    """Few events are drawn as points, many as a 2-D histogram; both with the fitted and ideal lines."""
    png = render_plot(_scatter(n))
    _image(png)
    assert render_plot(_scatter(n, **change)) != png


def test_rendering_is_thread_safe(distribution_png):
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(render_plot, [_distribution()] * 2)) == [distribution_png] * 2


def test_render_plot_refuses_bad_input():
    with pytest.raises(TypeError, match="Distribution or outcome.Scatter, got dict"):
        render_plot({"counts": [1, 2]})
    with pytest.raises(ValueError, match="one more than its 60 counts"):
        render_plot(_distribution(edges=np.linspace(0, 12, 60)))
    with pytest.raises(ValueError, match="counts must be a 1-D array of finite numbers"):
        render_plot(_distribution(counts=np.full(60, np.nan)))
    with pytest.raises(ValueError, match="300 x values but 299 y values"):
        render_plot(_scatter(300, y=np.ones(299)))


def test_convergence_plot_of_a_full_calibration(phase_0_convergence):
    # 13 changing constants: 5 rows of 3 panels, taller than the 2-panel plot of phase 0 alone.
    assert _image(convergence_plot(_history())).size[1] > _image(phase_0_convergence).size[1]


def test_convergence_plot_is_deterministic_and_sorts_steps(phase_0_convergence):
    assert convergence_plot(_history(changing=PHASE_0)[::-1]) == phase_0_convergence


def test_convergence_plot_shows_element_0_of_floatvec(phase_0_convergence):
    history = _history(changing=PHASE_0)
    for entry in history:
        entry["Parameters"]["CalibrECAL"][1] *= 1.5
    assert convergence_plot(history) == phase_0_convergence
    history[4]["Parameters"]["CalibrECAL"][0] *= 1.1
    assert convergence_plot(history) != phase_0_convergence


def test_convergence_plot_of_a_single_step():
    """Nothing has changed yet: every constant gets its panel."""
    first = {"Step": 0, "Stage": 1, "Phase": 0, "Parameters": {"CalibrECAL": [37.5, 37.5], "CalibrHCALBarrel": 46.0}}
    _image(convergence_plot([first]))


@pytest.mark.parametrize("history, message", [
    ([], "non-empty list"),
    ([{"Step": 0, "Stage": 1, "Parameters": {"CalibrECAL": 1.0}}], "keys"),
    ([{"Step": 0, "Stage": 1, "Phase": 0, "Parameters": {}}], "no constants"),
    ([{"Step": 0, "Stage": 1, "Phase": 0, "Parameters": {"CalibrECAL": "high"}}], "must be a number"),
    ([{"Step": 0, "Stage": 1, "Phase": 0, "Parameters": {"CalibrECAL": []}}], "empty list"),
    ([{"Step": 0, "Stage": 1, "Phase": 0, "Parameters": {"CalibrECAL": float("nan")}}], "finite"),
    ([{"Step": 0, "Stage": 1, "Phase": 0, "Parameters": {"CalibrECAL": 1.0}}] * 2, "repeated step"),
])
def test_convergence_plot_refuses_bad_history(history, message):
    with pytest.raises(ValueError, match=message):
        convergence_plot(history)


def test_distribution_axis_leaves_out_an_empty_tail():
    """A MIP peak in a histogram booked far beyond it: the axis ends shortly after 99.9 % of the entries."""
    edges = np.linspace(0.0, 0.002, 501)
    counts = np.zeros(500)
    counts[10:20] = 1000.0
    counts[400] = 1.0  # one far outlier, below 0.1 %
    low, high, hidden = _shown_range(counts, edges)
    assert (low, hidden) == (0.0, 1.0)
    assert high == pytest.approx(edges[20] * 1.1)
    assert _shown_range(np.ones(500), edges)[1:] == (0.002, 0.0)
