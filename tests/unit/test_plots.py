"""PNG rendering of step plots and of the convergence history: valid, small, deterministic, and
every element drawn actually changes the image."""
import dataclasses
import io
import json
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from ILCDIRAC.CalibrationSystem.Procedure.histogram import fit_peak
from ILCDIRAC.CalibrationSystem.Procedure.outcome import (
    FULLEST_BIN, MAX_DISPLAY_BINS, Distribution, PdfComparison, Scatter, decode_plots, display_histogram, encode_plots, nice_width)
from ILCDIRAC.CalibrationSystem.Procedure.plots import (
    _deviations, _display_unit, _measured, _shown_range, convergence_plot, render_plot)

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
    with pytest.raises(TypeError, match="Distribution, Scatter or PdfComparison, got dict"):
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


@pytest.mark.parametrize("element", [0, 1])
def test_convergence_plot_shows_every_element_of_a_floatvec(phase_0_convergence, element):
    history = _history(changing=PHASE_0)
    history[4]["Parameters"]["CalibrECAL"][element] *= 1.1
    assert convergence_plot(history) != phase_0_convergence


def test_convergence_plot_ends_with_the_value_written():
    """The last step's update is only in the calibration's constants (what the steering file gets):
    a constant changed by it alone gets a panel, and the value written changes the image."""
    history = _history(changing=())
    final = dict(history[-1]["Parameters"], HCalToHadGeVCalibration=1.1925)
    plain, with_final = convergence_plot(history), convergence_plot(history, final)
    # nothing changed in the steps: 13 panels; the final update changed one: its panel, 12 listed
    assert _image(with_final).size[1] < _image(plain).size[1]
    assert convergence_plot(history, dict(final, HCalToHadGeVCalibration=1.2)) != with_final


def _with_metrics(history):
    """Phase-0 and phase-4 steps report deviations from their targets, as the phases do."""
    for entry in history:
        if entry["Phase"] == 0:
            entry["Metrics"] = {"accuracy": 0.05, "barrelRelativeDeviation": 0.08 / (entry["Step"] + 1),
                                "endcapRelativeDeviation": -0.03, "maxRelativeDeviation": 0.08, "barrelMean": 10.8,
                                "barrelRelativeDeviationUncertainty": 0.004}
        elif entry["Phase"] == 4:
            entry["Metrics"] = {"accuracy": 0.025, "ecalRelativeDeviation": 0.01, "hcalRelativeDeviation": -0.02}
        else:
            entry["Metrics"] = None  # e.g. the running step
    return history


def test_convergence_plot_shows_each_phase_deviation_against_its_accuracy(phase_0_convergence):
    history = _with_metrics(_history(changing=PHASE_0))
    png = convergence_plot(history)
    assert _image(png).size[1] > _image(phase_0_convergence).size[1]  # two deviation panels more
    history[0]["Metrics"]["endcapRelativeDeviation"] = 0.04
    assert convergence_plot(history) != png
    deviations = _deviations(*[np.array([e["Step"] for e in history]), [(e["Stage"], e["Phase"]) for e in history],
                               [e["Metrics"] or {} for e in history]])
    assert list(deviations) == [0, 4] and deviations[4][0] == 0.025
    assert set(deviations[0][1]) == {"barrel", "endcap"}
    assert deviations[0][1]["barrel"][0][0] == pytest.approx(8.0)  # in %
    assert deviations[0][1]["barrel"][1][0] == pytest.approx(0.4)  # its error bar, in %
    assert np.isnan(deviations[0][1]["endcap"][1][0])  # no uncertainty given: no error bar
    assert np.isnan(deviations[0][1]["barrel"][0][5])  # a phase-1 step
    before = convergence_plot(history)
    history[0]["Metrics"]["barrelRelativeDeviationUncertainty"] = 0.02
    assert convergence_plot(history) != before  # the error bar is drawn


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


def test_distribution_axis_leaves_out_empty_tails():
    """A MIP peak in a histogram booked from 0 far beyond it: the axis spans the bins holding 99.9 %
    of the entries and a margin, and says how many entries it leaves out."""
    edges = np.linspace(0.0, 0.002, 501)
    counts = np.zeros(500)
    counts[100:120] = 1000.0
    counts[400] = 1.0  # one far outlier, below 0.1 %
    low, high, below, above = _shown_range(counts, edges)
    assert (below, above) == (0.0, 1.0)
    assert low == pytest.approx(edges[100] - 0.1 * (edges[120] - edges[100]))
    assert high == pytest.approx(edges[120] + 0.1 * (edges[120] - edges[100]))
    assert _shown_range(np.ones(500), edges) == (0.0, 0.002, 0.0, 0.0)


def _peak_fit(values, accuracy=0.05):
    return fit_peak(values, accuracy, 10.0)


