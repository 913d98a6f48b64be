"""Reader conformance: the likelihood files the calibration writes are what LCContent reads.

``pandora_photon_reader`` emulates PhotonReconstructionAlgorithm::InitialiseHistogramReading from
the C++. It is first checked on ``photon_likelihood_2ebin.xml``, a small file with the layout of
CLICPerformance's PandoraLikelihoodData9EBin.xml (2 energy bins), and on what the C++ accepts and
refuses; then it reads what write_likelihood, the service's merge and the synthetic training write.
"""
import re
from pathlib import Path

import numpy as np
import pytest

from pandora_photon_reader import ReaderFailure, read_photon_likelihood

from ILCDIRAC.CalibrationSystem.Procedure import photon_likelihood as pl
from ILCDIRAC.CalibrationSystem.Procedure import photon_training
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import ReconstructionOutput
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import DetectorTruth, generate

FIXTURE = (Path(__file__).parent / "photon_likelihood_2ebin.xml").read_bytes()
LICENCE = b"<!--\n-- Copyright (c) a collaboration.\n--\n-- Licensed under a licence.\n  -->\n"
TRUTH = DetectorTruth()


def _histogram_block(content, name):
    start = content.index(f"<{name}>".encode())
    return content[start:content.index(f"</{name}>".encode()) + len(name) + 3]


def _skeleton(content):
    """The file without the numbers: elements, their order, line breaks and indentation."""
    return re.sub(rb">[^<\n]*</", b"></", content)


# ---------------------------------------------------------------- the emulation, on the fixture


def test_reader_reads_the_fixture():
    read = read_photon_likelihood(FIXTURE)
    assert read["n_energy_bins"] == 2
    assert read["edges"] == [0.0, 5.0]
    assert (read["n_signal"], read["n_background"]) == ([31207, 8841], [97115, 2306])
    assert len(read["histograms"]) == 24
    nbins, low, high, contents = read["histograms"]["PhotonBkgLongProfileDiscrepancy_1"]
    assert (nbins, len(contents)) == (42, 44)
    assert (low, high) == (float(np.float32(-0.02)), float(np.float32(0.82)))
    assert sum(contents) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("variant", [
    LICENCE + FIXTURE,  # CLD's licence header: "--" inside a comment, which TinyXML accepts
    b'<?xml version="1.0" ?>\n' + FIXTURE,
    FIXTURE.replace(b"31207 8841", b"31207\n\t8841"),  # TinyXML condenses white space to one space
    FIXTURE.replace(b"<NSignalEvents>31207 ", b"<NSignalEvents>31207abc "),  # istringstream reads a prefix
    FIXTURE.replace(b"<EnergyBinLowerEdges>0 5 ", b"<EnergyBinLowerEdges>5 0 "),  # Pandora sorts the edges
    FIXTURE + b"<NEnergyBins>7</NEnergyBins>\n",  # the first element of a name counts
    FIXTURE + b"stray text is where TinyXML stops reading",
])
def test_reader_accepts_what_pandora_accepts(variant):
    read = read_photon_likelihood(variant)
    assert (read["n_energy_bins"], read["edges"], read["n_signal"]) == (2, [0.0, 5.0], [31207, 8841])


def _drop(tag):
    return lambda content: re.sub(rf"<{tag}>[^<]*</{tag}>\n".encode(), b"", content, count=1)


def _replace(old, new):
    return lambda content: content.replace(old, new, 1)


def _without_histogram(name):
    return lambda content: content.replace(_histogram_block(content, name) + b"\n", b"")


def _in_histogram(name, old, new):
    def mutate(content):
        block = _histogram_block(content, name)
        return content.replace(block, block.replace(old, new, 1))
    return mutate


#: (what is wrong, how to make the fixture so, what parse_likelihood says): Pandora fails on each.
REFUSED = [
    ("no NEnergyBins (pre-2016)", _drop("NEnergyBins"), "lacks <NEnergyBins>"),
    ("NEnergyBins above the edges", _replace(b"<NEnergyBins>2", b"<NEnergyBins>3"), "holds 2 values"),
    ("NEnergyBins 0", _replace(b"<NEnergyBins>2", b"<NEnergyBins>0"), "from 1 to 10000"),
    ("NEnergyBins not a number", _replace(b"<NEnergyBins>2", b"<NEnergyBins>two"), "NEnergyBins"),
    ("repeated edge", _replace(b"<EnergyBinLowerEdges>0 5 ", b"<EnergyBinLowerEdges>5 5 "), "distinct"),
    ("no edges", _drop("EnergyBinLowerEdges"), "lacks <EnergyBinLowerEdges>"),
    ("no background counts", _drop("NBackgroundEvents"), "lacks <NBackgroundEvents>"),
    ("count per energy bin missing", _replace(b"<NSignalEvents>31207 8841", b"<NSignalEvents>31207"),
     "one per energy bin"),
    ("count not an int", _replace(b"<NSignalEvents>31207", b"<NSignalEvents>x31207"), "numbers"),
    ("count beyond int", _replace(b"<NSignalEvents>31207", b"<NSignalEvents>4294967296"), "up to 2147483647"),
    ("histogram missing", _without_histogram("PhotonBkgMinDistanceToTrack_1"),
     r"missing: \['PhotonBkgMinDistanceToTrack_1'\]"),
    ("NBinsX 0", _in_histogram("PhotonSigRmsRatio_1", b"<NBinsX>30", b"<NBinsX>0"), "NBinsX"),
    ("NBinsX missing", _in_histogram("PhotonSigRmsRatio_1", b"<NBinsX>30</NBinsX>", b""), "lacks"),
    ("empty range", _in_histogram("PhotonBkgPeakRms_0", b"<XHigh>5", b"<XHigh>0"), "not above XLow"),
    ("range below float epsilon", _in_histogram("PhotonBkgPeakRms_0", b"<XHigh>5", b"<XHigh>0.0000001"),
     "not above XLow"),
    ("one content too many", _in_histogram("PhotonSigPeakRms_1", b"<BinContents>", b"<BinContents>0.0 "),
     "needs 52"),
    ("content beyond float", _in_histogram("PhotonSigPeakRms_1", b"<BinContents>0.0", b"<BinContents>1e39"),
     "cannot read into a float"),
    ("empty element", _replace(b"<NBackgroundEvents>97115 2306</NBackgroundEvents>",
                               b"<NBackgroundEvents></NBackgroundEvents>"), "one per energy bin"),
    ("unterminated element", lambda content: content[:-2], "TinyXML cannot read it"),
]


