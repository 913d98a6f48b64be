"""What the agent asks a job backend to run for one worker attempt."""
from dataclasses import asdict, dataclass, field

JOB_NAME_PREFIX = "PandoraCaloCalibration"


@dataclass(frozen=True)
class JobDescription:
    """One worker job: whose it is, which calibration and worker, what to run."""

    calibrationID: int
    workerID: int
    attemptID: int
    owner: str
    ownerGroup: str
    ownerDN: str
    command: list
    environment: dict = field(default_factory=dict)
    inputData: tuple = ()  # the worker's input files, for a backend that stages them (grid LFNs)

    @property
    def name(self):
        """The job name, as in iLCDirac: calibration and worker can be read back from it."""
        return f"{JOB_NAME_PREFIX}_calid_{self.calibrationID}_workerid_{self.workerID}_attempt_{self.attemptID}"

    @property
    def group(self):
        """The job group shared by all jobs of a calibration."""
        return f"{JOB_NAME_PREFIX}_calid_{self.calibrationID}"

    def asDict(self):
        """The description as a JSON-able dict, with the job's name and group.

        :return: dict of every field plus 'name' and 'group'
        """
        return dict(asdict(self), name=self.name, group=self.group)
