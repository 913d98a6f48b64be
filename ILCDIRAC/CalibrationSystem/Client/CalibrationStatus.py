"""The statuses of a calibration and of its workers' job attempts, and the moves allowed between them.

Defined once, as DIRAC's ``JobStatus`` defines a job's: the CalibrationDB writes a status only
along an allowed transition (so a late or repeated update cannot revive an ended calibration or
turn a finished job into a killed one), and the service, the agent, the job backends and the
procedure use these names. Plain constants, without DIRAC, so that the pure procedure code can
name the outcome of a step.
"""

#: A calibration whose steps are being run.
RUNNING = "Running"
#: Every phase converged: the final constants are its result.
FINISHED = "Finished"
#: Physics ended it (a fit that failed, a phase that did not converge within the iteration cap) or
#: its jobs failed too often; it keeps the constants it had reached.
FAILED = "Failed"
#: Its owner or an administrator stopped it.
KILLED = "Killed"

CALIBRATION_STATUSES = (RUNNING, FINISHED, FAILED, KILLED)
ENDED_STATUSES = (FINISHED, FAILED, KILLED)
#: {status: the statuses a calibration in it may move to}; an ended calibration never moves again.
CALIBRATION_TRANSITIONS = {RUNNING: ENDED_STATUSES, FINISHED: (), FAILED: (), KILLED: ()}

#: Recorded by the agent before the job is submitted, so that a crash in between is noticed.
ATTEMPT_SUBMITTING = "Submitting"
#: The statuses a job backend reports (``getStatus``).
ATTEMPT_WAITING = "Waiting"
ATTEMPT_RUNNING = "Running"
ATTEMPT_DONE = "Done"
ATTEMPT_FAILED = "Failed"
ATTEMPT_KILLED = "Killed"
#: Given by the agent to an attempt left in Submitting by an interrupted cycle: its job is unknown.
ATTEMPT_LOST = "Lost"

ATTEMPT_STATUSES = (ATTEMPT_SUBMITTING, ATTEMPT_WAITING, ATTEMPT_RUNNING, ATTEMPT_DONE, ATTEMPT_FAILED,
                    ATTEMPT_KILLED, ATTEMPT_LOST)
BACKEND_STATUSES = (ATTEMPT_WAITING, ATTEMPT_RUNNING, ATTEMPT_DONE, ATTEMPT_FAILED, ATTEMPT_KILLED)
#: The attempt's job has ended: its worker is gone.
FINAL_ATTEMPT_STATUSES = (ATTEMPT_DONE, ATTEMPT_FAILED, ATTEMPT_KILLED, ATTEMPT_LOST)
#: The attempt's job ended without its worker seeing the end of the calibration.
FAILED_ATTEMPT_STATUSES = (ATTEMPT_FAILED, ATTEMPT_KILLED, ATTEMPT_LOST)
#: {status: the statuses an attempt in it may move to}. A grid job can go back to Waiting when
#: the WMS reschedules it; an ended job never changes again.
ATTEMPT_TRANSITIONS = {
    ATTEMPT_SUBMITTING: (ATTEMPT_WAITING, ATTEMPT_FAILED, ATTEMPT_LOST),
    ATTEMPT_WAITING: (ATTEMPT_RUNNING, ATTEMPT_DONE, ATTEMPT_FAILED, ATTEMPT_KILLED),
    ATTEMPT_RUNNING: (ATTEMPT_WAITING, ATTEMPT_DONE, ATTEMPT_FAILED, ATTEMPT_KILLED),
    **{status: () for status in FINAL_ATTEMPT_STATUSES},
}


def sourcesOf(status, transitions):
    """The statuses from which ``status`` may be reached: where a conditional update may start.

    :param str status: the status to move to
    :param dict transitions: CALIBRATION_TRANSITIONS or ATTEMPT_TRANSITIONS
    :return: tuple of statuses (empty if none leads there)
    """
    return tuple(source for source, targets in transitions.items() if status in targets)
