"""Phase registry, stage/phase transitions, the stop rule and the start/stop checks."""
import pytest

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError, SettingsError
from ILCDIRAC.CalibrationSystem.Procedure.phases import PHASE_TABLE, PHASES, get_phase
from ILCDIRAC.CalibrationSystem.Procedure.procedure import (
    Position,
    check_sequence,
    first_position,
    next_position,
    phases_to_run,
    required_constants,
    required_samples,
)


def _settings(start=(1, 0), stop=(3, 4)):
    return {"startStage": start[0], "startPhase": start[1], "stopStage": stop[0], "stopPhase": stop[1]}


def test_phase_registry():
    assert [PHASE_TABLE[p].name for p in range(6)] == [
        "ECalDigi",
        "HCalDigi",
        "MuonAndHCalOtherDigi",
        "ElectroMagEnergy",
        "HadronicEnergy",
        "PhotonTraining",
    ]
    phase = get_phase(0)
    summary = (phase.id, phase.name, phase.samples, phase.iterative)
    assert summary == (0, "ECalDigi", ("gamma",), True)
    assert set(phase.summary_fields) == {"barrel", "endcap"}
    for phase_id, phase in PHASES.items():
        assert phase.id == phase_id and phase.iterative == PHASE_TABLE[phase_id].iterative


def test_get_phase_refusals():
    for bad in (6, -1, "0", True):
        with pytest.raises(ProcedureError, match="Unknown calibration phase"):
            get_phase(bad)


def test_reference_sequence_all_converging():
    settings = _settings()
    position = first_position(settings)
    visited = []
    while position is not None:
        visited.append(position)
        position = next_position(position, True, settings)
    assert [p.stage for p in visited] == [1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3]
    assert [p.phase for p in visited] == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "position, expected",
    [
        ((1, 0), (1, 0)),  # iterative: repeat
        ((1, 1), (1, 1)),
        ((1, 2), (1, 3)),  # single step: always advances
        ((1, 3), (1, 3)),
        ((1, 4), (1, 4)),
        ((2, 5), (3, 0)),
        ((3, 4), (3, 4)),
    ],
)
def test_not_converged(position, expected):
    assert next_position(Position(*position), False, _settings()) == Position(*expected)


def test_stop_rule_names_the_last_phase():
    assert next_position(Position(1, 0), True, _settings(stop=(1, 0))) is None
    assert next_position(Position(1, 0), False, _settings(stop=(1, 0))) == Position(1, 0)
    assert next_position(Position(1, 4), True, _settings(stop=(2, 5))) == Position(2, 5)
    assert next_position(Position(2, 5), True, _settings(stop=(2, 5))) is None
    assert next_position(Position(3, 4), True, _settings()) is None


def test_next_position_refuses_invalid_position():
    with pytest.raises(ProcedureError, match="execution sequence"):
        next_position(Position(2, 0), True, _settings())


def test_check_sequence_accepts_valid_runs():
    for start, stop in [((1, 0), (1, 0)), ((3, 0), (3, 0)), ((1, 2), (1, 3)), ((2, 5), (2, 5))]:
        check_sequence(_settings(start, stop))
    assert phases_to_run(_settings((1, 0), (1, 0))) == [Position(1, 0)]
    full = [(1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 5), (3, 0), (3, 1), (3, 2), (3, 3), (3, 4)]
    assert phases_to_run(_settings((1, 0), (3, 4))) == [Position(*p) for p in full]
    assert required_samples(_settings((1, 0), (3, 4))) == {"gamma", "muon", "kaon", "zuds"}
    assert required_samples(_settings(stop=(1, 0))) == {"gamma"}
    assert required_constants(_settings(stop=(1, 0))) == {"CalibrECAL", "ECALEndcapCorrectionFactor"}


@pytest.mark.parametrize(
    "start, stop, message",
    [
        ((2, 0), (3, 4), r"startStage=2, startPhase=0 is not a phase"),
        ((4, 0), (3, 4), r"startStage=4"),
        ((1, 0), (3, 5), r"stopStage=3, stopPhase=5 is not a phase"),
        ((3, 0), (1, 0), r"before the start"),
    ],
)
def test_check_sequence_refusals(start, stop, message):
    with pytest.raises(SettingsError, match=message):
        check_sequence(_settings(start, stop))


def test_settings_must_be_integers():
    with pytest.raises(SettingsError, match="integers"):
        first_position({"startStage": "1", "startPhase": 0})
