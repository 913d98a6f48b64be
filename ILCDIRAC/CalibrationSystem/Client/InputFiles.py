"""Finding a calibration's input files from the directories a user names.

The seed's ``createCalibration`` takes sample directories such as ``.../gamma/10`` and
``.../mu-/10``: the particle name in the path says which sample it is, and the directory's
files are that sample's input. Synthetic event files of the built-in detector model carry their
own event count; for real LCIO files the user states it with ``setConfig``.
"""
import os

from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError
from ILCDIRAC.CalibrationSystem.Procedure.samples import sample_type_of_path
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import is_synthetic_file, read_event_file

LCIO_SUFFIX = ".slcio"


def discover_input_files(paths, events_per_file=None):
    """Map sample directories (or single files) to input files and events per file.

    :param list paths: directories or files whose path names the particle
    :param dict events_per_file: {sample type: events per file}, needed for LCIO files
    :return: ({sample type: [absolute file paths]}, {sample type: events per file})
    :raises SettingsError: unknown particle, empty directory, mixed or unknown event counts
    """
    if isinstance(paths, str) or not isinstance(paths, (list, tuple)) or not paths:
        raise SettingsError("inputFiles must be a non-empty list of sample directories")
    files = {}
    for path in paths:
        if not isinstance(path, str) or not path:
            raise SettingsError(f"Input {path!r} is not a path")
        sample = sample_type_of_path(path)
        if sample is None:
            raise SettingsError(
                f"Cannot tell the particle of {path!r}: its path must name one of gamma, mu-, kaon0L or zuds"
            )
        files.setdefault(sample, []).extend(_files_of(path))
    counts = {sample: _events_per_file(sample, sample_files, events_per_file or {}) for sample, sample_files in files.items()}
    return files, counts


def _files_of(path):
    path = os.path.abspath(path)
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise SettingsError(f"Input {path!r} is neither a directory nor a file")
    found = sorted(
        os.path.join(path, name)
        for name in os.listdir(path)
        if name.endswith(LCIO_SUFFIX) or is_synthetic_file(os.path.join(path, name))
    )
    if not found:
        raise SettingsError(f"Input directory {path!r} holds no {LCIO_SUFFIX} or synthetic event files")
    return found


def _events_per_file(sample, sample_files, given):
    if sample in given:
        return given[sample]
    if not all(is_synthetic_file(f) for f in sample_files):
        raise SettingsError(
            f"The number of events in the {sample} files is unknown: give it as numberOfEventsPerFile "
            f"(setConfig(numberOfEventsPerFile={{'{sample}': N}}), or --events-per-file {sample}=N)"
        )
    counts = set()
    for name in sample_files:
        try:
            counts.add(read_event_file(name).events)
        except ValueError as error:
            raise SettingsError(f"Cannot read {name}: {error}") from error
    if len(counts) != 1:
        raise SettingsError(f"The {sample} files hold different numbers of events {sorted(counts)}: all must be equal")
    return counts.pop()
