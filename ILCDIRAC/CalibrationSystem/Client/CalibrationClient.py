"""Client of the CalibrationService, and the seed's two functions.

A physicist starts a calibration with the three lines of the user guide::

    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import setConfig, createCalibration
    setConfig(digitisationAccuracy=0.02)          # optional: settings the call has no room for
    result = createCalibration('steering_file.xml', 'software_version', [gammaDir, muonDir], 100)

and later reads ``RPCClient('Calibration/Calibration').getResult(calibrationID)``.
"""
from DIRAC import S_ERROR, S_OK, gConfig
from DIRAC.Core.Base.Client import Client, createClient

from ILCDIRAC.CalibrationSystem.Client.InputFiles import discover_input_files
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError, SettingsError
from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings

SERVICE = "Calibration/Calibration"
MAX_STEERING_FILE_SIZE = 5 * 1024 * 1024

#: What setConfig has been given: calibration settings, and events per file of LCIO samples.
_config = {"settings": {}, "numberOfEventsPerFile": {}}


@createClient(SERVICE)
class CalibrationClient(Client):
    """RPC access to Calibration/Calibration; every ``export_`` method is a method here."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.setServer(SERVICE)


def setConfig(numberOfEventsPerFile=None, **settings):
    """Set what ``createCalibration`` has no argument for; each call adds to the previous ones.

    :param dict numberOfEventsPerFile: {sample type: events per file} for LCIO samples
        (synthetic samples of the built-in detector model say it themselves)
    :param settings: calibration settings, e.g. ``digitisationAccuracy=0.02``
    :return: S_OK(the complete settings that a calibration created now would use) or S_ERROR
    """
    merged = dict(_config["settings"], **settings)
    try:
        complete = validate_settings(merged)
    except SettingsError as error:
        return S_ERROR(str(error))
    if numberOfEventsPerFile is not None:
        if not isinstance(numberOfEventsPerFile, dict):
            return S_ERROR("numberOfEventsPerFile must be a dict {sample type: events per file}")
        _config["numberOfEventsPerFile"].update(numberOfEventsPerFile)
    _config["settings"] = merged
    return S_OK(complete)


def createCalibration(steeringFile, softwareVersion, inputFiles, numberOfJobs):
    """Start a calibration (the seed's call).

    :param str steeringFile: path of the Marlin steering file holding the initial constants
    :param str softwareVersion: the iLCSoft release the workers run
    :param list inputFiles: sample directories; their paths name the particle (gamma, mu-, kaon0L, zuds)
    :param int numberOfJobs: how many worker jobs to start
    :return: S_OK(calibrationID) or S_ERROR saying what is wrong
    """
    initializeDIRAC()
    if not isinstance(steeringFile, str):
        return S_ERROR(f"steeringFile must be the path of a steering file, not {type(steeringFile).__name__}")
    try:
        with open(steeringFile, "rb") as stream:
            steering = stream.read(MAX_STEERING_FILE_SIZE + 1)
    except OSError as error:
        return S_ERROR(f"Cannot read the steering file {steeringFile!r}: {error.strerror}")
    if len(steering) > MAX_STEERING_FILE_SIZE:
        return S_ERROR(f"The steering file {steeringFile!r} is larger than {MAX_STEERING_FILE_SIZE} bytes")
    try:
        files, counts = discover_input_files(inputFiles, _config["numberOfEventsPerFile"])
    except ProcedureError as error:
        return S_ERROR(f"Calibration not created: {error}")
    return CalibrationClient().createCalibration(
        files, counts, dict(_config["settings"]), steering.decode(errors="surrogateescape"), softwareVersion,
        numberOfJobs,
    )


def initializeDIRAC():
    """Load the local DIRAC configuration if no script or program has done it yet.

    The seed's snippet is plain Python with no ``DIRAC.initialize()``; without it no service
    URL would be known.
    """
    if not gConfig.getOption(f"/Systems/{SERVICE.split('/')[0]}/URLs/{SERVICE.split('/')[1]}")["OK"]:
        import DIRAC

        DIRAC.initialize(require_auth=False)
