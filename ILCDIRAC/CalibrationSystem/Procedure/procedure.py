"""The order of the calibration: stages, phases and the step transitions (physics.md §1.2-1.5).

Stage 1 calibrates with the default photon likelihood, stage 2 retrains the likelihood, stage 3
recalibrates with it. An iterative phase repeats until it converges; the others run once.
``stopStage``/``stopPhase`` name the last phase that runs. Unlike upstream, the start and stop
settings are checked before anything runs.
"""
from typing import NamedTuple

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError, SettingsError
from ILCDIRAC.CalibrationSystem.Procedure.phases import PHASE_TABLE, get_phase

STAGES = {1: (0, 1, 2, 3, 4), 2: (5,), 3: (0, 1, 2, 3, 4)}


class Position(NamedTuple):
    """Where a calibration is: (stage, phase). Tuple order is execution order."""

    stage: int
    phase: int


def _valid_pairs():
    return ", ".join(f"({stage},{phase})" for stage, phases in STAGES.items() for phase in phases)


def _is_valid(position):
    return position.stage in STAGES and position.phase in STAGES[position.stage]


def _setting_position(settings, which):
    """(``which``Stage, ``which``Phase) from the settings; SettingsError unless it is a position of STAGES."""
    names = (f"{which}Stage", f"{which}Phase")
    values = [settings.get(name) for name in names]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise SettingsError(f"Settings {names[0]} and {names[1]} must be integers, got {values}")
    position = Position(*values)
    if not _is_valid(position):
        raise SettingsError(
            f"{names[0]}={position.stage}, {names[1]}={position.phase} is not a phase of the procedure;"
            f" valid (stage,phase) pairs: {_valid_pairs()}"
        )
    return position


def _following(position):
    """The position after ``position`` in the plain sequence, or None after the last one."""
    phases = STAGES[position.stage]
    index = phases.index(position.phase)
    if index + 1 < len(phases):
        return Position(position.stage, phases[index + 1])
    if position.stage + 1 in STAGES:
        return Position(position.stage + 1, STAGES[position.stage + 1][0])
    return None


def _span(start, stop):
    """Positions from ``start`` to ``stop`` (both included) in execution order, each once."""
    positions = []
    position = start
    while position is not None and position <= stop:
        positions.append(position)
        position = _following(position)
    return positions


def first_position(settings):
    """The position the calibration starts at (startStage, startPhase).

    :param dict settings: validated settings
    :return: Position(stage, phase); SettingsError if it is not a phase of the procedure
    """
    return _setting_position(settings, "start")


def next_position(position, converged, settings):
    """Where the calibration goes after a step at ``position``; None when it is finished.

    A non-converged iterative phase repeats; otherwise the sequence advances. A position beyond
    (stopStage, stopPhase) means finished.

    :param position: (stage, phase) of the step just analysed
    :param bool converged: the phase's verdict on that step
    :param dict settings: validated settings (stopStage, stopPhase)
    :return: the next Position, or None when the calibration is finished; ProcedureError for a
        position that does not exist
    """
    position = Position(*position)
    if not _is_valid(position):
        raise ProcedureError(
            f"Error in the execution sequence: (stage {position.stage}, phase {position.phase}) does not exist;"
            f" valid (stage,phase) pairs: {_valid_pairs()}"
        )
    if PHASE_TABLE[position.phase].iterative and not converged:
        candidate = position
    else:
        candidate = _following(position)
    if candidate is None or candidate > _setting_position(settings, "stop"):
        return None
    return candidate


def check_sequence(settings):
    """Refuse start/stop settings that cannot run: SettingsError saying what to change.

    :param dict settings: validated settings (startStage/startPhase/stopStage/stopPhase)
    """
    start = _setting_position(settings, "start")
    stop = _setting_position(settings, "stop")
    if stop < start:
        raise SettingsError(
            f"The stop (stage {stop.stage}, phase {stop.phase}) is before the start"
            f" (stage {start.stage}, phase {start.phase}); the stop names the last phase that runs"
        )


def phases_to_run(settings):
    """The positions the calibration goes through, in order, each once (after check_sequence).

    :param dict settings: validated settings
    :return: list of Position, from (startStage, startPhase) to (stopStage, stopPhase)
    """
    check_sequence(settings)
    return _span(_setting_position(settings, "start"), _setting_position(settings, "stop"))


def required_samples(settings):
    """Sample types the phases that will run need.

    :param dict settings: validated settings
    :return: set of sample types ('gamma', 'muon', 'kaon', 'zuds')
    """
    return {sample for position in phases_to_run(settings) for sample in get_phase(position.phase).samples}


def required_constants(settings):
    """Constants the phases that will run read or change.

    :param dict settings: validated settings
    :return: set of constant names, which the steering file must hold
    """
    return {name for position in phases_to_run(settings) for name in get_phase(position.phase).constants}
