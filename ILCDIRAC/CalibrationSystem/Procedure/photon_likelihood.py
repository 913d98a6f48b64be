"""Pandora's photon-likelihood XML: read, write and merge (physics.md §3).

A training run (stage 2) makes every worker write one file; the service merges them into the
likelihood stage 3 reconstructs with. The file is Pandora's: a *rootless* sequence of elements,
NEnergyBins, EnergyBinLowerEdges, NSignalEvents, NBackgroundEvents, then for each variable (in
the order of LCContent's PhotonReconstructionAlgorithm) and each energy bin k the histograms
PhotonSig<Variable>_<k> and PhotonBkg<Variable>_<k>. A histogram holds NBinsX, XLow, XHigh and
BinContents: NBinsX + 2 numbers (underflow, the bins, overflow), normalised to unit sum.

What LCContent's reader (PhotonReconstructionAlgorithm::InitialiseHistogramReading, PandoraSDK's
Histogram) needs is what :func:`parse_likelihood` requires and :func:`write_likelihood` writes:
NEnergyBins between 1 and 10000 and equal to the number of distinct EnergyBinLowerEdges, one int
count per energy bin, for every histogram NBinsX > 0, XHigh - XLow of at least the float epsilon
and NBinsX + 2 contents, every number readable as the C++ int or float it is read into.

The merge is a count-weighted average: merged p = Σ p_i·N_i / Σ N_i with N the worker's signal or
background count of that energy bin, in floating point (no rounding to integers), so the priors
N_sig/N_bkg Pandora's photon ID uses are preserved. An energy bin nobody filled keeps N = 0 and
p = 0 (no division by a substitute 1). Files are only merged when their binning is identical.
"""
import re
from dataclasses import dataclass

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.tinyxml_document import PANDORA, Element, parse_document

MAX_LIKELIHOOD_BYTES = 5 * 1024 * 1024

#: Lower edges (GeV, cluster EM energy) of the energy bins the training configures.
ENERGY_BIN_LOWER_EDGES = (0.0, 0.2, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0, 20.0)

#: The likelihood variables in the order Pandora writes them, with their default (nbins, low, high).
VARIABLES = {
    "PeakRms": (50, 0.0, 5.0),
    "RmsRatio": (30, 1.0, 3.0),
    "LongProfileStart": (11, -0.5, 10.5),
    "LongProfileDiscrepancy": (42, -0.02, 0.82),
    "PeakEnergyFraction": (52, -0.02, 1.02),
    "MinDistanceToTrack": (40, 0.0, 20.0),
}
KINDS = ("Sig", "Bkg")  # signal (photon) and background PDFs


def histogram_names(n_energy_bins=len(ENERGY_BIN_LOWER_EDGES)):
    """Names of all PDF histograms, in the order Pandora writes them: variable, energy bin, Sig/Bkg.

    :param int n_energy_bins: number of energy bins (9 by default)
    :return: list of str, e.g. 'PhotonSigPeakRms_0'
    """
    return [
        f"Photon{kind}{variable}_{k}" for variable in VARIABLES for k in range(n_energy_bins) for kind in KINDS
    ]


#: The canonical 108 histograms (6 variables x 9 energy bins x signal/background): name -> (nbins, low, high).
HISTOGRAMS = {
    f"Photon{kind}{variable}_{k}": binning
    for variable, binning in VARIABLES.items()
    for k in range(len(ENERGY_BIN_LOWER_EDGES))
    for kind in KINDS
}

_HISTOGRAM_NAME = re.compile(r"Photon(Sig|Bkg)([A-Za-z]+)_([0-9]+)")
#: The elements before the histograms, in the order Pandora writes them; its reader needs them all.
_SCALAR_ELEMENTS = ("NEnergyBins", "EnergyBinLowerEdges", "NSignalEvents", "NBackgroundEvents")
_HISTOGRAM_ELEMENTS = ("NBinsX", "XLow", "XHigh", "BinContents")
#: Pandora's sanity limit on NEnergyBins.
MAX_ENERGY_BINS = 10000
# Pandora reads NBinsX and the counts into a C++ int, edges, bin edges and contents into a float.
_INT_MAX = 2**31 - 1
_FLOAT_MAX = float(np.finfo(np.float32).max)
_FLOAT_EPSILON = np.finfo(np.float32).eps


@dataclass(frozen=True)
class LikelihoodData:
    """One photon-likelihood file.

    ``energy_bin_lower_edges``, ``n_signal``, ``n_background``: float64 arrays of one value per
    energy bin (the counts are whole numbers; the number of energy bins is that of the edges).
    ``histograms``: name -> (nbins, xlow, xhigh, contents) with contents a float64 array of
    nbins + 2 values (underflow, bins, overflow).
    """

    energy_bin_lower_edges: np.ndarray
    n_signal: np.ndarray
    n_background: np.ndarray
    histograms: dict


