"""The interface of a job backend, and how the agent finds one by name.

A job backend runs, follows and kills the worker jobs the agent asks for. The agent option
``JobBackend = <Name>`` names it; the class ``<Name>JobBackend`` is loaded from the module
``CalibrationSystem.JobBackends.<Name>JobBackend`` of the installed extensions, in DIRAC's order
of priority (``ObjectLoader``, as DIRAC loads its plug-ins), so another extension can add a
backend, or replace one, without changing this package.
"""
from abc import ABC, abstractmethod

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Utilities.ObjectLoader import ObjectLoader

MODULE_PATH = "CalibrationSystem.JobBackends"


class JobBackend(ABC):
    """Submits, follows and kills worker jobs. Every method returns S_OK/S_ERROR and never raises:
    an exception would end the agent's cycle."""

    #: The name stored with every job attempt (the agent option JobBackend)
    name = ""
    #: The backend's options in the agent's CS section, with their defaults
    OPTIONS: dict = {}

    def __init__(self, options=None):
        """
        :param dict options: values of some of ``OPTIONS`` (the others take their defaults)
        :raises ValueError: on an option the backend does not know
        """
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            raise ValueError(f"Unknown {self.name} job backend options {unknown}; known: {sorted(self.OPTIONS)}")
        self.options = dict(self.OPTIONS, **options)

    @classmethod
    def fromOptions(cls, options, workDirectory):
        """The backend as the agent configures it (a backend keeping files of its own may put
        them below the agent's work directory by default).

        :param dict options: the values of ``OPTIONS`` from the agent's CS section
        :param str workDirectory: the agent's work directory
        :return: the backend
        """
        return cls(options)

    @abstractmethod
    def submit(self, job):
        """Run ``job.command`` with ``job.environment`` added, for one attempt of one worker. The
        environment holds the worker credential: only the job may be able to read it.

        :param JobDescription job: what to run, and whose job it is
        :return: S_OK(jobID), a string the backend finds the job by, or S_ERROR
        """

    @abstractmethod
    def getStatus(self, jobIDs):
        """The state of jobs.

        :param list jobIDs: job IDs returned by ``submit``
        :return: S_OK({jobID: (status, message)}), status one of Waiting, Running, Done, Failed, Killed
        """

    @abstractmethod
    def kill(self, jobIDs):
        """Kill jobs; jobs already ended are left alone.

        :param list jobIDs: job IDs returned by ``submit``
        :return: S_OK(list of the job IDs it killed) or S_ERROR
        """


def loadJobBackend(name, getOption, workDirectory):
    """The job backend called ``name``, configured from the agent's options.

    :param str name: the agent option JobBackend, e.g. 'DIRAC' or 'Local'
    :param getOption: callable(option, default) -> value, the agent's ``am_getOption``
    :param str workDirectory: the agent's work directory (a backend may keep its files there)
    :return: S_OK(JobBackend instance), or S_ERROR saying why there is no such backend or why
        its options are unusable
    """
    if not isinstance(name, str) or not name.isidentifier():
        return S_ERROR(f"JobBackend {name!r} is not a backend name (e.g. DIRAC or Local)")
    result = ObjectLoader().loadObject(f"{MODULE_PATH}.{name}JobBackend", f"{name}JobBackend")
    if not result["OK"]:
        return S_ERROR(f"Unknown JobBackend {name!r}: no class {name}JobBackend in {MODULE_PATH}.{name}JobBackend "
                       f"of the installed extensions ({result['Message']})")
    backendClass = result["Value"]
    if not (isinstance(backendClass, type) and issubclass(backendClass, JobBackend)):
        return S_ERROR(f"JobBackend {name!r}: {result.get('ModuleFile', name)} defines {name}JobBackend, "
                       "but not as a subclass of JobBackend")
    options = {key: getOption(key, default) for key, default in backendClass.OPTIONS.items()}
    try:
        return S_OK(backendClass.fromOptions(options, workDirectory))
    except ValueError as error:
        return S_ERROR(f"{name} job backend options: {error}")
