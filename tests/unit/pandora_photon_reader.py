"""What LCContent's photon reconstruction accepts as settings and likelihood file: an emulation.

Written from the C++, independently of the project's writer and parser, so that the likelihood
files the calibration writes are tested against what Pandora requires, not against themselves:

- PandoraSDK's TinyXML loads the rootless file (comments, also with ``--`` inside, are skipped;
  text is trimmed and its runs of white space condensed to one space; parsing stops silently at
  text outside any element);
- ``XmlHelper::ReadValue`` / ``ReadVectorOfValues`` find the *first* child of that name, split the
  text at spaces only and convert each piece with ``std::istringstream >> T``, which reads the
  longest prefix of the piece that the type allows and fails only if there is none (or it
  overflows): ``"12abc"`` reads 12 as an int;
- ``PhotonReconstructionAlgorithm::InitialiseHistogramReading`` reads NEnergyBins (unsigned int,
  1..10000), EnergyBinLowerEdges (floats, sorted, then unique and exactly NEnergyBins of them:
  ``ParameterElementNumberCheck``), NSignalEvents and NBackgroundEvents (ints), then for each
  variable and energy bin ``Histogram(handle, "PhotonSig<Var>_<k>")`` and the same for PhotonBkg;
- ``Histogram(const TiXmlHandle*, name)`` reads NBinsX (int), XLow, XHigh (float), requires
  NBinsX > 0 and XHigh - XLow >= FLT_EPSILON (in float), and BinContents with NBinsX + 2 values;
- ``GetPIDForPhotonID`` indexes the counts by energy bin, so each needs one per energy bin.

And for a PandoraSettings file (``read_photon_settings``): ``Pandora::ReadSettings`` takes the
document's first element, ``AlgorithmManager::InitializeAlgorithms`` creates an algorithm for each
of its ``<algorithm>`` children by their ``type``, and PhotonReconstruction's
``ReadHistogramSettings`` reads HistogramFile (a std::string: the first word; required),
ShouldMakePdfHistograms (``1``/``true``/``0``/``false``, default false) and, when training,
``InitialiseHistogramWriting``: NEnergyBins and the edges checked as above, and the optional
per-variable binnings (<Var>NBins int, <Var>LowValue and <Var>HighValue float).
"""
import re
from dataclasses import dataclass, field

import numpy as np

#: PDFVar enum order of PhotonReconstructionAlgorithm.h, with the names used in the file.
PANDORA_VARIABLES = ("PeakRms", "RmsRatio", "LongProfileStart", "LongProfileDiscrepancy", "PeakEnergyFraction",
                     "MinDistanceToTrack")
FLT_MAX = float(np.finfo(np.float32).max)
FLT_EPSILON = np.finfo(np.float32).eps
INT_MIN, INT_MAX, UINT_MAX = -2**31, 2**31 - 1, 2**32 - 1


class ReaderFailure(Exception):
    """Pandora would fail to initialise PhotonReconstruction with this file."""


@dataclass
class Node:
    """A TinyXML node: an element (with children), a text or a comment; ``value`` as TinyXML's Value()."""

    kind: str
    value: str
    children: list = field(default_factory=list)
    attributes: dict = field(default_factory=dict)


