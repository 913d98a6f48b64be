"""The PandoraSettings files a worker points DDMarlinPandora to in stages 2 and 3 (physics.md §3).

Stage 2 trains the photon likelihood: PhotonReconstruction makes PDF histograms and writes them
to the training file. Stage 3 reconstructs with the merged likelihood of stage 2. Each file is
made from the release's own settings when the job has them (the configuration package in the
working directory), else from a minimal settings file holding just what the stage changes.
"""
import os

from lxml import etree

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError

TRAINING_SETTINGS = "PandoraSettingsPhotonTraining.xml"
CALIBRATION_SETTINGS = "PandoraSettingsCalibration.xml"
TRAINING_LIKELIHOOD = "PandoraLikelihoodDataPhotonTraining.xml"
MERGED_LIKELIHOOD = "newPhotonLikelihood.xml"
#: Where a configuration package keeps the training settings, relative to the job directory.
PACKAGE_TRAINING_SETTINGS = os.path.join("CalibrationPandoraSettings", TRAINING_SETTINGS)
ENERGY_BIN_LOWER_EDGES = "0 0.2 0.5 1 1.5 2.5 5 10 20"
MAX_SETTINGS_BYTES = 5 * 1024 * 1024


def write_training_settings(directory, template=None):
    """Settings for the stage-2 training, in ``directory``; returns their absolute path."""
    root = _settings_root(template)
    algorithm = _photon_algorithm(root)
    _set(algorithm, "HistogramFile", os.path.join(os.path.abspath(directory), TRAINING_LIKELIHOOD))
    _set(algorithm, "ShouldMakePdfHistograms", "true")
    _set(algorithm, "EnergyBinLowerEdges", ENERGY_BIN_LOWER_EDGES)
    return _write(root, directory, TRAINING_SETTINGS)


def write_calibration_settings(directory, likelihood_path, template=None):
    """Settings for stage 3, reading the merged likelihood; returns their absolute path."""
    root = _settings_root(template)
    _set(_photon_algorithm(root), "HistogramFile", os.path.abspath(likelihood_path))
    return _write(root, directory, CALIBRATION_SETTINGS)


def _settings_root(template):
    if template is None or not os.path.isfile(template):
        return etree.Element("pandora")
    with open(template, "rb") as stream:
        content = stream.read(MAX_SETTINGS_BYTES + 1)
    if len(content) > MAX_SETTINGS_BYTES or b"<!ENTITY" in content:
        raise ProcedureError(f"PandoraSettings file {template} is too large or declares XML entities")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.fromstring(content, parser)
    except etree.XMLSyntaxError as error:
        raise ProcedureError(f"PandoraSettings file {template} is not valid XML: {error}") from None


def _photon_algorithm(root):
    found = root.xpath(".//algorithm[@type='PhotonReconstruction']")
    if found:
        return found[0]
    return etree.SubElement(root, "algorithm", type="PhotonReconstruction")


def _set(parent, tag, text):
    element = parent.find(tag)
    if element is None:
        element = etree.SubElement(parent, tag)
    element.text = text


def _write(root, directory, name):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(os.path.abspath(directory), name)
    with open(path, "wb") as stream:
        stream.write(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return path
