"""AnalysisClock: when the service expects a running analysis to end, from the phase's last one."""
import pytest

from ILCDIRAC.CalibrationSystem.Service import AnalysisClock as analysis_clock
from ILCDIRAC.CalibrationSystem.Service.AnalysisClock import AnalysisClock


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def _analyse(analyses, clock, calibrationID, step, phase, seconds):
    with analyses.timing(calibrationID, step, phase):
        clock.now += seconds


def test_nothing_is_expected_before_a_phase_has_been_analysed(clock):
    analyses = AnalysisClock(clock)
    assert analyses.lastDuration(7, 0) is None
    assert analyses.expectedIn(7, 0, 0) is None
    with analyses.timing(7, 0, 0):
        assert analyses.expectedIn(7, 0, 0) is None  # running, but how long phase 0 takes is unknown


def test_a_running_analysis_is_expected_to_last_as_long_as_the_last_of_its_phase(clock):
    analyses = AnalysisClock(clock)
    _analyse(analyses, clock, 7, 0, 0, 2.5)
    _analyse(analyses, clock, 7, 1, 1, 9.0)
    assert analyses.lastDuration(7, 0) == 2.5

    with analyses.timing(7, 2, 0):
        clock.now += 1.0
        assert analyses.expectedIn(7, 2, 0) == pytest.approx(1.5)
        assert analyses.expectedIn(7, 1, 1) is None  # not the step being analysed
        assert analyses.expectedIn(8, 2, 0) is None  # nor the calibration
        clock.now += 2.0
        assert analyses.expectedIn(7, 2, 0) == 0  # longer than the last one
    assert analyses.expectedIn(7, 2, 0) is None  # over
    assert analyses.lastDuration(7, 0) == pytest.approx(3.0)


def test_an_analysis_that_fails_is_timed_too(clock):
    analyses = AnalysisClock(clock)
    with pytest.raises(RuntimeError):
        with analyses.timing(7, 0, 0):
            clock.now += 4.0
            raise RuntimeError("DB gone")

    assert analyses.lastDuration(7, 0) == 4.0
    assert analyses.expectedIn(7, 0, 0) is None


def test_the_oldest_durations_are_forgotten_first(clock, monkeypatch):
    monkeypatch.setattr(analysis_clock, "MAX_DURATIONS", 2)
    analyses = AnalysisClock(clock)
    for calibrationID in (1, 2):
        _analyse(analyses, clock, calibrationID, 0, 0, 1.0)
    _analyse(analyses, clock, 1, 1, 0, 2.0)  # calibration 1 analysed again: now the newest
    _analyse(analyses, clock, 3, 0, 0, 3.0)

    assert [analyses.lastDuration(c, 0) for c in (1, 2, 3)] == [2.0, None, 3.0]
