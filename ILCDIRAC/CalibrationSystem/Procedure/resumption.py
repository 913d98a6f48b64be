"""Resuming a failed or killed calibration from one of its completed steps.

A resume never changes the calibration it starts from: it becomes a new calibration, linked to
its origin, that keeps the origin's history up to the chosen step and runs that step again with
the constants it ran with, then goes on as any calibration does (``advance``). The step is run
again rather than its verdict reused because the verdict (converged or not, what comes next)
depends on the settings, which the resume may change; its iteration of the phase is kept, so the
iteration cap counts as before. Only the settings that steer how the procedure goes on may
change; those that define what the stored constants mean (detector, processors, layers, angular
ranges, the start, the steering file and release) may not. :func:`plan_resumption` checks the
request on plain data before anything is written.
"""
from dataclasses import dataclass

from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import FINISHED, RESUMABLE_STATUSES, RUNNING
from ILCDIRAC.CalibrationSystem.Procedure.creation import check_number_of_jobs, check_output, split_workers
from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError, StateError
from ILCDIRAC.CalibrationSystem.Procedure.procedure import (
    Position,
    check_sequence,
    phases_to_run,
    required_constants,
    required_samples,
)
from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings

#: Settings a resume may change: how precisely, how long and how far the procedure goes on.
CHANGEABLE_SETTINGS = (
    "digitisationAccuracy",
    "pandoraPFAAccuracy",
    "nMaxIterationsPerPhase",
    "fractionOfFinishedJobsNeededToStartNextStep",
    "stopStage",
    "stopPhase",
)
#: Job keys a resume may change: how the events are shared out, and where the results go.
CHANGEABLE_JOB_KEYS = ("numberOfJobs", "outputPath", "outputSE")
#: Job keys a resume keeps: the constants and the workers' reconstruction come from them.
FIXED_JOB_KEYS = ("steeringFile", "softwareVersion", "photonTrainingSettings", "photonTrainingSettingsFile")


@dataclass(frozen=True)
class ResumptionPlan:
    """A checked resume request, ready to be stored as a new calibration."""

    from_step: int  # the step of the origin run again first; the steps before it are kept as history
    position: Position  # (stage, phase) of that step
    iteration: int  # its iteration of the phase
    parameters: dict  # the constants it ran with
    settings: dict  # the origin's settings with the changes
    number_of_jobs: int
    worker_input_data: list  # per worker: {sample type: [files, skip, number of events]}
    output_path: str
    output_se: str
    note: str  # what the resume is, for the event logs of both calibrations


def completed_steps(steps):
    """The steps of a history whose analysis has been committed.

    :param list steps: step dicts as ``CalibrationDB.getSteps`` returns them
    :return: list of their step numbers, in order
    """
    return [step["Step"] for step in steps if step["EndTime"] is not None]


def plan_resumption(origin, steps, input_files, events_per_file, has_training_settings, from_step, changes):
    """Check a resume request and say what the new calibration is; nothing is written here.

    :param dict origin: the calibration to resume: 'CalibrationID', 'Status', 'Step', 'Settings',
        'NumberOfJobs', 'OutputPath', 'OutputSE' (as ``CalibrationDB.getCalibration`` gives them)
    :param list steps: its history, step dicts with 'Step', 'Stage', 'Phase', 'PhaseIteration',
        'Parameters', 'EndTime'
    :param dict input_files: its {sample type: [file, ...]}
    :param dict events_per_file: its {sample type: events in each file}
    :param bool has_training_settings: whether it was created with photon-training PandoraSettings
    :param from_step: the completed step to run again first, or None for the last completed one
    :param dict changes: settings and job keys to change (``CHANGEABLE_SETTINGS``,
        ``CHANGEABLE_JOB_KEYS``); the others stay as the origin has them
    :return: ResumptionPlan; StateError if the calibration is not Failed or Killed, SettingsError
        for a step that cannot be resumed from or a change that is not allowed
    """
    calibrationID = origin["CalibrationID"]
    _check_status(calibrationID, origin)
    step = _chosen_step(calibrationID, steps, from_step)
    if not isinstance(changes, dict):
        raise SettingsError(f"the changed settings must be a dict of setting -> value, not {type(changes).__name__}")
    fixed = sorted(key for key in changes if key in FIXED_JOB_KEYS)
    if fixed:
        raise SettingsError(
            f"{', '.join(fixed)} cannot change when calibration {calibrationID} is resumed: its constants come"
            " from them; create a new calibration instead"
        )
    procedure = {key: value for key, value in changes.items() if key not in CHANGEABLE_JOB_KEYS}
    settings = validate_settings(procedure, base=origin["Settings"])
    frozen = sorted(key for key in procedure if key not in CHANGEABLE_SETTINGS
                    and settings[key] != origin["Settings"][key])
    if frozen:
        raise SettingsError(
            f"{', '.join(frozen)} cannot change when calibration {calibrationID} is resumed: the constants it"
            f" reached were calibrated with {'them' if len(frozen) > 1 else 'it'}. A resume may change"
            f" {', '.join(CHANGEABLE_SETTINGS + CHANGEABLE_JOB_KEYS)}; for other settings create a new calibration"
        )
    position = Position(step["Stage"], step["Phase"])
    _check_span(calibrationID, settings, position, step, input_files, has_training_settings)
    number_of_jobs = changes.get("numberOfJobs", origin["NumberOfJobs"])
    check_number_of_jobs(number_of_jobs)
    output_path, output_se = changes.get("outputPath", origin["OutputPath"]), changes.get("outputSE", origin["OutputSE"])
    check_output(output_path, output_se)
    note = f"Resumed from step {step['Step']} (stage {position.stage}, phase {position.phase}) of calibration {calibrationID}"
    if changes:
        note += " with " + ", ".join(f"{key}={changes[key]!r}" for key in sorted(changes))
    return ResumptionPlan(
        step["Step"], position, step["PhaseIteration"], step["Parameters"], settings, number_of_jobs,
        split_workers(input_files, events_per_file, number_of_jobs), output_path, output_se, note,
    )


