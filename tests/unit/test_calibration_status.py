"""The statuses of calibrations and job attempts: every transition leads to a known status, ended
ones lead nowhere, and ``sourcesOf`` gives what a conditional update may start from."""
import pytest

from ILCDIRAC.CalibrationSystem.Client import CalibrationStatus as status


@pytest.mark.parametrize("statuses, transitions, final", [
    (status.CALIBRATION_STATUSES, status.CALIBRATION_TRANSITIONS, status.ENDED_STATUSES),
    (status.ATTEMPT_STATUSES, status.ATTEMPT_TRANSITIONS, status.FINAL_ATTEMPT_STATUSES),
])
def test_transitions_lead_between_known_statuses_and_never_out_of_an_ended_one(statuses, transitions, final):
    assert set(transitions) == set(statuses)
    assert all(set(targets) <= set(statuses) for targets in transitions.values())
    assert all(transitions[ended] == () for ended in final)


def test_a_calibration_ends_only_while_it_runs():
    for ended in status.ENDED_STATUSES:
        assert status.sourcesOf(ended, status.CALIBRATION_TRANSITIONS) == (status.RUNNING,)
    assert status.sourcesOf(status.RUNNING, status.CALIBRATION_TRANSITIONS) == ()


def test_what_a_job_backend_reports_can_be_reached_and_a_killed_attempt_stays_killed():
    for reported in status.BACKEND_STATUSES:
        assert status.sourcesOf(reported, status.ATTEMPT_TRANSITIONS)
    assert status.ATTEMPT_DONE not in status.sourcesOf(status.ATTEMPT_KILLED, status.ATTEMPT_TRANSITIONS)
    assert status.sourcesOf(status.ATTEMPT_LOST, status.ATTEMPT_TRANSITIONS) == (status.ATTEMPT_SUBMITTING,)
    assert set(status.FAILED_ATTEMPT_STATUSES) < set(status.FINAL_ATTEMPT_STATUSES)