def _energy_bin(name):
    """(kind, energy bin) of a histogram name."""
    kind, _, k = _HISTOGRAM_NAME.fullmatch(name).groups()
    return kind, int(k)


def _error(message):
    return ProcedureError(f"Photon likelihood file: {message}")


def _check_values(values, name):
    """Finite numbers a C++ float can hold (Pandora's reader fails on anything else)."""
    if not np.all(np.isfinite(values)):
        raise _error(f"<{name}> holds non-finite values")
    if np.any(np.abs(values) > _FLOAT_MAX):
        raise _error(f"<{name}> holds values beyond {_FLOAT_MAX:g}, which Pandora cannot read into a float")


def _numbers(element, name):
    text = (element.text or "").split()
    try:
        values = np.array([float(v) for v in text], dtype=np.float64)
    except ValueError:
        raise _error(f"<{name}> must hold numbers separated by spaces, got {element.text!r}") from None
    _check_values(values, name)
    return values


def _scalar(element, name):
    value = _numbers(element, name)
    if value.size != 1:
        raise _error(f"<{name}> must hold one number, got {element.text!r}")
    return float(value[0])


def _is_whole(values, low, high):
    values = np.asarray(values, dtype=np.float64)
    return bool(np.all(np.isfinite(values)) and np.all(values == np.floor(values))
                and np.all(values >= low) and np.all(values <= high))


def _check_energy_bins(n_energy_bins, edges):
    """NEnergyBins and the edges as PhotonReconstructionAlgorithm checks them (after reading them as floats)."""
    if not _is_whole(n_energy_bins, 1, MAX_ENERGY_BINS):
        raise _error(f"<NEnergyBins> is {n_energy_bins!r}; Pandora needs a whole number from 1 to {MAX_ENERGY_BINS}")
    if edges.size != n_energy_bins:
        raise _error(
            f"<NEnergyBins> is {int(n_energy_bins)} but <EnergyBinLowerEdges> holds {edges.size} values;"
            " Pandora needs one lower edge per energy bin"
        )
    _check_values(edges, "EnergyBinLowerEdges")
    if np.any(np.diff(edges.astype(np.float32)) <= 0):
        raise _error(f"<EnergyBinLowerEdges> must be distinct increasing numbers, got {edges.tolist()}")


def _check_counts(values, name, n_energy_bins):
    if values.size != n_energy_bins:
        raise _error(f"<{name}> has {values.size} values, one per energy bin ({n_energy_bins}) is needed")
    if not _is_whole(values, 0, _INT_MAX):
        raise _error(
            f"<{name}> must hold non-negative whole numbers (event counts) up to {_INT_MAX}, Pandora reads them"
            f" as int; got {values.tolist()}"
        )


def _check_histogram(name, nbins, low, high, contents):
    """A histogram PandoraSDK's Histogram(TiXmlHandle) constructor accepts, holding a PDF."""
    if not _is_whole(nbins, 1, _INT_MAX):
        raise _error(f"histogram <{name}> has NBinsX {nbins!r}, a positive whole number is needed")
    _check_values(np.array([low, high]), f"{name}/XLow, XHigh")
    if np.float32(high) - np.float32(low) < _FLOAT_EPSILON:
        raise _error(f"histogram <{name}> has XHigh {high} not above XLow {low}, as Pandora needs")
    if len(contents) != int(nbins) + 2:
        raise _error(
            f"histogram <{name}> has {len(contents)} bin contents; NBinsX={int(nbins)} needs {int(nbins) + 2}"
            " (underflow, bins, overflow)"
        )
    _check_values(contents, f"{name}/BinContents")
    if np.any(np.asarray(contents) < 0):
        raise _error(f"histogram <{name}> has negative bin contents; a PDF cannot")


def _histogram(element):
    name = element.name
    children = {}
    for child in element.elements():
        if child.name in children or child.name not in _HISTOGRAM_ELEMENTS:
            raise _error(f"histogram <{name}> has an unexpected or repeated element <{child.name}>")
        children[child.name] = child
    missing = [tag for tag in _HISTOGRAM_ELEMENTS if tag not in children]
    if missing:
        raise _error(f"histogram <{name}> lacks {missing}")
    nbins, low, high = (_scalar(children[tag], f"{name}/{tag}") for tag in ("NBinsX", "XLow", "XHigh"))
    contents = _numbers(children["BinContents"], f"{name}/BinContents")
    _check_histogram(name, nbins, low, high, contents)
    return int(nbins), low, high, contents


