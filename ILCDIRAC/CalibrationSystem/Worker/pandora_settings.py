"""The PandoraSettings files a worker points DDMarlinPandora to in stages 2 and 3 (physics.md §3).

Stage 2 trains the photon likelihood with the calibration's photon-training settings; stage 3
reconstructs with the PandoraSettings file the steering file names, reading the merged likelihood
of stage 2. Each is written into the work directory with only the HistogramFile of its
PhotonReconstruction algorithm changed, byte for byte as it was elsewhere.
"""
import os

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.pandora_settings import (
    MAX_SETTINGS_BYTES,
    TRAINING_SETTINGS,
    with_histogram_file,
)

CALIBRATION_SETTINGS = "PandoraSettingsCalibration.xml"
TRAINING_LIKELIHOOD = "PandoraLikelihoodDataPhotonTraining.xml"
MERGED_LIKELIHOOD = "newPhotonLikelihood.xml"


def write_training_settings(directory, content):
    """The calibration's photon-training settings, writing their likelihood into ``directory``.

    :param str directory: the work directory
    :param bytes content: the photon-training PandoraSettings the calibration was created with
    :return: the absolute path of the settings written
    """
    likelihood = os.path.join(os.path.abspath(directory), TRAINING_LIKELIHOOD)
    return _write(with_histogram_file(content, likelihood, TRAINING_SETTINGS), directory, TRAINING_SETTINGS)


def write_calibration_settings(directory, likelihood_path, configured):
    """The PandoraSettings the steering file names, reading the merged likelihood (stage 3).

    :param str directory: the work directory, where Marlin runs: a relative ``configured`` is found there
    :param str likelihood_path: the merged photon likelihood
    :param str configured: the steering file's PandoraSettingsXmlFile
    :return: the absolute path of the settings written; ProcedureError if the named file is not here
    """
    if not configured:
        raise ProcedureError(
            "the steering file's DDMarlinPandora processor names no PandoraSettingsXmlFile; stage 3 reconstructs"
            " with those settings reading the merged photon likelihood"
        )
    path = os.path.join(directory, configured)
    try:
        with open(path, "rb") as stream:
            content = stream.read(MAX_SETTINGS_BYTES + 1)
    except OSError as error:
        raise ProcedureError(
            f"the PandoraSettings file {configured!r} that the steering file names is not readable on this node"
            f" ({os.path.abspath(path)}: {error.strerror}); stage 3 needs it to read the merged photon"
            " likelihood: ship it with the job (the configuration package) or name it by an absolute path"
        ) from None
    if len(content) > MAX_SETTINGS_BYTES:
        raise ProcedureError(f"the PandoraSettings file {path} has more than {MAX_SETTINGS_BYTES} bytes")
    updated = with_histogram_file(content, os.path.abspath(likelihood_path), configured)
    return _write(updated, directory, CALIBRATION_SETTINGS)


def _write(content, directory, name):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(os.path.abspath(directory), name)
    with open(path, "wb") as stream:
        stream.write(content)
    return path
