"""Built-in stand-in for running Marlin on synthetic input files.

Why: where iLCSoft is absent the worker still has to turn "a steering file with the current
constants and an event slice" into PfoAnalysis columns. This reads exactly what Marlin would read
from the steering file (<global> LCIOInputFiles / SkipNEvents / MaxRecordNumber and the
calibration constants of the DDCaloDigi and DDMarlinPandora processors) and asks the synthetic
detector model for those events.
"""
import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.worker_output import ReconstructionOutput
from ILCDIRAC.CalibrationSystem.Procedure.steering import global_parameter, parse_steering, read_constants
from ILCDIRAC.CalibrationSystem.Worker.detector_model import constants_used, simulate
from ILCDIRAC.CalibrationSystem.Worker.synthetic_samples import is_synthetic_file, read_event_file


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


def reconstruct(steering_content, settings, stage=1):
    """The ReconstructionOutput (PfoAnalysis columns) of the events the steering file selects,
    reconstructed with its constants.

    Events [SkipNEvents, SkipNEvents + MaxRecordNumber) of the concatenated input files are used
    (MaxRecordNumber 0: all the rest; synthetic files have no run headers, so records = events).
    ``settings`` name the processors (DDCaloDigiName, DDPandoraPFANewProcessorName).
    ValueError for unusable inputs; SteeringError (ProcedureError) for an unusable steering file.
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
    constants = read_constants(tree, constants_used(sample, truth), settings)

    pieces = []
    start = 0  # position of the current file in the concatenated event sequence
    for event_file in files:
        low = max(skip, start)
        high = min(skip + wanted, start + event_file.events)
        if low < high:
            pieces.append(simulate(sample, event_file.first_event + low - start, high - low, constants, truth, stage))
        start += event_file.events
    if not pieces:
        return ReconstructionOutput(simulate(sample, files[0].first_event, 0, constants, truth, stage))
    return ReconstructionOutput({name: np.concatenate([piece[name] for piece in pieces]) for name in pieces[0]})
