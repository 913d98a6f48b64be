"""Checking a calibration request and turning it into what is stored.

Everything a user sends to ``createCalibration`` passes through :func:`plan_calibration`
before anything is written, so a bad request is refused with a message and leaves no trace.
"""
from dataclasses import dataclass

from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError
from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_processor import prepare_pfoanalysis
from ILCDIRAC.CalibrationSystem.Procedure.pandora_settings import check_training_settings
from ILCDIRAC.CalibrationSystem.Procedure.procedure import (
    check_sequence,
    first_position,
    phases_to_run,
    required_constants,
    required_samples,
)
from ILCDIRAC.CalibrationSystem.Procedure.samples import SAMPLE_TYPES
from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings
from ILCDIRAC.CalibrationSystem.Procedure.splitting import split_events
from ILCDIRAC.CalibrationSystem.Procedure.steering import read_constants

MAX_NUMBER_OF_JOBS = 10000
MAX_SOFTWARE_VERSION_LENGTH = 128
MAX_OUTPUT_PATH_LENGTH = 1024
MAX_OUTPUT_SE_LENGTH = 128
#: What the job description of a request holds; photonTrainingSettings (needed only when stage 2
#: runs), outputPath and outputSE may be left out.
JOB_KEYS = ("steeringFile", "photonTrainingSettings", "softwareVersion", "numberOfJobs", "outputPath", "outputSE")


@dataclass(frozen=True)
class CalibrationPlan:
    """A checked calibration request, ready to be stored."""

    settings: dict
    input_files: dict  # sample type -> list of files
    events_per_file: dict  # sample type -> int
    worker_input_data: list  # per worker: {sample type: [files, skip, number of events]}
    parameters: dict  # the constants of the first step, read from the steering file
    position: tuple  # (stage, phase) of the first step
    steering_file: bytes  # the steering file the workers start from (with its PfoAnalysis processor)
    input_steering_file: bytes  # the user's steering file, as given
    notes: tuple  # what was done to the user's steering file, for the user and the event log
    photon_training_settings: bytes  # the PandoraSettings of the photon training; None without stage 2
    software_version: str
    number_of_jobs: int
    output_path: str  # where the agent copies the results ('' : nowhere)
    output_se: str


def plan_calibration(input_files, events_per_file, settings, job):
    """Check a calibration request and turn it into what is stored; nothing is written here.

    :param dict input_files: {sample type: [file, ...]}, sample types case-insensitive
    :param dict events_per_file: {sample type: events in each file of that sample}
    :param dict settings: calibration settings (missing ones take their defaults)
    :param dict job: {'steeringFile': the steering file's bytes, 'softwareVersion', 'numberOfJobs',
        and optionally 'photonTrainingSettings' (bytes), 'outputPath', 'outputSE'}
    :return: CalibrationPlan, whose steering file has the PfoAnalysis processor the calibration
        needs (added or checked, see pfoanalysis_processor); a ProcedureError (SettingsError,
        SteeringError) saying what is wrong
    """
    if not isinstance(job, dict):
        raise SettingsError(f"the job description must be a dict with {list(JOB_KEYS)}, not {type(job).__name__}")
    unknown = sorted(set(job) - set(JOB_KEYS), key=str)
    if unknown:
        raise SettingsError(f"unknown job options {unknown}: use {list(JOB_KEYS)}")
    steering_file = job.get("steeringFile")
    if not isinstance(steering_file, bytes):
        raise SettingsError("the steering file's content must be given as steeringFile")
    number_of_jobs, software_version = job.get("numberOfJobs"), job.get("softwareVersion")
    output_path, output_se = job.get("outputPath", ""), job.get("outputSE", "")
    check_number_of_jobs(number_of_jobs)
    _check_software_version(software_version)
    check_output(output_path, output_se)
    full_settings = validate_settings(settings if settings is not None else {})
    check_sequence(full_settings)
    files = _sample_dict(input_files, "inputFiles", _check_file_list)
    counts = _sample_dict(events_per_file, "numberOfEventsPerFile", _check_event_count)
    if set(files) != set(counts):
        raise SettingsError(
            f"inputFiles has samples {sorted(files)} but numberOfEventsPerFile has {sorted(counts)}: "
            "give the number of events per file of every sample"
        )
    missing = required_samples(full_settings) - set(files)
    if missing:
        raise SettingsError(
            f"Missing input samples {sorted(missing)}: the phases to run need {sorted(required_samples(full_settings))}"
        )
    training_settings = _photon_training_settings(job.get("photonTrainingSettings"), full_settings)
    worker_input_data = split_workers(files, counts, number_of_jobs)
    prepared = prepare_pfoanalysis(steering_file, full_settings)
    parameters = read_constants(prepared.steering_file, sorted(required_constants(full_settings)), full_settings)
    return CalibrationPlan(
        full_settings, files, counts, worker_input_data, parameters, tuple(first_position(full_settings)),
        prepared.steering_file, steering_file, (prepared.note,), training_settings, software_version,
        number_of_jobs, output_path, output_se,
    )


