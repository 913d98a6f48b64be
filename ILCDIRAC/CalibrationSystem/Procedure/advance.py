"""The end of a calibration step: from the workers' results to the next step.

This is the whole decision taken when a step has enough results, as one pure function:
``private/StepAdvancement`` reads a snapshot of the step from the DB, calls ``advance`` and
commits what it returns. Everything about the next step is decided here, the iteration of the
phase included; the plots are returned undrawn, since the next constants do not need them.
"""
import math
from dataclasses import dataclass, field

from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import FAILED, FINISHED, RUNNING
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.phases import get_phase, phase_label
from ILCDIRAC.CalibrationSystem.Procedure.procedure import Position, next_position
from ILCDIRAC.CalibrationSystem.Procedure.summary import decode_summary
from ILCDIRAC.CalibrationSystem.Procedure.uncertainties import STATISTICS_LIMITED, step_statistics


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
    """What the analysis of a step decided: the calibration's status after it (Running, Finished or
    Failed), the constants of the next step, where and at which iteration of its phase the next step
    runs (None once the calibration has ended), the metrics, the artifacts the next steps need
    ({file name: bytes}) and the plots to draw ({file name: outcome.Distribution or Scatter})."""

    status: str
    parameters: dict
    converged: bool
    next_position: Position | None
    next_iteration: int | None
    message: str
    metrics: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)
    plots: dict = field(default_factory=dict)


def plot_file_name(state, plot_name):
    """Name of a step's plot among the calibration's files, sorted by step.

    :param StepState state: the step
    :param str plot_name: the plot's name (e.g. 'ecal_barrel')
    :return: e.g. 'step003_stage1_phase0_ecal_barrel.png'
    """
    return f"step{state.step:03d}_stage{state.stage}_phase{state.phase}_{plot_name}.png"


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


def advance(state, contents, settings, max_bytes):
    """Analyse the results (summary bytes) of ``state``'s step and say what comes next.

    A failed fit, data the phase cannot use or an exhausted iteration budget ends the calibration
    as failed, with the constants it had reached and a message that says why; it never yields
    garbage constants. A stored result that cannot be read is not such a verdict: it raises
    SummaryError and decides nothing, so that the step can be analysed again.

    :param StepState state: the step being analysed, the constants it ran with and the step before
    :param list contents: the workers' summaries (bytes) for that step
    :param dict settings: the calibration's settings
    :param int max_bytes: the size limit of a summary (the service's MaxResultSize)
    :return: StepOutcome: status (Running, Finished or Failed), the new constants, the convergence
        verdict, the next position and iteration, a message, the metrics, the artifacts and the plots
    """
    phase = get_phase(state.phase)
    where = f"stage {state.stage}, phase {state.phase} ({phase.name}), step {state.step}"
    summaries = [decode_summary(content, state.phase, max_bytes) for content in contents]
    try:
        outcome = phase.analyse(summaries, state.parameters, settings, **analysis_inputs(state.stage, phase, state.previous))
    except ProcedureError as error:
        return StepOutcome(FAILED, state.parameters, False, None, None, f"Analysis of {where} failed: {error}")
    artifacts = {ARTIFACT_FILES[name]: content for name, content in outcome.artifacts.items()}
    plots = {plot_file_name(state, plot.name): plot for plot in outcome.plots}
    previous_metrics = state.previous.metrics if state.previous is not None else {}
    metrics = {**outcome.metrics, **step_statistics(previous_metrics, state.stage, phase.name, state.phase, outcome,
                                                          state.parameters)}
    ended = (metrics, artifacts, plots)
    # A statistics-limited phase moves on (the same events cannot do better) but is not converged.
    converged = outcome.converged and not outcome.statistics_note
    where += _verdict(outcome)
    following = next_position(Position(state.stage, state.phase), outcome.converged, settings)
    if following is None:
        limited = list(metrics[STATISTICS_LIMITED].values())
        message = f"Finished after {where}" + (f"; statistics-limited: {' | '.join(limited)}" if limited else "")
        return StepOutcome(FINISHED, outcome.constants, converged, None, None, message, *ended)
    repeats = following == Position(state.stage, state.phase)
    if repeats and state.iteration >= settings["nMaxIterationsPerPhase"]:
        message = (
            f"{phase.name} did not converge within nMaxIterationsPerPhase={settings['nMaxIterationsPerPhase']}"
            f" iterations ({where}); the constants reached so far are kept"
        )
        return StepOutcome(FAILED, outcome.constants, False, None, None, message, *ended)
    message = (
        f"{where} analysed: {'repeating' if repeats else 'moving on to'} {phase_label(following.phase)}"
        f" (stage {following.stage})" + (f"; {outcome.statistics_note}" if outcome.statistics_note else "")
    )
    return StepOutcome(RUNNING, outcome.constants, converged, following,
                       state.iteration + 1 if repeats else 1, message, *ended)


def _verdict(outcome):
    """' (deviation d ± u, accuracy a)' for a phase that measures a deviation from its target, ''
    for one that does not."""
    metrics = outcome.metrics
    if "maxRelativeDeviation" not in metrics or "maxRelativeDeviationUncertainty" not in metrics:
        return ""
    return (f" (deviation {metrics['maxRelativeDeviation']:.2%} ± {metrics['maxRelativeDeviationUncertainty']:.2%},"
            f" accuracy {metrics['accuracy']:.2%})")