def parse_likelihood(content):
    """Parse a photon-likelihood file (bytes); ProcedureError if it is malformed, unsafe or incomplete.

    The rootless sequence of elements is read as Pandora's TinyXML reads it (tinyxml_document:
    comments with '--' are fine; DTDs and entity declarations are refused). Everything Pandora's
    reader needs must be there and readable (see the module docstring), and the histograms must
    be exactly the canonical set for the file's number of energy bins.

    :param bytes content: the file
    :return: LikelihoodData
    """
    document = parse_document(content, "Photon likelihood file:", PANDORA, max_bytes=MAX_LIKELIHOOD_BYTES)
    rest = document.data[document.end:].strip()
    if rest:  # TinyXML stops reading there: what follows would be lost
        raise _error(f"text {rest[:40].decode(errors='replace')!r} outside any element "
                     f"({document.where(document.end)})")
    scalars, histograms = {}, {}
    for element in document.nodes:
        if not isinstance(element, Element):
            continue  # comments and declarations carry no data
        if element.name in scalars or element.name in histograms:
            raise _error(f"element <{element.name}> appears twice")
        if element.name in _SCALAR_ELEMENTS:
            scalars[element.name] = element
        elif _HISTOGRAM_NAME.fullmatch(element.name):
            histograms[element.name] = _histogram(element)
        else:
            raise _error(f"unexpected element <{element.name}>; is this a Pandora photon-likelihood file?")
    missing = [f"<{tag}>" for tag in _SCALAR_ELEMENTS if tag not in scalars]
    if missing:
        raise _error(
            f"it lacks {', '.join(missing)}; LCContent's PhotonReconstructionAlgorithm reads"
            f" {', '.join(_SCALAR_ELEMENTS)} before the histograms (files written before 2016 lack NEnergyBins:"
            " train the likelihood again)"
        )
    n_energy_bins = _scalar(scalars["NEnergyBins"], "NEnergyBins")
    edges = _numbers(scalars["EnergyBinLowerEdges"], "EnergyBinLowerEdges")
    _check_energy_bins(n_energy_bins, edges)
    n_signal = _numbers(scalars["NSignalEvents"], "NSignalEvents")
    n_background = _numbers(scalars["NBackgroundEvents"], "NBackgroundEvents")
    _check_counts(n_signal, "NSignalEvents", edges.size)
    _check_counts(n_background, "NBackgroundEvents", edges.size)
    expected = histogram_names(edges.size)
    missing = [name for name in expected if name not in histograms]
    unexpected = sorted(set(histograms) - set(expected))
    if missing or unexpected:
        raise _error(
            f"histograms missing: {missing[:6]}{' ...' if len(missing) > 6 else ''};"
            f" unexpected: {unexpected[:6]}. A file with {edges.size} energy bins has exactly {len(expected)}"
        )
    return LikelihoodData(edges, n_signal, n_background, {name: histograms[name] for name in expected})


def _format_floats(values):
    return " ".join(repr(float(v)) for v in values)


def _format_counts(values):
    return " ".join(str(int(v)) for v in values)


def write_likelihood(data):
    """The rootless XML bytes of ``data`` in the layout of Pandora's likelihood files.

    The elements, their order, line breaks and indentation are those of the files LCContent's
    PhotonReconstructionAlgorithm reads (e.g. CLICPerformance's PandoraLikelihoodData9EBin.xml);
    the floats are written so that they read back exactly.

    :param LikelihoodData data: the likelihood
    :return: bytes
    """
    check_likelihood(data)
    edges = data.energy_bin_lower_edges
    lines = [
        f"<NEnergyBins>{len(edges)}</NEnergyBins>",
        f"<EnergyBinLowerEdges>{_format_floats(edges)} </EnergyBinLowerEdges>",
        f"<NSignalEvents>{_format_counts(data.n_signal)}</NSignalEvents>",
        f"<NBackgroundEvents>{_format_counts(data.n_background)}</NBackgroundEvents>",
    ]
    for name in histogram_names(len(edges)):
        nbins, low, high, contents = data.histograms[name]
        lines += [
            f"<{name}>",
            f"    <NBinsX>{int(nbins)}</NBinsX>",
            f"    <XLow>{float(low)!r}</XLow>",
            f"    <XHigh>{float(high)!r}</XHigh>",
            f"    <BinContents>{_format_floats(contents)}</BinContents>",
            f"</{name}>",
        ]
    return ("\n".join(lines) + "\n").encode("ascii")