_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:.\-]*")
_ATTRIBUTE = re.compile(r"""\s*([A-Za-z_:][A-Za-z0-9_:.\-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _decode(text):
    def entity(match):
        name = match.group(1)
        if name.startswith("#x"):
            return chr(int(name[2:], 16))
        if name.startswith("#"):
            return chr(int(name[1:]))
        return _ENTITIES.get(name, match.group(0))
    return re.sub(r"&(#x[0-9A-Fa-f]+|#[0-9]+|[a-z]+);", entity, text)


def _condensed(raw):
    return _decode(" ".join(raw.split()))


def _parse_nodes(text, position, parent_name):
    """Children from ``position`` up to the end tag of ``parent_name`` (None: the document)."""
    nodes = []
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            if parent_name is not None:
                raise ReaderFailure(f"TinyXML: end of file inside <{parent_name}>")
            return nodes, position
        if text.startswith("<!--", position):
            end = text.find("-->", position + 4)
            if end < 0:
                raise ReaderFailure("TinyXML: unterminated comment")
            nodes.append(Node("comment", text[position + 4:end]))
            position = end + 3
        elif text.startswith("<?", position) or text.startswith("<!", position):
            end = text.find(">", position)
            if end < 0:
                raise ReaderFailure("TinyXML: unterminated declaration")
            position = end + 1
        elif text.startswith("</", position):
            match = _NAME.match(text, position + 2)
            if parent_name is None or not match or match.group() != parent_name:
                raise ReaderFailure(f"TinyXML: unexpected end tag at {position}")
            end = text.find(">", match.end())
            if end < 0 or text[match.end():end].strip():
                raise ReaderFailure(f"TinyXML: malformed end tag </{parent_name}")
            return nodes, end + 1
        elif text.startswith("<", position):
            match = _NAME.match(text, position + 1)
            if not match:
                raise ReaderFailure(f"TinyXML: malformed tag at {position}")
            end = text.find(">", match.end())
            if end < 0:
                raise ReaderFailure(f"TinyXML: unterminated tag <{match.group()}")
            element = Node("element", match.group())
            for attribute in _ATTRIBUTE.finditer(text, match.end(), end):
                element.attributes[attribute.group(1)] = _decode(attribute.group(2) or attribute.group(3) or "")
            if text[end - 1] == "/":
                position = end + 1
            else:
                element.children, position = _parse_nodes(text, end + 1, element.value)
            nodes.append(element)
        elif parent_name is None:
            return nodes, position  # TiXmlDocument::Parse stops at text outside any element
        else:
            end = text.find("<", position)
            if end < 0:
                raise ReaderFailure(f"TinyXML: end of file inside <{parent_name}>")
            condensed = _condensed(text[position:end])
            if condensed:
                nodes.append(Node("text", condensed))
            position = end


def load_document(content):
    """The document's top-level nodes, as TiXmlDocument::LoadFile reads them; ReaderFailure if it cannot."""
    text = content.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    return _parse_nodes(text, 0, None)[0]


def first_child_element(nodes, name):
    """TiXmlHandle::FirstChild(name).Element(): the first child whose Value() is ``name``, if an element."""
    for node in nodes:
        if node.value == name:
            return node if node.kind == "element" else None
    return None


def get_text(element, name):
    """TiXmlElement::GetText() turned into a std::string: a null text (no text first) cannot be."""
    if not element.children or element.children[0].kind != "text":
        raise ReaderFailure(f"<{name}> has no text; std::string(GetText()) would throw")
    return element.children[0].value


def stream_int(piece, low=INT_MIN, high=INT_MAX, unsigned=False):
    """``std::istringstream(piece) >> int`` (or unsigned int); None where the stream fails."""
    match = re.match(r"\s*([+-]?)([0-9]+)", piece)
    if not match:
        return None
    magnitude = int(match.group(2))
    if unsigned:  # libstdc++ accepts a minus sign for unsigned types and negates modulo 2^32
        if magnitude > UINT_MAX:
            return None
        return (-magnitude) % 2**32 if match.group(1) == "-" else magnitude
    value = -magnitude if match.group(1) == "-" else magnitude
    return value if low <= value <= high else None


def stream_float(piece):
    """``std::istringstream(piece) >> float``; None where the stream fails."""
    match = re.match(r"\s*([+-]?[0-9]*(?:\.[0-9]*)?(?:(?<=[0-9.])[eE][+-]?[0-9]*)?)", piece)
    accumulated = match.group(1)
    if not re.fullmatch(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", accumulated):
        return None  # nothing, or a prefix strtof does not consume entirely ("1e", ".")
    value = float(accumulated)
    return None if abs(value) > FLT_MAX else float(np.float32(value))


def read_value(nodes, name, convert):
    """XmlHelper::ReadValue: ReaderFailure if the element is missing or its text does not convert."""
    element = first_child_element(nodes, name)
    if element is None:
        raise ReaderFailure(f"<{name}> not found")
    value = convert(get_text(element, name))
    if value is None:
        raise ReaderFailure(f"<{name}> cannot be read")
    return value


def read_vector(nodes, name, convert):
    """XmlHelper::ReadVectorOfValues: the text split at spaces, each piece converted."""
    element = first_child_element(nodes, name)
    if element is None:
        raise ReaderFailure(f"<{name}> not found")
    values = []
    for piece in (p for p in get_text(element, name).split(" ") if p):
        value = convert(piece)
        if value is None:
            raise ReaderFailure(f"<{name}>: {piece!r} cannot be read")
        values.append(value)
    return values


def read_histogram(nodes, name):
    """PandoraSDK Histogram(const TiXmlHandle*, name): (nbins, low, high, contents)."""
    element = first_child_element(nodes, name)
    if element is None:
        raise ReaderFailure(f"histogram <{name}> not found")
    nbins = read_value(element.children, "NBinsX", stream_int)
    low = read_value(element.children, "XLow", stream_float)
    high = read_value(element.children, "XHigh", stream_float)
    if nbins <= 0 or np.float32(high) - np.float32(low) < FLT_EPSILON:
        raise ReaderFailure(f"histogram <{name}>: invalid binning {nbins}, [{low}, {high}]")
    contents = read_vector(element.children, "BinContents", stream_float)
    if len(contents) != nbins + 2:
        raise ReaderFailure(f"histogram <{name}>: {len(contents)} contents for {nbins} bins")
    return nbins, low, high, contents


def read_energy_bins(nodes):
    """NEnergyBins with its sanity check, then GetEnergyBinLowerEdges: (n, sorted edges)."""
    n_energy_bins = read_value(nodes, "NEnergyBins", lambda piece: stream_int(piece, unsigned=True))
    if n_energy_bins == 0 or n_energy_bins > 10000:
        raise ReaderFailure(f"NEnergyBins {n_energy_bins} out of Pandora's sanity range")
    edges = sorted(read_vector(nodes, "EnergyBinLowerEdges", stream_float))
    if len(edges) != n_energy_bins or len(set(edges)) != len(edges):
        raise ReaderFailure(f"PDF energy binning issue: {len(edges)} edges {edges} for {n_energy_bins} bins")
    return n_energy_bins, edges


def read_photon_likelihood(content):
    """What InitialiseHistogramReading reads from ``content``; ReaderFailure where Pandora fails.

    :return: dict with n_energy_bins, edges (sorted), n_signal, n_background, histograms {name: (nbins,
        low, high, contents)}
    """
    nodes = load_document(content)
    n_energy_bins, edges = read_energy_bins(nodes)
    n_signal = read_vector(nodes, "NSignalEvents", stream_int)
    n_background = read_vector(nodes, "NBackgroundEvents", stream_int)
    histograms = {}
    for variable in PANDORA_VARIABLES:
        for k in range(n_energy_bins):
            for kind in ("Sig", "Bkg"):
                name = f"Photon{kind}{variable}_{k}"
                histograms[name] = read_histogram(nodes, name)
    if len(n_signal) < n_energy_bins or len(n_background) < n_energy_bins:
        raise ReaderFailure(f"{len(n_signal)} signal and {len(n_background)} background counts for "
                            f"{n_energy_bins} energy bins: GetPIDForPhotonID would index past them")
    return {"n_energy_bins": n_energy_bins, "edges": edges, "n_signal": n_signal, "n_background": n_background,
            "histograms": histograms}


def stream_word(piece):
    """``std::istringstream(piece) >> std::string``: the first word; None where the stream fails."""
    words = piece.split()
    return words[0] if words else None


def read_optional(nodes, name, convert, default):
    """ReadValue where STATUS_CODE_NOT_FOUND is accepted: ``default`` if absent, ReaderFailure if unreadable."""
    return default if first_child_element(nodes, name) is None else read_value(nodes, name, convert)


def read_bool(piece):
    """XmlHelper::ReadValue<bool>: exactly 1, true, 0 or false."""
    return {"1": True, "true": True, "0": False, "false": False}.get(piece)


def read_photon_settings(content):
    """What each PhotonReconstruction algorithm of a PandoraSettings file reads in ReadHistogramSettings.

    :return: list, one dict per algorithm Pandora creates with type PhotonReconstruction: histogram_file,
        make_pdf_histograms, and when training n_energy_bins, edges and binnings {variable: (nbins, low, high)}
    """
    root = next((node for node in load_document(content) if node.kind == "element"), None)
    if root is None:
        raise ReaderFailure("no element in the settings file")
    found = []
    for algorithm in root.children:
        if algorithm.kind != "element" or algorithm.value != "algorithm" or \
                algorithm.attributes.get("type") != "PhotonReconstruction":
            continue
        nodes = algorithm.children
        settings = {"histogram_file": read_value(nodes, "HistogramFile", stream_word),
                    "make_pdf_histograms": read_optional(nodes, "ShouldMakePdfHistograms", read_bool, False)}
        if settings["make_pdf_histograms"]:
            n_energy_bins, edges = read_energy_bins(nodes)
            settings.update(n_energy_bins=n_energy_bins, edges=edges, binnings={
                variable: (read_optional(nodes, f"{variable}NBins", stream_int, None),
                           read_optional(nodes, f"{variable}LowValue", stream_float, None),
                           read_optional(nodes, f"{variable}HighValue", stream_float, None))
                for variable in PANDORA_VARIABLES})
        found.append(settings)
    return found
