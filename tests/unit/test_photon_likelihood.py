"""Photon-likelihood XML: Pandora's layout, safe parsing, exact count-weighted merge.

The reader-conformance tests are in test_photon_likelihood_reader.py.
"""
import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure import photon_likelihood as pl
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError

VARIABLES = list(pl.VARIABLES)


def _pandora_text(edges, n_signal, n_background, contents, nbins=2, low=0.0, high=1.0, declaration=False):
    """A file as PhotonReconstructionAlgorithm writes it (trailing spaces, no root), with few bins.

    ``contents``: (kind, variable, k) -> list of nbins+2 values; histograms not given are zero.
    """
    def line(values):
        return "".join(f"{v:g} " for v in values)

    parts = ['<?xml version="1.0" encoding="UTF-8" ?>'] if declaration else []
    parts += [
        f"<NEnergyBins>{len(edges)}</NEnergyBins>",
        f"<EnergyBinLowerEdges>{line(edges)}</EnergyBinLowerEdges>",
        f"<NSignalEvents>{line(n_signal)}</NSignalEvents>",
        "<!-- a comment is harmless -->",
        f"<NBackgroundEvents>{line(n_background)}</NBackgroundEvents>",
    ]
    for variable in VARIABLES:
        for k in range(len(edges)):
            for kind in ("Sig", "Bkg"):
                values = contents.get((kind, variable, k), [0.0] * (nbins + 2))
                parts.append(
                    f"<Photon{kind}{variable}_{k}>\n    <NBinsX>{nbins}</NBinsX>\n    <XLow>{low:g}</XLow>\n"
                    f"    <XHigh>{high:g}</XHigh>\n    <BinContents>{line(values)}</BinContents>\n"
                    f"</Photon{kind}{variable}_{k}>"
                )
    return ("\n".join(parts) + "\n").encode()


# Three workers, two energy bins [0, 5) and [5, ...), PDFs of 2 bins plus under/overflow.
FILE_A = _pandora_text(
    [0, 5], [4, 0], [1, 2],
    {("Sig", "PeakRms", 0): [0, 0.25, 0.75, 0], ("Bkg", "PeakRms", 0): [0, 1, 0, 0],
     ("Sig", "PeakRms", 1): [0, 0.5, 0.5, 0], ("Bkg", "RmsRatio", 1): [0.5, 0, 0, 0.5]},
)
FILE_B = _pandora_text(
    [0, 5], [12, 0], [3, 6],
    {("Sig", "PeakRms", 0): [0.5, 0.25, 0.25, 0], ("Bkg", "PeakRms", 0): [0, 0, 0.5, 0.5],
     ("Bkg", "RmsRatio", 1): [0, 0.5, 0.5, 0]},
)
FILE_C = _pandora_text([0, 5], [0, 0], [0, 0], {("Sig", "PeakRms", 0): [0, 0, 1, 0]})


def test_canonical_histograms():
    assert len(pl.HISTOGRAMS) == 108
    assert list(pl.HISTOGRAMS)[:4] == [
        "PhotonSigPeakRms_0", "PhotonBkgPeakRms_0", "PhotonSigPeakRms_1", "PhotonBkgPeakRms_1"]
    assert list(pl.HISTOGRAMS)[-1] == "PhotonBkgMinDistanceToTrack_8"
    assert pl.HISTOGRAMS["PhotonBkgLongProfileStart_3"] == (11, -0.5, 10.5)
    assert pl.HISTOGRAMS["PhotonSigPeakEnergyFraction_8"] == (52, -0.02, 1.02)
    assert pl.ENERGY_BIN_LOWER_EDGES == (0.0, 0.2, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0, 20.0)
    assert pl.histogram_names(9) == list(pl.HISTOGRAMS)


def test_parse_pandora_layout():
    data = pl.parse_likelihood(FILE_A)
    np.testing.assert_array_equal(data.energy_bin_lower_edges, [0.0, 5.0])
    np.testing.assert_array_equal(data.n_signal, [4, 0])
    np.testing.assert_array_equal(data.n_background, [1, 2])
    assert len(data.histograms) == 24
    nbins, low, high, contents = data.histograms["PhotonSigPeakRms_0"]
    assert (nbins, low, high) == (2, 0.0, 1.0)
    np.testing.assert_array_equal(contents, [0, 0.25, 0.75, 0])
    assert pl.parse_likelihood(_pandora_text([0, 5], [4, 0], [1, 2], {}, declaration=True)).n_signal.tolist() == [4, 0]


