"""PandoraSettings files as Pandora reads them: the photon-training settings a calibration needs,
and the one value the calibration changes in them, the PhotonReconstruction HistogramFile.

Pandora runs the ``<algorithm>`` elements directly inside the root element, ``<pandora>``. LCContent's
PhotonReconstructionAlgorithm::ReadHistogramSettings reads HistogramFile (required) and
ShouldMakePdfHistograms (``true``/``1`` or ``false``/``0``, default false): true trains the
likelihood and writes it to HistogramFile, which needs NEnergyBins (1 to 10000) and exactly that
many distinct EnergyBinLowerEdges (InitialiseHistogramWriting, ParameterElementNumberCheck);
false reads the likelihood from HistogramFile. The files are read as Pandora's TinyXML reads them
(comments with ``--`` included) and edited byte for byte: only the HistogramFile text changes.
"""
import os

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError
from ILCDIRAC.CalibrationSystem.Procedure.photon_likelihood import MAX_ENERGY_BINS
from ILCDIRAC.CalibrationSystem.Procedure.tinyxml_document import PANDORA, markup, parse_document

TRAINING_SETTINGS = "PandoraSettingsPhotonTraining.xml"
#: Where a configuration package (clicConfig, CLDConfig) keeps the training settings, relative
#: to the directory of its steering file.
PACKAGE_TRAINING_SETTINGS = os.path.join("CalibrationPandoraSettings", TRAINING_SETTINGS)
MAX_SETTINGS_BYTES = 5 * 1024 * 1024
PHOTON_RECONSTRUCTION = "PhotonReconstruction"


def _document(content, what):
    return parse_document(content, what, PANDORA, SettingsError, MAX_SETTINGS_BYTES)


def _photon_reconstruction(document, required=True):
    """The PhotonReconstruction algorithm directly inside the root element (<pandora>), which Pandora
    runs (None if there is none and not ``required``)."""
    found = [element for element in document.root.elements("algorithm")
             if element.get("type") == PHOTON_RECONSTRUCTION]
    if len(found) > 1:
        raise document.error(f'has {len(found)} <algorithm type="{PHOTON_RECONSTRUCTION}"> inside <pandora>; '
                             "the calibration sets the likelihood file of one: keep one", found[1].start)
    if not found and required:
        raise document.error(f'has no <algorithm type="{PHOTON_RECONSTRUCTION}"> directly inside <pandora>, '
                             "which the photon likelihood is made and read by")
    return found[0] if found else None


def _value(algorithm, name):
    """The text of the algorithm's first <name> as Pandora reads it (None if absent or empty)."""
    element = algorithm.find(name)
    return None if element is None else element.text


def histogram_file(content, what):
    """The HistogramFile of the PhotonReconstruction algorithm in a PandoraSettings file, as Pandora
    reads it (into a std::string: its first word).

    :param bytes content: the PandoraSettings file
    :param str what: how to name the file in messages
    :return: str, or None if the file has no PhotonReconstruction algorithm or it no HistogramFile;
        SettingsError if the file cannot be read as Pandora reads it
    """
    document = _document(content, what)
    algorithm = _photon_reconstruction(document, required=False)
    text = None if algorithm is None else _value(algorithm, "HistogramFile")
    return text.split()[0] if text else None


def with_histogram_file(content, path, what):
    """The PandoraSettings file with the HistogramFile of its PhotonReconstruction algorithm set
    to ``path`` (added if absent: Pandora requires it); every other byte as it was.

    :param bytes content: the PandoraSettings file
    :param str path: the likelihood file Pandora is to write (training) or read
    :param str what: how to name the file in messages
    :return: bytes; SettingsError if the file has no single PhotonReconstruction algorithm
    """
    if not path or any(character.isspace() for character in path):
        raise SettingsError(f"the photon likelihood path {path!r} cannot be given to Pandora, which reads"
                            " HistogramFile up to the first space: use a work directory without spaces")
    document = _document(content, f"PandoraSettings file {what}")
    algorithm = _photon_reconstruction(document)
    element = algorithm.find("HistogramFile")
    if element is None:
        return document.apply(document.insert_elements(algorithm, [markup("HistogramFile", [], path)]))
    return document.apply(document.replace_text(element, path))


def check_training_settings(content):
    """Refuse photon-training PandoraSettings with which Pandora would not train the likelihood.

    :param bytes content: the PandoraSettings file of the photon training (stage 2)
    :return: None; SettingsError saying what to fix
    """
    what = "photon-training PandoraSettings"
    document = _document(content, what)
    algorithm = _photon_reconstruction(document)
    where = f'{what}, <algorithm type="{PHOTON_RECONSTRUCTION}">'
    make = _value(algorithm, "ShouldMakePdfHistograms")
    if make not in ("true", "1"):
        raise SettingsError(
            f"{where}: ShouldMakePdfHistograms is {make or 'not set'}; it must be true, else Pandora reads the"
            " likelihood instead of training it"
        )
    n_text = _value(algorithm, "NEnergyBins")
    if n_text is None or not n_text.isdigit() or not 1 <= int(n_text) <= MAX_ENERGY_BINS:
        raise SettingsError(
            f"{where}: NEnergyBins is {n_text or 'not set'}; the training needs the number of energy bins, a whole"
            f" number from 1 to {MAX_ENERGY_BINS}"
        )
    edges_text = _value(algorithm, "EnergyBinLowerEdges")
    try:
        edges = np.array([float(edge) for edge in (edges_text or "").split()], dtype=np.float64)
    except ValueError:
        edges = None
    if edges is None or edges.size == 0 or not np.all(np.isfinite(edges)):
        raise SettingsError(f"{where}: EnergyBinLowerEdges is {edges_text or 'not set'}; the training needs the lower"
                            " edges of the energy bins, numbers separated by spaces")
    edges = edges.astype(np.float32)  # as Pandora reads them
    distinct = np.unique(edges)
    if distinct.size != edges.size:
        raise SettingsError(f"{where}: EnergyBinLowerEdges {edges_text!r} repeats an edge, which Pandora refuses")
    if distinct.size != int(n_text):
        raise SettingsError(
            f"{where}: NEnergyBins is {n_text} but EnergyBinLowerEdges {edges_text!r} gives {distinct.size} energy"
            f" bins; Pandora refuses the mismatch: set NEnergyBins to {distinct.size} or give {n_text} edges"
        )
