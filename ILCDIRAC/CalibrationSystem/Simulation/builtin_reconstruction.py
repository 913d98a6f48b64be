"""Built-in stand-in for running Marlin on synthetic input files.

Why: where iLCSoft is absent the worker still has to turn "a steering file with the current
constants and an event slice" into what Marlin would produce. This reads exactly what Marlin would
read from the steering file (<global> LCIOInputFiles / SkipNEvents / MaxRecordNumber, the
calibration constants of the DDCaloDigi and DDMarlinPandora processors, and DDMarlinPandora's
PandoraSettingsXmlFile) and asks the synthetic detector model for those events.

The PandoraSettings decide the mode, as they decide what the real Pandora does: the photon-training
settings (stage 2) make the likelihood file; settings whose PhotonReconstruction reads a valid
likelihood file switch Pandora to the trained (stage-3) response; anything else is stage 1.
"""
import os

import numpy as np
from lxml import etree

from ILCDIRAC.CalibrationSystem.Procedure.constants import role_processor_name
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.pandora_settings import MAX_SETTINGS_BYTES, TRAINING_SETTINGS, histogram_file
from ILCDIRAC.CalibrationSystem.Procedure.photon_likelihood import MAX_LIKELIHOOD_BYTES, parse_likelihood
from ILCDIRAC.CalibrationSystem.Procedure.steering import (
    global_parameter, parse_steering, processor_parameter, read_constants)
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import constants_used, generate
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import is_synthetic_file, read_event_file


def _count(tree, name):
    """A non-negative integer <global> parameter; 0 (Marlin's default) when it is not set."""
    text = global_parameter(tree, name)
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"<global> parameter {name} = {text!r} is not an integer") from None
    if value < 0:
        raise ValueError(f"<global> parameter {name} = {value} must not be negative")
    return value


def _input_files(tree):
    paths = (global_parameter(tree, 'LCIOInputFiles') or '').split()
    if not paths:
        raise ValueError("The steering file names no <global> LCIOInputFiles: set the input files of the slice")
    others = [path for path in paths if not is_synthetic_file(path)]
    if others:
        raise ValueError(f"The built-in reconstruction only reads synthetic event files (*.synthetic.json), "
                         f"not {others}; real files need Marlin")
    files = [read_event_file(path) for path in paths]
    first = files[0]
    for event_file in files[1:]:
        if event_file.sample != first.sample or event_file.truth != first.truth:
            raise ValueError(f"Input files {first.path} and {event_file.path} differ in sample or detector truth; "
                             "one reconstruction reads one sample generated with one truth")
    return files


def _read_limited(path, limit, what):
    with open(path, 'rb') as stream:
        content = stream.read(limit + 1)
    if len(content) > limit:
        raise ValueError(f"{what} {path} has more than {limit} bytes; check that the right file is named")
    return content


def _likelihood_file(pandora_settings):
    """The HistogramFile of the PhotonReconstruction algorithm in a PandoraSettings file, or None."""
    content = _read_limited(pandora_settings, MAX_SETTINGS_BYTES, 'PandoraSettings file')
    try:
        text = histogram_file(content, f'PandoraSettings file {pandora_settings}')
    except ProcedureError as error:
        raise ValueError(str(error)) from None
    return text or None


def reconstruction_stage(steering_content, settings):
    """The Pandora mode the steering file runs: 2 = photon-likelihood training (PandoraSettingsXmlFile
    named PandoraSettingsPhotonTraining.xml), 3 = trained response (an existing PandoraSettings file
    whose PhotonReconstruction HistogramFile is an existing likelihood file), else 1.

    Relative paths are taken from the working directory, as Marlin and Pandora do. ValueError for
    a PandoraSettings or likelihood file that exists but is unreadable: Pandora would fail on it.

    :param steering_content: the steering file (bytes, or a parsed tree)
    :param dict settings: the calibration settings (processor names)
    :return: int 1, 2 or 3
    """
    tree = parse_steering(steering_content)
    pandora_settings = processor_parameter(tree, role_processor_name('pandora', settings), 'PandoraSettingsXmlFile')
    if not pandora_settings:
        return 1
    if os.path.basename(pandora_settings) == TRAINING_SETTINGS:
        return 2
    if not os.path.isfile(pandora_settings):
        return 1
    likelihood = _likelihood_file(pandora_settings)
    if likelihood is None or not os.path.isfile(likelihood):
        return 1
    try:
        parse_likelihood(_read_limited(likelihood, MAX_LIKELIHOOD_BYTES, 'Photon likelihood file'))
    except ProcedureError as error:
        raise ValueError(f"{pandora_settings} makes Pandora read the photon likelihood {likelihood}, which is "
                         f"invalid: {error}") from None
    return 3


def reconstruct(steering_content, settings):
    """The ReconstructionOutput of the events the steering file selects, reconstructed with its
    constants in the Pandora mode of its PandoraSettings (reconstruction_stage).

    Events [SkipNEvents, SkipNEvents + MaxRecordNumber) of the concatenated input files are used
    (MaxRecordNumber 0: all the rest; synthetic files have no run headers, so records = events).
    ``settings`` name the processors (DDCaloDigiName, DDPandoraPFANewProcessorName).
    ValueError for unusable inputs; SteeringError (ProcedureError) for an unusable steering file.

    :param bytes steering_content: the steering file the worker built
    :param dict settings: the calibration settings
    :return: worker_output.ReconstructionOutput
    """
    tree = parse_steering(steering_content)
    files = _input_files(tree)
    skip = _count(tree, 'SkipNEvents')
    max_records = _count(tree, 'MaxRecordNumber')
    total = sum(event_file.events for event_file in files)
    wanted = total - skip if max_records == 0 else max_records
    if skip + wanted > total or wanted < 0:
        raise ValueError(f"The steering file asks for events [{skip}, {skip + max(wanted, 0)}) but its "
                         f"{len(files)} input files hold only {total} events")
    sample, truth = files[0].sample, files[0].truth
    stage = reconstruction_stage(tree, settings)
    constants = read_constants(tree, constants_used(sample, truth), settings)

    pieces = []
    start = 0  # position of the current file in the concatenated event sequence
    for event_file in files:
        low = max(skip, start)
        high = min(skip + wanted, start + event_file.events)
        if low < high:
            first = event_file.first_event + low - start
            pieces.append(np.arange(first, first + high - low, dtype=np.int64))
        start += event_file.events
    events = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    return generate(sample, events, constants, truth, stage)
