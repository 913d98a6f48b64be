"""When the service expects the analysis of a step to end, for the workers waiting for it.

A worker that is told "not yet, the step is being analysed" would otherwise guess when to ask
again, and every guess either costs a poll too many or leaves it idle after the next step is
there, which delays the whole next step (it needs the workers' results). The service's
background analysis (``private/StepAdvancement.StepAdvancer``, which passes this clock to
``advanceStep``) knows when an analysis began, and how long the last analysis of the same phase
of that calibration took. That knowledge is only a hint: it lives in the process's memory, so
another service instance, the agent's analyses and a restart simply leave the worker to its own
waits.
"""
import threading
import time
from contextlib import contextmanager

#: durations kept, the oldest forgotten first: a few phases of the calibrations analysed lately
MAX_DURATIONS = 10000


class AnalysisClock:
    """The analyses running in this process and how long the last ones took, per calibration."""

    def __init__(self, clock=time.monotonic):
        """
        :param clock: the function giving the time in seconds (``time.monotonic``; replaced in tests)
        """
        self.clock = clock
        self._lock = threading.Lock()
        self._running = {}  # calibrationID -> (step, start)
        self._durations = {}  # (calibrationID, phase) -> seconds of its last analysis

    @contextmanager
    def timing(self, calibrationID, step, phase):
        """Time the analysis of a step run in the ``with`` block.

        :param int calibrationID: the calibration
        :param int step: the step analysed
        :param int phase: its phase
        :return: a context manager (nothing is bound by ``as``)
        """
        start = self.clock()
        with self._lock:
            self._running[calibrationID] = (step, start)
        try:
            yield
        finally:
            with self._lock:
                self._durations.pop((calibrationID, phase), None)  # re-inserted as the newest
                self._durations[calibrationID, phase] = self.clock() - start
                if len(self._durations) > MAX_DURATIONS:
                    del self._durations[next(iter(self._durations))]
                if self._running.get(calibrationID) == (step, start):
                    del self._running[calibrationID]

    def lastDuration(self, calibrationID, phase):
        """How long the last analysis of a phase of a calibration took in this process.

        :param int calibrationID: the calibration
        :param int phase: the phase
        :return: seconds, or None if this process has not analysed the phase
        """
        with self._lock:
            return self._durations.get((calibrationID, phase))

    def expectedIn(self, calibrationID, step, phase):
        """When the analysis of a step running in this process is expected to end.

        :param int calibrationID: the calibration
        :param int step: its current step
        :param int phase: the step's phase
        :return: seconds from now (0 when it runs longer than the last analysis of the phase), or
            None when this process is not analysing the step or has not analysed the phase before
        """
        with self._lock:
            running = self._running.get(calibrationID)
            duration = self._durations.get((calibrationID, phase))
        if running is None or running[0] != step or duration is None:
            return None
        return max(0.0, running[1] + duration - self.clock())