@pytest.mark.parametrize("mutate, message", [entry[1:] for entry in REFUSED], ids=[entry[0] for entry in REFUSED])
def test_parse_requires_what_the_reader_requires(mutate, message):
    """Each file Pandora would fail on is refused by parse_likelihood too, saying what is wrong."""
    content = mutate(FIXTURE)
    assert content != FIXTURE
    with pytest.raises(ReaderFailure):
        read_photon_likelihood(content)
    with pytest.raises(ProcedureError, match=message):
        pl.parse_likelihood(content)


def test_parse_reads_the_values_pandora_reads():
    read, parsed = read_photon_likelihood(FIXTURE), pl.parse_likelihood(FIXTURE)
    assert parsed.energy_bin_lower_edges.tolist() == read["edges"]
    assert (parsed.n_signal.tolist(), parsed.n_background.tolist()) == (read["n_signal"], read["n_background"])
    for name, (nbins, low, high, contents) in read["histograms"].items():
        assert parsed.histograms[name][0] == nbins
        np.testing.assert_array_equal(np.float32(parsed.histograms[name][1:3]), np.float32([low, high]))
        np.testing.assert_array_equal(np.float32(parsed.histograms[name][3]), np.float32(contents))


# ---------------------------------------------------------------- what the calibration writes


def _assert_reads_back(content, data):
    """Pandora reads ``content`` and finds ``data`` (to float precision)."""
    read = read_photon_likelihood(content)
    assert read["n_energy_bins"] == len(data.energy_bin_lower_edges)
    np.testing.assert_array_equal(np.float32(read["edges"]), np.float32(data.energy_bin_lower_edges))
    assert read["n_signal"] == data.n_signal.tolist() and read["n_background"] == data.n_background.tolist()
    assert list(read["histograms"]) == pl.histogram_names(len(data.energy_bin_lower_edges))
    for name, (nbins, low, high, contents) in read["histograms"].items():
        assert (nbins, np.float32(low), np.float32(high)) == (data.histograms[name][0], *np.float32(
            data.histograms[name][1:3]))
        np.testing.assert_array_equal(np.float32(contents), np.float32(data.histograms[name][3]))
    return read


def test_written_file_has_the_layout_of_the_real_files():
    written = pl.write_likelihood(pl.parse_likelihood(FIXTURE))
    assert _skeleton(written) == _skeleton(FIXTURE)
    assert not written.startswith(b"<?xml")
    _assert_reads_back(written, pl.parse_likelihood(FIXTURE))


def test_pandora_reads_a_written_nine_bin_file():
    rng = np.random.default_rng(3)
    histograms = {}
    for name, (nbins, low, high) in pl.HISTOGRAMS.items():
        counts = rng.integers(0, 20, nbins + 2).astype(float)
        histograms[name] = (nbins, low, high, counts / counts.sum())
    data = pl.LikelihoodData(np.array(pl.ENERGY_BIN_LOWER_EDGES), rng.integers(0, 50, 9).astype(float),
                             rng.integers(0, 50, 9).astype(float), histograms)
    _assert_reads_back(pl.write_likelihood(data), data)


def _worker_files():
    """The synthetic training output of three workers (written through write_likelihood)."""
    return [generate("zuds", np.arange(first, first + 200), {}, TRUTH, stage=2).likelihood for first in (0, 200, 400)]


def test_pandora_reads_the_synthetic_training_output():
    for content in _worker_files():
        read = _assert_reads_back(content, pl.parse_likelihood(content))
        assert read["n_energy_bins"] == 9 and sum(read["n_signal"]) > 0


def test_pandora_reads_the_merge_of_several_workers():
    """The service's merge, as the step artifact, read by Pandora: Σp·N/ΣN of what Pandora reads per worker."""
    files = _worker_files()
    summaries = [photon_training.collect({"zuds": ReconstructionOutput(likelihood=content)}, {}) for content in files]
    merged = photon_training.analyse(summaries, {}, {}).artifacts[photon_training.ARTIFACT]
    read = read_photon_likelihood(merged)
    workers = [read_photon_likelihood(content) for content in files]
    assert read["n_signal"] == list(np.sum([w["n_signal"] for w in workers], axis=0))
    assert read["n_background"] == list(np.sum([w["n_background"] for w in workers], axis=0))
    for name, (_, _, _, contents) in read["histograms"].items():
        k = int(name.rsplit("_", 1)[1])
        counts = "n_signal" if name.startswith("PhotonSig") else "n_background"
        weighted = sum(np.array(w["histograms"][name][3]) * w[counts][k] for w in workers)
        total = read[counts][k]
        np.testing.assert_allclose(contents, weighted / total if total else 0 * weighted, rtol=1e-6, atol=1e-9)
    assert merged == pl.write_likelihood(pl.merge_likelihoods([pl.parse_likelihood(f) for f in files]))
