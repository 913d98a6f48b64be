"""NextStepWait: when a worker asks again for the next step, from what the service answered."""
import pytest

from ILCDIRAC.CalibrationSystem.Worker.polling import NextStepWait


@pytest.mark.parametrize("shortest, longest", [(0, 10), (-1, 10), (5, 2)])
def test_polling_times_must_be_positive_and_ordered(shortest, longest):
    with pytest.raises(ValueError, match="0 < shortest <= longest"):
        NextStepWait(shortest, longest)


def test_a_report_that_completes_the_step_is_followed_by_the_analysis_it_starts():
    assert NextStepWait(0.5, 10).afterReport(0, 8, 30.0, 2.0) == 2
    assert NextStepWait(0.5, 10).afterReport(0, 8, 30.0, 0.01) == 0.5  # never less than the shortest wait


def test_a_report_that_completes_the_step_or_comes_too_late_without_known_analysis_is_followed_by_a_poll_at_once():
    assert NextStepWait(0.5, 10).afterReport(0, 8, 30.0) == 0


def test_results_the_service_could_not_count_are_asked_about_after_the_shortest_wait():
    waits = NextStepWait(0.5, 10)

    assert waits.afterReport(None, 8, 30.0, 2.0) == 0.5
    assert waits.afterPoll(3) == 1


@pytest.mark.parametrize("missing, jobs, stepSeconds, analysisSeconds, wait", [
    (3, 4, 8.0, None, 6.0),   # three quarters of its own step time
    (1, 8, 8.0, None, 1.0),   # the last missing result: an eighth of it
    (12, 8, 8.0, None, 8.0),  # the others' share is never more than its own step time
    (3, 4, 8.0, 1.5, 7.5),    # and then the analysis
    (1, 100, 8.0, None, 0.5),  # never less than the shortest wait
    (50, 100, 3600, 1.0, 10),  # nor more than the longest
])
def test_missing_results_and_the_analysis_are_waited_for_after_a_report(missing, jobs, stepSeconds, analysisSeconds,
                                                                       wait):
    assert NextStepWait(0.5, 10).afterReport(missing, jobs, stepSeconds, analysisSeconds) == pytest.approx(wait)


def test_answers_without_news_double_the_wait_up_to_the_longest():
    waits = NextStepWait(0.5, 10)
    assert waits.afterReport(2, 4, 2.0) == 1

    assert [waits.afterPoll(missing) for missing in [2, 1, 1, 1, None, 1]] == [2, 4, 8, 10, 10, 10]


def test_an_analysis_is_waited_for_as_long_as_the_service_expects_it_to_last():
    waits = NextStepWait(0.5, 10)
    waits.afterReport(2, 4, 16.0)

    assert waits.afterPoll(1) == 10
    assert waits.afterPoll(0, 2.5) == 2.5
    assert waits.afterPoll(0, 0.2) == 0.5  # never less than the shortest wait


def test_an_analysis_of_unknown_length_or_longer_than_expected_is_expected_to_end_soon():
    waits = NextStepWait(0.5, 10)
    waits.afterReport(2, 4, 16.0)

    assert [waits.afterPoll(0) for _ in range(3)] == [0.5, 1, 2]
    assert waits.afterPoll(0, 3.0) == 3
    assert [waits.afterPoll(0, 0.0) for _ in range(3)] == [0.5, 1, 2]  # past the time the service expected


def test_a_new_report_starts_afresh():
    waits = NextStepWait(0.5, 10)
    waits.afterReport(2, 4, 16.0)
    waits.afterPoll(0)
    waits.afterPoll(0)

    assert waits.afterReport(0, 4, 16.0) == 0
    assert waits.afterPoll(0) == 0.5