def test_a_fitted_peak_is_shown_around_it_in_bins_of_its_width():
    """The issue's case: 0.5 GeV fit bins on a 0.55 GeV wide peak at 10 GeV, with a tail to 0.
    The plot shows the peak within a few widths in bins of at most a quarter of its width, counts
    the tail it leaves out, and scales the Gaussian to its bins (same area as the fit's)."""
    rng = np.random.default_rng(11)
    values = np.concatenate([rng.normal(10.0, 0.55, 5000), rng.uniform(0.0, 10.0, 200)])
    peak = _peak_fit(values)
    plot = Distribution.of_peak(peak, "ecal_barrel", "ECal", "E [GeV]", 10.0, values)
    width = np.diff(plot.edges)[0]
    assert width <= peak.sigma / 2.5 and width == pytest.approx(0.1)
    assert plot.edges[0] >= peak.mean - 6 * peak.sigma and plot.edges[-1] <= peak.mean + 6 * peak.sigma
    assert plot.below > 100 and plot.below + plot.above + plot.counts.sum() == values.size
    assert plot.fit_bin_width == pytest.approx(np.diff(peak.edges)[0])
    assert plot.gaussian[0] / width == pytest.approx(peak.amplitude / plot.fit_bin_width)
    assert (plot.mean_error, plot.chi2, plot.ndf, plot.method) == (peak.mean_error, peak.chi2, peak.ndf, "gaussian")
    _image(render_plot(plot))
    # without the values, the fit's own histogram
    assert Distribution.of_peak(peak, "ecal_barrel", "ECal", "E [GeV]").counts is peak.counts


@pytest.mark.parametrize("width, nearest, up", [
    (0.137, 0.1, 0.2), (0.18, 0.2, 0.2), (0.2, 0.2, 0.2), (3.1, 2.5, 5.0), (7e-6, 5e-6, 1e-5), (8.9, 10.0, 10.0)])
def test_nice_widths(width, nearest, up):
    assert nice_width(width) == pytest.approx(nearest)
    assert nice_width(width, at_least=True) == pytest.approx(up)


def test_display_histogram_keeps_to_its_bin_limit():
    counts, edges, below, above = display_histogram(np.linspace(0, 100, 1001), 0.0, 100.0, 0.01)
    assert counts.size <= MAX_DISPLAY_BINS and (below, above) == (0.0, 0.0) and counts.sum() == 1001


@pytest.mark.parametrize("value, error, unit, text", [
    (10.90603, 0.02934, "GeV", "10.906 ± 0.029 GeV"),
    (49.3412, 0.523, "GeV", "49.34 ± 0.52 GeV"),
    (1234.5, 56.0, "", "1234 ± 56"),
    (0.60537600599, None, "GeV", "0.6054 GeV"),
])
def test_numbers_are_shown_with_sensible_digits(value, error, unit, text):
    assert _measured(value, error, unit) == text


@pytest.mark.parametrize("magnitude, unit, factor", [
    (10.0, "GeV", 1.0), (0.0057, "MeV", 1e3), (4.6e-4, "MeV", 1e3), (5e-5, "keV", 1e6), (1e-9, "keV", 1e6)])
def test_small_energies_are_shown_in_mev_or_kev(magnitude, unit, factor):
    assert _display_unit("GeV", magnitude) == (unit, factor)
    assert _display_unit("mm", magnitude) == ("mm", 1.0)


def test_mip_peak_shows_its_bin_in_kev():
    """A muon-system MIP peak at 50 keV (the issue's '5e-05 GeV'): drawn in keV, its bin marked."""
    edges = np.linspace(0.0, 0.001, 251)
    counts = np.zeros(250)
    counts[8:20] = [5, 40, 200, 450, 1300, 1200, 950, 600, 400, 200, 100, 50]
    plot = Distribution("muonMip", "Muon MIP", "hit energy [GeV]", counts, edges, peak=5e-05, method=FULLEST_BIN)
    png = render_plot(plot)
    _image(png)
    assert render_plot(dataclasses.replace(plot, method="")) != png


def test_plots_survive_encoding_and_plots_of_an_earlier_version_decode():
    rng = np.random.default_rng(5)
    values = rng.normal(10.0, 0.5, 500)
    plot = Distribution.of_peak(_peak_fit(values), "em", "EM", "E [GeV]", 10.0, values)
    decoded = decode_plots(encode_plots({"em.png": plot}))["em.png"]
    assert decoded.mean_error == plot.mean_error and decoded.ndf == plot.ndf and decoded.above == plot.above
    np.testing.assert_array_equal(decoded.counts, plot.counts)
    old = {"em.png": {"kind": "Distribution", "name": "em", "title": "EM", "xlabel": "E [GeV]", "counts": [1.0, 2.0],
                      "edges": [0.0, 1.0, 2.0], "window": None, "gaussian": None, "peak": 1.5, "target": None}}
    earlier = decode_plots(zlib.compress(json.dumps(old).encode()))["em.png"]
    assert (earlier.below, earlier.mean_error, earlier.method) == (0.0, None, "")


def test_photon_training_pdfs_are_drawn():
    edges = np.linspace(0.0, 5.0, 51)
    signal = np.exp(-np.linspace(0, 5, 50))
    plot = PdfComparison("photon_PeakRms", "Photon training: PeakRms", "PeakRms", edges, signal / signal.sum(),
                         np.full(50, 0.02), 0.01, 0.0, 24.0, 36.0)
    png = render_plot(plot)
    _image(png)
    assert render_plot(dataclasses.replace(plot, background=np.full(50, 0.01))) != png
    assert decode_plots(encode_plots({"p": plot}))["p"].signal_events == 24.0
    with pytest.raises(ValueError, match="49 background values for 51 edges"):
        render_plot(dataclasses.replace(plot, background=np.ones(49)))
