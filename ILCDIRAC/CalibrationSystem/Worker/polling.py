"""When a worker that has reported a step asks the service again for the next one.

Every poll costs a TLS handshake on both sides (DISET opens a connection per call) and, in the
service, time under the GIL that the step's analysis also needs; so a worker should ask when the
next constants are likely to be there, not at a fixed rhythm. Two things stand between a
reported step and the next: the results the step still misses from the other workers, and the
service's analysis of the step. The service says how many results are missing in its answers
(``ResultsMissing`` of submitResult, ``resultsMissing`` of a waiting getNewParameters):

- once none is missing, the next constants come when the analysis ends. How long analyses take
  is learnt from the steps before: the analysis of a step ended between the last poll that saw
  it running and the poll that got the next step;
- while results are missing, the others are still reconstructing slices like this worker's,
  which they started about when it did: their results are expected within a share of its own
  step time, the larger the more of them are missing, and the analysis comes after them.

An answer without news doubles the wait, up to the longest wait: a long wait costs a number of
polls that grows only with its logarithm, and the worker never busy-waits.
"""


class NextStepWait:
    """The waits of one worker between reporting a step and receiving the next one."""

    def __init__(self, shortest, longest):
        """
        :param float shortest: the shortest wait between two polls, in seconds (> 0)
        :param float longest: the longest wait between two polls, in seconds
        """
        if not 0 < shortest <= longest:
            raise ValueError(f"polling times must satisfy 0 < shortest <= longest, not {shortest} and {longest}")
        self.shortest = shortest
        self.longest = longest
        self.wait = 0.0
        #: how long an analysis is expected to run after a poll first sees it, learnt step by step
        self.analysisWait = shortest
        #: when polls first and last saw the current step's analysis running (None: not seen)
        self.analysisSeen = self.analysisLastSeen = None

    def _bounded(self, seconds):
        return min(max(seconds, self.shortest), self.longest)

    def afterReport(self, missing, jobs, stepSeconds):
        """The wait after reporting a step.

        :param int missing: results the step still needs, as submitResult answered (0: complete or over)
        :param int jobs: the calibration's number of jobs
        :param float stepSeconds: how long this worker took to process the step
        :return: seconds to wait before asking for the next step; 0 to ask at once (the step may
            already have been analysed)
        """
        self.analysisSeen = self.analysisLastSeen = None
        others = stepSeconds * min(missing, jobs) / jobs
        self.wait = 0.0 if missing == 0 else self._bounded(others + self.analysisWait)
        return self.wait

    def afterPoll(self, missing, now):
        """The wait after the service answered that the next step is not there yet.

        :param missing: results the step still needs, as getNewParameters answered (0: being
            analysed; None: not said)
        :param float now: the time of the answer (a monotonic clock, in seconds)
        :return: seconds to wait before asking again
        """
        if missing == 0 and self.analysisSeen is None:
            self.analysisSeen = now
            self.wait = self.analysisWait
        else:
            self.wait = self._bounded(2 * self.wait)
        if missing == 0:
            self.analysisLastSeen = now
        return self.wait

    def nextStep(self, now):
        """The next step has come: learn how long the analysis ran after a poll first saw it.

        :param float now: when the next step was received (the clock of ``afterPoll``)
        """
        if self.analysisSeen is not None:
            ended = (self.analysisLastSeen + now) / 2
            self.analysisWait = self._bounded(ended - self.analysisSeen)
