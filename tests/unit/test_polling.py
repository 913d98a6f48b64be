"""NextStepWait: when a worker asks again for the next step, from what the service answered."""
import pytest

from ILCDIRAC.CalibrationSystem.Worker.polling import NextStepWait


@pytest.mark.parametrize("shortest, longest", [(0, 10), (-1, 10), (5, 2)])
def test_polling_times_must_be_positive_and_ordered(shortest, longest):
    with pytest.raises(ValueError, match="0 < shortest <= longest"):
        NextStepWait(shortest, longest)


def test_a_report_that_completes_the_step_is_followed_by_a_poll_at_once():
    assert NextStepWait(0.5, 10).afterReport(0, 8, 30.0) == 0


@pytest.mark.parametrize("missing, jobs, stepSeconds, wait", [
    (3, 4, 8.0, 6.5),     # three quarters of its own step time, and the analysis (0.5 s until learnt)
    (1, 8, 8.0, 1.5),     # the last missing result: an eighth of it
    (12, 8, 8.0, 8.5),    # the others' share is never more than its own step time
    (1, 100, 8.0, 0.58),  # a hundredth
    (50, 100, 3600, 10),  # never more than the longest wait
])
def test_missing_results_are_expected_within_a_share_of_the_workers_own_step_time(missing, jobs, stepSeconds, wait):
    assert NextStepWait(0.5, 10).afterReport(missing, jobs, stepSeconds) == pytest.approx(wait)


def test_the_wait_for_missing_results_includes_the_analysis_learnt_before():
    waits = NextStepWait(0.1, 30)
    waits.afterReport(0, 4, 1.0)
    waits.afterPoll(0, 10.0)
    waits.afterPoll(0, 10.1)
    waits.nextStep(12.1)  # the analysis ended between 10.1 and 12.1: 1.1 s after it was seen

    assert waits.afterReport(2, 4, 1.0) == pytest.approx(0.5 + 1.1)


def test_answers_without_news_double_the_wait_up_to_the_longest():
    waits = NextStepWait(0.5, 10)
    assert waits.afterReport(2, 4, 1.0) == 1

    assert [waits.afterPoll(missing, now) for now, missing in enumerate([2, 1, 1, 1, None, 1])] == [2, 4, 8, 10, 10, 10]


def test_the_analysis_is_first_waited_for_with_the_shortest_wait_then_doubling():
    waits = NextStepWait(0.5, 10)
    waits.afterReport(2, 4, 16.0)

    assert waits.afterPoll(1, 8.5) == 10
    assert [waits.afterPoll(0, now) for now in (18.0, 18.5, 19.5)] == [0.5, 1, 2]


def test_the_analysis_wait_is_learnt_from_when_the_analysis_ended():
    waits = NextStepWait(0.5, 30)
    waits.afterReport(0, 4, 1.0)
    # polls at 100, 100.5, 101.5 see the analysis running, the one at 103.5 gets the next step
    assert [waits.afterPoll(0, now) for now in (100.0, 100.5, 101.5)] == [0.5, 1, 2]
    waits.nextStep(103.5)
    # it ended between 101.5 and 103.5: 2.5 s after it was first seen
    waits.afterReport(0, 4, 1.0)
    assert waits.afterPoll(0, 200.0) == 2.5


def test_a_first_poll_that_finds_the_next_step_halves_the_analysis_wait():
    waits = NextStepWait(0.5, 30)
    waits.afterReport(0, 4, 1.0)
    waits.afterPoll(0, 0.0)
    waits.afterPoll(0, 0.5)
    waits.afterPoll(0, 1.5)
    waits.nextStep(6.5)  # ended between 1.5 and 6.5: 4 s after it was first seen
    learnt = []
    for now in (10.0, 20.0, 30.0, 40.0):
        waits.afterReport(0, 4, 1.0)
        learnt.append(waits.afterPoll(0, now))
        waits.nextStep(now + learnt[-1])  # the first poll after the wait gets the next step

    assert learnt == [4, 2, 1, 0.5]


def test_a_step_served_without_a_poll_seeing_its_analysis_teaches_nothing():
    waits = NextStepWait(0.5, 30)
    waits.afterReport(0, 4, 1.0)
    waits.afterPoll(0, 0.0)
    waits.afterPoll(0, 0.5)
    waits.nextStep(1.5)  # learnt: 1 s
    waits.afterReport(3, 4, 4.0)
    waits.afterPoll(2, 10.0)
    waits.nextStep(16.0)  # the analysis was never seen: nothing learnt
    waits.afterReport(3, 4, 4.0)

    assert waits.afterPoll(0, 20.0) == 1.0
