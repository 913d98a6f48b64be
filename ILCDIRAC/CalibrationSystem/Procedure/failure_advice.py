"""What to try next after a calibration that failed or was killed, read from its history.

A failed calibration still holds the constants it reached; what a physicist needs besides them is
why it stopped and which setting to change. The reasons are those ``advance`` (a failed analysis,
the iteration cap) and the agent (too many failed jobs) give; the rest is read from the metrics
of the steps.
"""
import math

from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import FINISHED, KILLED
from ILCDIRAC.CalibrationSystem.Procedure.phases import phase_label

#: The setting each iterative phase compares its deviation with (the phases read it from the settings).
ACCURACY_SETTINGS = {0: "digitisationAccuracy", 1: "digitisationAccuracy", 3: "pandoraPFAAccuracy",
                     4: "pandoraPFAAccuracy"}
#: How far above the deviation reached a relaxed accuracy is proposed, so that the same data converge.
RELAXATION_MARGIN = 1.2


def failure_advice(calibration_id, status, status_message, history, settings, steering_file):
    """Sentences saying what to try after a calibration ended as ``status``.

    :param int calibration_id: the calibration, for the resume command
    :param str status: Failed or Killed (Finished: nothing to advise)
    :param str status_message: why it ended, as the calibration's status message says
    :param list history: the steps, oldest first: dicts with Stage, Phase, PhaseIteration, Metrics
    :param dict settings: the calibration's settings
    :param str steering_file: the name of the file holding the constants it reached
    :return: list of str, empty for a finished calibration
    """
    if status == FINISHED:
        return []
    message = status_message or ""
    advice = []
    if "nMaxIterationsPerPhase" in message and history:
        advice.extend(_convergence_advice(history, settings))
    elif message.startswith("Analysis of "):
        advice.append("The fit or the data of that phase did not give constants: look at the plots of its last "
                      "step (step<N>_*.png) and at the samples the phase reads, and at the start constants.")
    elif "job attempts failed" in message:
        advice.append("Its jobs failed too often: read the outputs of the failed jobs (a wrong software version, "
                      "input files that cannot be read) before starting again.")
    if history:
        last = history[-1]
        stage, phase = last["Stage"], last["Phase"]
        advice.append(
            f"To go on from where it {'was killed' if status == KILLED else 'stopped'}, resume it from its last "
            f"completed step: dirac-calibration-resume {calibration_id} (--set NAME=VALUE changes a setting, e.g. "
            f"one above); or create a calibration from {steering_file} (its constants are those reached) with "
            f"startStage={stage} and startPhase={phase}, the start of {phase_label(phase)}."
        )
    return advice


def _convergence_advice(history, settings):
    """The deviations the phase that hit the iteration cap reached, and the settings that would let it end."""
    phase = history[-1]["Phase"]
    steps = [step for step in history if step["Phase"] == phase and step["Stage"] == history[-1]["Stage"]]
    deviations = [step["Metrics"]["maxRelativeDeviation"] for step in steps
                  if step.get("Metrics") and "maxRelativeDeviation" in step["Metrics"]]
    cap = f"raise nMaxIterationsPerPhase (now {settings.get('nMaxIterationsPerPhase')})"
    setting = ACCURACY_SETTINGS.get(phase)
    if not deviations or setting is None:
        return [f"{phase_label(phase)} did not converge: {cap}."]
    reached, accuracy = deviations[-1], settings[setting]
    lowest = min(deviations)
    return [
        f"{phase_label(phase)} reached a deviation of {reached:.2%} from its target in its last step (lowest "
        f"{lowest:.2%}; every step: {', '.join(f'{d:.2%}' for d in deviations)}) against {setting}={accuracy:g}.",
        f"Relax {setting} to {_round_up(lowest * RELAXATION_MARGIN)} or more, {cap}, or give more events per "
        "sample if the deviations scatter (statistics, not the constants, then limit the accuracy).",
    ]


def _round_up(value):
    """``value`` (> 0) rounded up to two significant digits, as a setting would be written."""
    exponent = math.floor(math.log10(value)) - 1
    return f"{math.ceil(round(value / 10 ** exponent, 9)) * 10 ** exponent:.2g}"