def check_likelihood(data):
    """Refuse LikelihoodData that Pandora could not read back or whose parts do not fit together.

    :param LikelihoodData data: the likelihood; ProcedureError saying what does not fit
    """
    edges = np.asarray(data.energy_bin_lower_edges, dtype=np.float64)
    _check_energy_bins(edges.size, edges)
    _check_counts(np.asarray(data.n_signal, dtype=np.float64), "NSignalEvents", edges.size)
    _check_counts(np.asarray(data.n_background, dtype=np.float64), "NBackgroundEvents", edges.size)
    expected = histogram_names(edges.size)
    if set(data.histograms) != set(expected):
        raise _error(
            f"the histograms must be exactly the {len(expected)} PhotonSig/PhotonBkg histograms of"
            f" {edges.size} energy bins"
        )
    for name in expected:
        _check_histogram(name, *data.histograms[name])


def weighted_counts(data):
    """name -> p·N: each PDF scaled back to the number of candidates of its kind and energy bin.

    :param LikelihoodData data: the likelihood
    :return: {histogram name: float64 array}
    """
    counts = {}
    for name, (_, _, _, contents) in data.histograms.items():
        kind, k = _energy_bin(name)
        n = data.n_signal[k] if kind == "Sig" else data.n_background[k]
        counts[name] = np.asarray(contents, dtype=np.float64) * n
    return counts


def binnings(data):
    """name -> (nbins, low, high) of every histogram of ``data``.

    :param LikelihoodData data: the likelihood
    :return: dict
    """
    return {name: (int(nbins), float(low), float(high)) for name, (nbins, low, high, _) in data.histograms.items()}


def _accumulate(arrays):
    """Element-wise sum, added in the given order so that every merge path gives the same bits."""
    total = np.array(arrays[0], dtype=np.float64)
    for array in arrays[1:]:
        total += array
    return total


def merge_weighted(energy_bin_lower_edges, histogram_binnings, parts):
    """Merge already-checked parts, each (n_signal, n_background, counts: name -> p·N), into LikelihoodData.

    N and p·N are summed over the parts; each merged PDF is Σ p·N / Σ N, and 0 where Σ N = 0.
    ``histogram_binnings``: name -> (nbins, low, high), shared by all parts.

    :param energy_bin_lower_edges: the shared energy bins
    :param dict histogram_binnings: the shared binning of every histogram
    :param list parts: (n_signal, n_background, counts) of each worker
    :return: LikelihoodData
    """
    if not parts:
        raise ProcedureError("No photon likelihood files to merge: no worker of the training step sent one")
    n_signal = _accumulate([part[0] for part in parts])
    n_background = _accumulate([part[1] for part in parts])
    histograms = {}
    for name, (nbins, low, high) in histogram_binnings.items():
        kind, k = _energy_bin(name)
        n = n_signal[k] if kind == "Sig" else n_background[k]
        summed = _accumulate([part[2][name] for part in parts])
        histograms[name] = (int(nbins), float(low), float(high), summed / n if n > 0 else np.zeros_like(summed))
    data = LikelihoodData(np.array(energy_bin_lower_edges, dtype=np.float64), n_signal, n_background, histograms)
    check_likelihood(data)
    return data


def merge_likelihoods(items):
    """The count-weighted merge of several likelihood files (see the module docstring).

    ProcedureError if there is nothing to merge or the energy bins or any histogram binning differ.

    :param items: the LikelihoodData of each worker (parse_likelihood)
    :return: LikelihoodData
    """
    items = list(items)
    if not items:
        raise ProcedureError("No photon likelihood files to merge: no worker of the training step sent one")
    for item in items:
        check_likelihood(item)
    first = items[0]
    reference = binnings(first)
    for index, item in enumerate(items[1:], start=1):
        if not np.array_equal(item.energy_bin_lower_edges, first.energy_bin_lower_edges):
            raise ProcedureError(
                f"Photon likelihood file {index} has energy bins {np.asarray(item.energy_bin_lower_edges).tolist()},"
                f" file 0 has {np.asarray(first.energy_bin_lower_edges).tolist()}: they cannot be merged."
                " All workers must use the same PandoraSettingsPhotonTraining.xml"
            )
        differing = sorted(name for name, binning in binnings(item).items() if reference.get(name) != binning)
        if differing:
            raise ProcedureError(
                f"Photon likelihood file {index} bins {differing[:3]} differently from file 0: they cannot be"
                " merged. All workers must use the same PandoraSettingsPhotonTraining.xml"
            )
    parts = [(item.n_signal, item.n_background, weighted_counts(item)) for item in items]
    return merge_weighted(first.energy_bin_lower_edges, reference, parts)