def test_merge_known_answer():
    merged = pl.merge_likelihoods([pl.parse_likelihood(f) for f in (FILE_A, FILE_B, FILE_C)])
    np.testing.assert_array_equal(merged.n_signal, [16, 0])
    np.testing.assert_array_equal(merged.n_background, [4, 8])
    h = merged.histograms
    # (4·[0, .25, .75, 0] + 12·[.5, .25, .25, 0] + 0·[0, 0, 1, 0]) / 16
    np.testing.assert_array_equal(h["PhotonSigPeakRms_0"][3], [0.375, 0.25, 0.375, 0])
    # (1·[0, 1, 0, 0] + 3·[0, 0, .5, .5]) / 4
    np.testing.assert_array_equal(h["PhotonBkgPeakRms_0"][3], [0, 0.25, 0.375, 0.375])
    # (2·[.5, 0, 0, .5] + 6·[0, .5, .5, 0]) / 8
    np.testing.assert_array_equal(h["PhotonBkgRmsRatio_1"][3], [0.125, 0.375, 0.375, 0.125])
    # no signal in energy bin 1 anywhere: p stays 0 although file A has a PDF there (no N=0 -> 1)
    np.testing.assert_array_equal(h["PhotonSigPeakRms_1"][3], [0, 0, 0, 0])
    assert h["PhotonSigPeakRms_0"][:3] == (2, 0.0, 1.0)
    # the merged file is written and read back unchanged
    again = pl.parse_likelihood(pl.write_likelihood(merged))
    np.testing.assert_array_equal(again.histograms["PhotonBkgRmsRatio_1"][3], [0.125, 0.375, 0.375, 0.125])
    np.testing.assert_array_equal(again.n_background, [4, 8])


def test_merge_uses_float_counts():
    """p·N is not rounded to whole candidates: 0.1 of 3 candidates (0.3) still counts."""
    pdf = [0, 0.1, 0.9, 0]
    files = [pl.parse_likelihood(_pandora_text([0], [3], [0], {("Sig", "PeakRms", 0): pdf})) for _ in range(2)]
    merged = pl.merge_likelihoods(files)
    np.testing.assert_allclose(merged.histograms["PhotonSigPeakRms_0"][3], pdf, rtol=1e-15)
    assert merged.n_signal.tolist() == [6]


@pytest.mark.parametrize("other", [
    _pandora_text([0, 5], [1, 1], [1, 1], {}, high=2.0),
    _pandora_text([0, 5], [1, 1], [1, 1], {}, nbins=3),
    _pandora_text([0, 4], [1, 1], [1, 1], {}),
    _pandora_text([0], [1], [1], {}),
])
def test_merge_refuses_binning_mismatch(other):
    with pytest.raises(ProcedureError, match="cannot be merged"):
        pl.merge_likelihoods([pl.parse_likelihood(FILE_A), pl.parse_likelihood(other)])


def test_merge_refuses_nothing():
    with pytest.raises(ProcedureError, match="No photon likelihood"):
        pl.merge_likelihoods([])


def _canonical(seed):
    rng = np.random.default_rng(seed)
    histograms = {}
    for name, (nbins, low, high) in pl.HISTOGRAMS.items():
        counts = rng.integers(0, 20, nbins + 2).astype(float)
        histograms[name] = (nbins, low, high, counts / counts.sum())
    return pl.LikelihoodData(np.array(pl.ENERGY_BIN_LOWER_EDGES), rng.integers(0, 50, 9).astype(float),
                             rng.integers(0, 50, 9).astype(float), histograms)


def test_round_trip_is_exact():
    data = _canonical(1)
    content = pl.write_likelihood(data)
    assert content.startswith(b"<NEnergyBins>9</NEnergyBins>\n"
                              b"<EnergyBinLowerEdges>0.0 0.2 0.5 1.0 1.5 2.5 5.0 10.0 20.0 </EnergyBinLowerEdges>\n")
    assert b"<PhotonSigPeakRms_0>\n    <NBinsX>50</NBinsX>\n    <XLow>0.0</XLow>\n    <XHigh>5.0</XHigh>\n" in content
    again = pl.parse_likelihood(content)
    np.testing.assert_array_equal(again.energy_bin_lower_edges, data.energy_bin_lower_edges)
    np.testing.assert_array_equal(again.n_signal, data.n_signal)
    np.testing.assert_array_equal(again.n_background, data.n_background)
    assert list(again.histograms) == list(pl.HISTOGRAMS)
    for name, (nbins, low, high, contents) in data.histograms.items():
        assert again.histograms[name][:3] == (nbins, low, high)
        np.testing.assert_array_equal(again.histograms[name][3], contents)
    assert pl.write_likelihood(again) == content


