"""The end of a calibration step: from the workers' results to the next step.

This is the whole decision the service takes when a step has enough results, as one pure
function, so that the DB layer only has to run it inside its transaction.
"""
import math
from dataclasses import dataclass, field

from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError
from ILCDIRAC.CalibrationSystem.Procedure.phases import get_phase, phase_label
from ILCDIRAC.CalibrationSystem.Procedure.plots import render_plot
from ILCDIRAC.CalibrationSystem.Procedure.procedure import Position, next_position
from ILCDIRAC.CalibrationSystem.Procedure.summary import decode_summary

RUNNING = "Running"
FINISHED = "Finished"
FAILED = "Failed"


@dataclass(frozen=True)
class StepRecord:
    """An analysed step of the calibration's history: where it ran and the metrics its analysis stored."""

    stage: int
    phase: int
    step: int
    metrics: dict


@dataclass(frozen=True)
class StepState:
    """Where a calibration stands: the step being analysed, the constants it ran with, and the
    step before it (None for the first step)."""

    stage: int
    phase: int
    step: int
    iteration: int  # 1 for the first step of a phase
    parameters: dict
    previous: StepRecord | None = None


#: File names under which a step's artifacts are kept with the calibration.
ARTIFACT_FILES = {"photonLikelihood": "newPandoraLikelihoodData.xml"}


@dataclass(frozen=True)
class StepOutcome:
    """What the analysis of a step decided, and the files (plots, artifacts) it produced."""

    status: str
    parameters: dict
    converged: bool
    next_position: Position | None
    message: str
    metrics: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)


def plot_file_name(state, plot_name):
    """Name of a step's plot among the calibration's files, sorted by step.

    :param StepState state: the step
    :param str plot_name: the plot's name (e.g. 'ecal_barrel')
    :return: e.g. 'step003_stage1_phase0_ecal_barrel.png'
    """
    return f"step{state.step:03d}_stage{state.stage}_phase{state.phase}_{plot_name}.png"


def _files(state, outcome, metrics):
    """PNGs of the step's plots and its artifacts; a plot that cannot be drawn is noted in the
    metrics rather than failing the calibration."""
    files = {ARTIFACT_FILES[name]: content for name, content in outcome.artifacts.items()}
    for plot in outcome.plots:
        try:
            files[plot_file_name(state, plot.name)] = render_plot(plot)
        except (TypeError, ValueError) as error:
            metrics[f"plotError_{plot.name}"] = str(error)
    return files


def results_needed(number_of_jobs, settings):
    """How many results a step needs before it is analysed (seed: 80-90 % of the jobs).

    :param int number_of_jobs: the calibration's numberOfJobs
    :param dict settings: its settings (fractionOfFinishedJobsNeededToStartNextStep)
    :return: int, at least 1
    """
    return max(1, math.ceil(settings["fractionOfFinishedJobsNeededToStartNextStep"] * number_of_jobs - 1e-9))


def analysis_inputs(stage, phase, previous):
    """Keyword inputs of the phase's analysis beyond the step's own results: the step before,
    for a phase that reads the last step of an earlier phase (None when that is not the step
    before, e.g. when the calibration started at this phase).

    :param int stage: the stage of the step analysed
    :param phase: its Phase (phases.get_phase)
    :param StepRecord previous: the step before it, or None
    :return: dict of keyword arguments for ``phase.analyse``
    """
    if phase.previous_phase is None:
        return {}
    if previous is None or (previous.stage, previous.phase) != (stage, phase.previous_phase):
        return {"previous": None}
    return {"previous": previous}


def advance(state, contents, settings):
    """Analyse the results (summary bytes) of ``state``'s step and say what comes next.

    A failed fit or an exhausted iteration budget ends the calibration as failed, with the
    constants it had reached and a message that says why; it never yields garbage constants.

    :param StepState state: the step being analysed, the constants it ran with and the step before
    :param list contents: the workers' summaries (bytes) for that step
    :param dict settings: the calibration's settings
    :return: StepOutcome: status (Running, Finished or Failed), the new constants, the convergence
        verdict, the next position, a message, the metrics and the files (plots, likelihood)
    """
    phase = get_phase(state.phase)
    where = f"stage {state.stage}, phase {state.phase} ({phase.name}), step {state.step}"
    summaries = [decode_summary(content, state.phase) for content in contents]
    try:
        outcome = phase.analyse(summaries, state.parameters, settings, **analysis_inputs(state.stage, phase, state.previous))
    except FitError as error:
        return StepOutcome(FAILED, state.parameters, False, None, f"Analysis of {where} failed: {error}")
    metrics = dict(outcome.metrics)
    files = _files(state, outcome, metrics)
    following = next_position(Position(state.stage, state.phase), outcome.converged, settings)
    if following is None:
        return StepOutcome(
            FINISHED, outcome.constants, outcome.converged, None, f"Finished after {where}", metrics, files
        )
    repeats = following == Position(state.stage, state.phase)
    if repeats and state.iteration >= settings["nMaxIterationsPerPhase"]:
        message = (
            f"{phase.name} did not converge within nMaxIterationsPerPhase={settings['nMaxIterationsPerPhase']}"
            f" iterations ({where}); the constants reached so far are kept"
        )
        return StepOutcome(FAILED, outcome.constants, False, None, message, metrics, files)
    message = (
        f"{where} analysed: {'repeating' if repeats else 'moving on to'} {phase_label(following.phase)}"
        f" (stage {following.stage})"
    )
    return StepOutcome(RUNNING, outcome.constants, outcome.converged, following, message, metrics, files)