def _check_status(calibrationID, origin):
    status = origin["Status"]
    if status == RUNNING:
        raise StateError(
            f"Calibration {calibrationID} is still running (step {origin['Step']}): a running calibration goes on"
            f" by itself; to go on with other settings kill it first (dirac-calibration-kill {calibrationID}),"
            " then resume it"
        )
    if status == FINISHED:
        raise StateError(
            f"Calibration {calibrationID} has finished: there is nothing to resume; for other settings create"
            " a new calibration"
        )
    if status not in RESUMABLE_STATUSES:
        raise StateError(f"Calibration {calibrationID} is {status}: only {' or '.join(RESUMABLE_STATUSES)} ones resume")


def _chosen_step(calibrationID, steps, from_step):
    """The step dict to resume from: ``from_step`` if it is completed, else the last completed one."""
    completed = completed_steps(steps)
    if not completed:
        raise SettingsError(
            f"Calibration {calibrationID} has no completed step to resume from: create the calibration anew"
        )
    if from_step is None:
        from_step = completed[-1]
    if isinstance(from_step, bool) or not isinstance(from_step, int):
        raise SettingsError(f"the step to resume from must be an integer step number, not {from_step!r}")
    if from_step not in completed:
        raise SettingsError(
            f"Step {from_step} of calibration {calibrationID} is not a completed step: resume from one of"
            f" {_ranges(completed)} (default: the last, {completed[-1]})"
        )
    return next(step for step in steps if step["Step"] == from_step)


def _check_span(calibrationID, settings, position, step, input_files, has_training_settings):
    """SettingsError unless the (possibly moved) stop lets the resumed calibration run from
    ``position`` with the samples, constants and training settings it has."""
    check_sequence(settings)
    stop = Position(settings["stopStage"], settings["stopPhase"])
    if stop < position:
        raise SettingsError(
            f"step {step['Step']} runs stage {position.stage}, phase {position.phase}, after the stop (stopStage"
            f" {stop.stage}, stopPhase {stop.phase}): move the stop to it or later, or resume from an earlier step"
        )
    missing = sorted(required_samples(settings) - set(input_files))
    if missing:
        raise SettingsError(
            f"the phases up to stage {stop.stage}, phase {stop.phase} need the samples {missing}, which calibration"
            f" {calibrationID} was not given: stop earlier, or create a new calibration with them"
        )
    constants = sorted(required_constants(settings) - set(step["Parameters"]))
    if constants:
        raise SettingsError(
            f"the phases up to stage {stop.stage}, phase {stop.phase} set {constants}, which calibration"
            f" {calibrationID} did not read from its steering file: stop earlier, or create a new calibration"
        )
    if not has_training_settings and any(p.stage == 2 for p in phases_to_run(settings) if p >= position):
        raise SettingsError(
            f"the photon training (stage 2) needs its PandoraSettings, which calibration {calibrationID} was"
            " created without: stop before stage 2, or create a new calibration with them"
        )


def _ranges(numbers):
    """'0-3, 5' for [0, 1, 2, 3, 5] (sorted, distinct)."""
    runs = [[numbers[0], numbers[0]]]
    for number in numbers[1:]:
        if number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in runs)