def split_workers(files, counts, number_of_jobs):
    """The events each worker reprocesses at every step: every sample split over the workers.

    :param dict files: {sample type: [file, ...]}
    :param dict counts: {sample type: events in each file}
    :param int number_of_jobs: the number of workers
    :return: list, per worker, of {sample type: [[file, ...], events to skip, number of events]};
        SettingsError if a sample has fewer events than workers
    """
    slices = {sample: split_events(files[sample], counts[sample], number_of_jobs) for sample in sorted(files)}
    return [
        {sample: [list(sl[worker].files), sl[worker].skip, sl[worker].n_events] for sample, sl in slices.items()}
        for worker in range(number_of_jobs)
    ]


def _photon_training_settings(content, settings):
    """The photon-training PandoraSettings if stage 2 runs, checked as Pandora will use them; else None."""
    if not any(position.stage == 2 for position in phases_to_run(settings)):
        return None
    if content is None:
        raise SettingsError(
            "the calibration runs the photon training (stage 2), which needs its PandoraSettings file: put"
            " PandoraSettingsPhotonTraining.xml into CalibrationPandoraSettings/ beside the steering file (as"
            " clicConfig and CLDConfig have it) or name it with photonTrainingSettingsFile (setConfig, the"
            " settings dict or dirac-calibration-create --photon-training-settings)"
        )
    if not isinstance(content, bytes):
        raise SettingsError("photonTrainingSettings must be the content of the photon-training PandoraSettings file")
    check_training_settings(content)
    return content


def check_number_of_jobs(number_of_jobs):
    """SettingsError unless ``number_of_jobs`` is an integer from 1 to MAX_NUMBER_OF_JOBS.

    :param int number_of_jobs: the requested number of worker jobs
    """
    if isinstance(number_of_jobs, bool) or not isinstance(number_of_jobs, int):
        raise SettingsError(f"numberOfJobs must be an integer, not {type(number_of_jobs).__name__}")
    if not 1 <= number_of_jobs <= MAX_NUMBER_OF_JOBS:
        raise SettingsError(f"numberOfJobs must be between 1 and {MAX_NUMBER_OF_JOBS}, not {number_of_jobs}")


def _check_software_version(version):
    if not isinstance(version, str) or not version.strip():
        raise SettingsError("softwareVersion must be a non-empty string (an iLCSoft release name)")
    if len(version) > MAX_SOFTWARE_VERSION_LENGTH or any(c.isspace() for c in version):
        raise SettingsError(
            f"softwareVersion {version[:40]!r} is not a release name: no spaces, "
            f"at most {MAX_SOFTWARE_VERSION_LENGTH} characters"
        )


def check_output(path, storage_element):
    """SettingsError unless ``path`` and ``storage_element`` can be where results are copied.

    :param str path: absolute directory or LFN directory, or '' for none
    :param str storage_element: storage element name ('' locally)
    """
    if not isinstance(path, str) or not isinstance(storage_element, str):
        raise SettingsError("outputPath and outputSE must be strings")
    if path and (not path.startswith("/") or ".." in path.split("/") or len(path) > MAX_OUTPUT_PATH_LENGTH):
        raise SettingsError(
            f"outputPath {path[:60]!r} must be an absolute path (a directory or an LFN) without '..', "
            f"at most {MAX_OUTPUT_PATH_LENGTH} characters"
        )
    if len(storage_element) > MAX_OUTPUT_SE_LENGTH or any(c.isspace() for c in storage_element):
        raise SettingsError(f"outputSE {storage_element[:40]!r} is not a storage element name")


def _sample_dict(value, name, check_entry):
    """Normalise {sample type: entry} with case-insensitive keys; check every entry."""
    if not isinstance(value, dict) or not value:
        raise SettingsError(f"{name} must be a non-empty dict keyed by sample type {list(SAMPLE_TYPES)}")
    normalised = {}
    for key, entry in value.items():
        sample = key.lower() if isinstance(key, str) else key
        if sample not in SAMPLE_TYPES:
            raise SettingsError(f"{name} has an unknown sample type {key!r}: use {list(SAMPLE_TYPES)}")
        if sample in normalised:
            raise SettingsError(f"{name} names the sample {sample!r} twice")
        normalised[sample] = check_entry(entry, f"{name}[{key!r}]")
    return normalised


def _check_file_list(files, where):
    if not isinstance(files, (list, tuple)) or not files:
        raise SettingsError(f"{where} must be a non-empty list of files")
    if not all(isinstance(f, str) and f.strip() for f in files):
        raise SettingsError(f"{where} must contain only non-empty file names")
    relative = [f for f in files if not f.startswith("/")]
    if relative:
        raise SettingsError(
            f"{where} holds relative file names such as {relative[0]!r}: workers run in directories of their "
            "own, so give absolute paths or LFNs"
        )
    if len(set(files)) != len(files):
        raise SettingsError(f"{where} lists a file more than once")
    return list(files)


def _check_event_count(count, where):
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise SettingsError(f"{where} must be a positive integer, not {count!r}")
    return count
