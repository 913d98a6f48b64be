"""The calibration procedure on the synthetic detector without service, agent or workers.

Why: checking the statistical tolerances needs the procedure's own analyses run on many
independent samples, which the local stack cannot do in reasonable time. Here every step
reconstructs all events of its samples at once with the built-in model and the current
constants, and the phase's collect and analyse (Procedure.phases) turn them into the next
constants, exactly as the service does with the summaries of workers that share the events
between them (the model's events depend on their identity only, so any split gives the same
values). The photon training (stage 2) changes no constant and is skipped; stage 3 uses the
trained Pandora response, as the built-in reconstruction does once the likelihood is merged.
"""
from dataclasses import dataclass

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.advance import StepRecord, analysis_inputs
from ILCDIRAC.CalibrationSystem.Procedure.phases import get_phase
from ILCDIRAC.CalibrationSystem.Procedure.procedure import Position, first_position, next_position
from ILCDIRAC.CalibrationSystem.Procedure.uncertainties import step_statistics
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import generate


@dataclass(frozen=True)
class DirectStep:
    """One step: where, the constants it ran with, the analysis' metrics (with the uncertainties and
    statistics-limited phases advance adds), the new constants and the convergence verdict (False
    for a statistics-limited step, which moves on all the same)."""

    stage: int
    phase: int
    iteration: int
    constants: dict
    metrics: dict
    new_constants: dict
    converged: bool


def run_directly(truth, settings, start, events):
    """Run the procedure from ``start`` with ``events`` generated events per sample and step.

    :param DetectorTruth truth: the detector (its seed chooses the events)
    :param dict settings: validated calibration settings
    :param dict start: the start constants
    :param int events: generated events per sample and step
    :return: list of DirectStep; ValueError if a phase exceeds nMaxIterationsPerPhase
    """
    numbers = np.arange(events, dtype=np.int64)
    constants, steps, previous = dict(start), [], None
    position, iteration = first_position(settings), 1
    while position is not None:
        phase = get_phase(position.phase)
        if not phase.constants:
            position = next_position(position, True, settings)
            continue
        outputs = {sample: generate(sample, numbers, constants, truth, position.stage) for sample in phase.samples}
        outcome = phase.analyse([phase.collect(outputs, settings)], constants, settings,
                                **analysis_inputs(position.stage, phase, previous))
        metrics = {**outcome.metrics, **step_statistics(previous.metrics if previous else {}, position.stage,
                                                        phase.name, position.phase, outcome, constants)}
        steps.append(DirectStep(position.stage, position.phase, iteration, constants, metrics,
                                outcome.constants, outcome.converged and not outcome.statistics_note))
        previous = StepRecord(position.stage, position.phase, len(steps) - 1, metrics)
        constants = outcome.constants
        following = next_position(position, outcome.converged, settings)
        if following == Position(*position):
            iteration += 1
            if iteration > settings['nMaxIterationsPerPhase']:
                raise ValueError(f"{phase.name} of stage {position.stage} does not converge within "
                                 f"{settings['nMaxIterationsPerPhase']} iterations")
        else:
            iteration = 1
        position = following
    return steps
