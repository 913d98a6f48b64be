"""When a worker that has reported a step asks the service again for the next one.

Every poll costs a TLS handshake on both sides (DISET opens a connection per call) and, in the
service, time under the GIL that the step's analysis also needs; and a worker that asks too late
delays the whole next step, which needs its result. So a worker asks when the next constants are
likely to be there, not at a fixed rhythm. Two things stand between a reported step and the
next: the results the step still misses from the other workers, and the service's analysis of
the step, which the service runs in the background once the result completing the step is
stored. The service's answers say how many results are missing (``ResultsMissing`` of
submitResult, ``resultsMissing`` of a getNewParameters that says "not yet") and, when the
process answering has analysed steps of the calibration before, how long the analysis takes:

- when the worker's own result completed the step, the analysis has just begun: it waits as long
  as the phase's last analysis took (``AnalysisSeconds``), or asks at once when that is unknown;
- while results are missing, the others are still reconstructing slices like this worker's,
  which they started about when it did: their results are expected within a share of its own
  step time, the larger the more of them are missing, and the analysis follows
  (``AnalysisSeconds`` of submitResult: as long as the last one of the phase);
- once none is missing, the step is being analysed: the service says when it expects the
  analysis to end (``nextStepIn``) when it knows; otherwise, or once that time has passed, the
  analysis is expected to end soon.

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
        #: an analysis of unknown length, or running longer than the service expected, was seen
        self.overdue = False

    def _bounded(self, seconds):
        return min(max(seconds, self.shortest), self.longest)

    def afterReport(self, missing, jobs, stepSeconds, analysisSeconds=None):
        """The wait after reporting a step.

        :param missing: results the step still needs, as submitResult answered (0: complete or
            over; None: the service could not count them)
        :param int jobs: the calibration's number of jobs
        :param float stepSeconds: how long this worker took to process the step
        :param analysisSeconds: how long the service expects the step's analysis to take, as
            submitResult answered (None: not known)
        :return: seconds to wait before asking for the next step; 0 to ask at once (a complete
            step whose analysis time is unknown, or a step already over)
        """
        self.overdue = False
        if missing == 0:
            self.wait = self._bounded(analysisSeconds) if analysisSeconds else 0.0
        elif missing is None:
            self.wait = self.shortest
        else:
            self.wait = self._bounded(stepSeconds * min(missing, jobs) / jobs + (analysisSeconds or 0.0))
        return self.wait

    def afterPoll(self, missing, nextStepIn=None):
        """The wait after the service answered that the next step is not there yet.

        :param missing: results the step still needs, as getNewParameters answered (0: being
            analysed; None: not said)
        :param nextStepIn: seconds until the service expects the analysis to end (0: it runs
            longer than expected; None: not known)
        :return: seconds to wait before asking again
        """
        if missing == 0 and nextStepIn:
            self.wait = self._bounded(nextStepIn)
            self.overdue = False
        elif missing == 0 and not self.overdue:
            self.wait = self.shortest
            self.overdue = True
        else:
            self.wait = self._bounded(2 * self.wait)
        return self.wait
