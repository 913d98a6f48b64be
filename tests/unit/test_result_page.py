"""The result directory's files (Utilities/CalibrationResults.resultFiles) and its self-contained
summary page (Procedure/result_page): every constant and plot on it, nothing loaded from outside."""
import base64
import json
from html.parser import HTMLParser

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.outcome import Distribution
from ILCDIRAC.CalibrationSystem.Procedure.plots import convergence_plot, render_plot
from ILCDIRAC.CalibrationSystem.Procedure.result_page import summary_page
from ILCDIRAC.CalibrationSystem.Utilities.CalibrationResults import SUMMARY_FILE, SUMMARY_PAGE, resultFiles

FINAL = {"CalibrECAL": [38.27704802473115, 76.5540960494623], "ECalToHadGeVCalibrationBarrel": 1.1925356123456789,
         "MuonToMipCalibration": 20000.000000000004}
INITIAL = {"CalibrECAL": [43.8, 87.6], "ECalToHadGeVCalibrationBarrel": 1.1, "MuonToMipCalibration": 22857.0}


def _png(peak):
    rng = np.random.default_rng(1)
    counts, edges = np.histogram(rng.normal(peak, 0.5, 500), bins=40, range=(peak - 3, peak + 3))
    return render_plot(Distribution("ecal_barrel", "ECal barrel", "E [GeV]", counts.astype(float), edges, peak=peak))


def _result(**changes):
    history = [{"Step": 0, "Stage": 1, "Phase": 0, "Parameters": INITIAL, "Metrics": {"accuracy": 0.05}},
               {"Step": 1, "Stage": 1, "Phase": 4, "Parameters": dict(INITIAL, ECalToHadGeVCalibrationBarrel=1.168),
                "Metrics": None}]
    files = {"step000_stage1_phase0_ecal_barrel.png": _png(10.9), "step000_stage1_phase0_ecal_endcap.png": _png(10.3),
             "step001_stage1_phase4_hadronic_scale.png": _png(49.0), "convergence.png": convergence_plot(history, FINAL),
             "newPandoraLikelihoodData.xml": b"<NEnergyBins>1</NEnergyBins>"}
    result = {"calibrationID": 7, "status": "Finished", "statusMessage": "all phases converged", "parameters": FINAL,
              "steeringFile": "<marlin/>", "steeringFileInput": "<marlin/>", "settings": {}, "history": history,
              "events": [], "files": files, "uncertainties": {}, "statisticsLimited": []}
    result.update(changes)
    return result


class _Page(HTMLParser):
    """Every tag, the images' sources and the text of a page."""

    def __init__(self, content):
        super().__init__()
        self.tags, self.images, self.text, self.links = [], [], [], []
        self.feed(content.decode("utf-8"))

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data"):
                (self.images if tag == "img" else self.links).append(value)

    def handle_data(self, data):
        self.text.append(data)


def test_the_page_holds_every_constant_and_plot_and_nothing_from_outside():
    files = resultFiles(_result())
    page = _Page(files[SUMMARY_PAGE])
    text = " ".join(page.text)
    assert "Calibration 7: Finished" in text and "all phases converged" in text
    for name in FINAL:
        assert name in text
    # the value written to the steering file, its digits (never 17), the initial one next to it
    assert "38.27705 76.5541" in text and "1.192536" in text and "20000" in text and "43.8 87.6" in text
    assert "38.27704802473115" not in text
    embedded = sorted(base64.b64decode(src.split(",", 1)[1]) for src in page.images)
    assert embedded == sorted(content for name, content in files.items() if name.endswith(".png"))
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.links == [] and not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert b"http://" not in files[SUMMARY_PAGE] and b"https://" not in files[SUMMARY_PAGE]
    assert "Step 0: stage 1, phase 0 (ECalDigi)" in text and "Step 1: stage 1, phase 4 (HadronicEnergy)" in text


def test_the_page_shows_uncertainties_where_the_result_has_them():
    result = _result(uncertainties={"ECalToHadGeVCalibrationBarrel": 0.0123456, "CalibrECAL": [0.31, 0.62]})
    text = " ".join(_Page(summary_page(result, result["files"])).text)
    assert "0.012" in text and "1 %" in text  # 0.0123 of 1.19: two significant digits, in % of the value
    assert "0.31 0.62" in text and "0.81 %" in text
    assert "0.0123456" not in text


def test_calibration_json_holds_the_constants_as_written():
    summary = json.loads(resultFiles(_result())[SUMMARY_FILE])
    assert summary["parameters"] == {"CalibrECAL": [38.27705, 76.5541], "ECalToHadGeVCalibrationBarrel": 1.192536,
                                     "MuonToMipCalibration": 20000.0}
    assert summary["history"][1]["Parameters"]["ECalToHadGeVCalibrationBarrel"] == 1.168
    assert summary["history"][0]["Metrics"] == {"accuracy": 0.05}


def test_the_page_lists_the_statistics_limited_phases():
    note = "HadronicEnergy: deviation 1.1% ± 1.3% cannot reach the accuracy 2.5%; about 900 events would"
    text = " ".join(_Page(summary_page(_result(statisticsLimited=[note]), {})).text)
    assert "Statistics-limited phases" in text and note in text
    assert "Statistics-limited" not in " ".join(_Page(summary_page(_result(), {})).text)