def test_write_refuses_fractional_or_inconsistent_data():
    data = _canonical(2)
    with pytest.raises(ProcedureError, match="whole numbers"):
        pl.write_likelihood(pl.LikelihoodData(data.energy_bin_lower_edges, data.n_signal + 0.5, data.n_background,
                                              data.histograms))
    histograms = dict(data.histograms)
    del histograms["PhotonBkgPeakRms_4"]
    with pytest.raises(ProcedureError, match="exactly the 108"):
        pl.write_likelihood(
            pl.LikelihoodData(data.energy_bin_lower_edges, data.n_signal, data.n_background, histograms))


DECLARATIONS = [
    b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n'
    b"<EnergyBinLowerEdges>&lol2;</EnergyBinLowerEdges>",
    b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b"<NSignalEvents>&xxe;</NSignalEvents>",
    FILE_A + b'<!DOCTYPE x [<!ENTITY e "e">]>',
]


@pytest.mark.parametrize("content", DECLARATIONS)
def test_parse_refuses_document_type_and_entity_declarations(content):
    with pytest.raises(ProcedureError, match="DOCTYPE ...> declaration, which is refused"):
        pl.parse_likelihood(content)


def test_parse_reads_as_pandoras_tinyxml_does():
    """A licence comment holding '--' (CLDConfig's likelihood files have one) and CDATA are read as
    Pandora reads them; an undeclared entity stays literal text, which is no number."""
    licensed = b"<!--\n-- Copyright (c) 2014-2024 Key4hep-Project.\n--\n  -->\n" + FILE_A
    assert pl.parse_likelihood(licensed).n_signal.tolist() == [4, 0]
    cdata = FILE_A.replace(b"<NSignalEvents>4 0 ", b"<NSignalEvents><![CDATA[4 0]]>")
    assert pl.parse_likelihood(cdata).n_signal.tolist() == [4, 0]
    with pytest.raises(ProcedureError, match="must hold numbers"):
        pl.parse_likelihood(FILE_A.replace(b"<NSignalEvents>4 0 ", b"<NSignalEvents>&xxe; 0 "))


@pytest.mark.parametrize("content, message", [
    (FILE_A.replace(b"<PhotonBkgPeakRms_1>", b"<PhotonBkgPeakRmsX_1>").replace(b"</PhotonBkgPeakRms_1>",
                                                                               b"</PhotonBkgPeakRmsX_1>"),
     "histograms missing: \\['PhotonBkgPeakRms_1'\\]"),
    (FILE_A.replace(b"<NSignalEvents>4 0 ", b"<NSignalEvents>4.5 0 "), "whole numbers"),
    (FILE_A.replace(b"<NSignalEvents>4 0 ", b"<NSignalEvents>4 "), "one per energy bin"),
    (FILE_A.replace(b"0 0.25 0.75 0 ", b"0 0.25 0.75 "), "needs 4"),
    (FILE_A.replace(b"0 0.25 0.75 0 ", b"0 -0.25 0.75 0 "), "negative"),
    (FILE_A.replace(b"0 0.25 0.75 0 ", b"0 nan 0.75 0 "), "non-finite"),
    (FILE_A.replace(b"<NBinsX>2</NBinsX>", b"<NBinsX>two</NBinsX>", 1), "NBinsX"),
    (FILE_A + b"<Extra>1</Extra>", "unexpected element <Extra>"),
    (FILE_A + b"stray text", "outside any element"),
    (FILE_A + FILE_A[FILE_A.index(b"<NBackgroundEvents>"):FILE_A.index(b"<PhotonSig")], "appears twice"),
    (FILE_A.replace(b"<NBackgroundEvents>1 2 </NBackgroundEvents>", b""), "lacks <NBackgroundEvents>"),
    (FILE_A.replace(b"<EnergyBinLowerEdges>0 5 ", b"<EnergyBinLowerEdges>5 0 "), "increasing"),
    (b"<NSignalEvents>1</NSignalEvents", "TinyXML cannot read it"),
    (b"<a>" + b" " * pl.MAX_LIKELIHOOD_BYTES + b"</a>", "limit"),
])
def test_parse_refuses_malformed_files(content, message):
    with pytest.raises(ProcedureError, match=message):
        pl.parse_likelihood(content)


def test_parse_refuses_text():
    with pytest.raises(ProcedureError, match="must be bytes"):
        pl.parse_likelihood(FILE_A.decode())
