"""Client of the CalibrationService, and the seed's two functions.

A physicist starts a calibration with the three lines of the user guide::

    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import setConfig, createCalibration
    setConfig(digitisationAccuracy=0.02)          # optional: settings the call has no room for
    result = createCalibration('steering_file.xml', 'software_version', [gammaDir, muonDir], 100)

and later reads ``RPCClient('Calibration/Calibration').getResult(calibrationID)``. A calibration
that failed or was killed goes on from a completed step with ``resumeCalibration(calibrationID,
nMaxIterationsPerPhase=50)``.
"""
import os

from DIRAC import S_ERROR, S_OK, gConfig, gLogger
from DIRAC.Core.Base.Client import Client, createClient

from ILCDIRAC.CalibrationSystem.Client.InputFiles import discover_input_files
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError, SettingsError
from ILCDIRAC.CalibrationSystem.Procedure.pandora_settings import MAX_SETTINGS_BYTES, PACKAGE_TRAINING_SETTINGS
from ILCDIRAC.CalibrationSystem.Procedure.creation import check_output
from ILCDIRAC.CalibrationSystem.Procedure.settings import check_setting_names, create_settings, validate_settings

SERVICE = "Calibration/Calibration"
MAX_STEERING_FILE_SIZE = 5 * 1024 * 1024

#: What setConfig has been given: calibration settings, where the results go (outputPath,
#: outputSE), events per file of LCIO samples, and the photon-training PandoraSettings file
#: (None: the one beside the steering file).
_config = {"settings": {}, "output": {}, "numberOfEventsPerFile": {}, "photonTrainingSettingsFile": None}


#: Keys of a settings dict that describe the jobs rather than the procedure.
JOB_KEYS = ("numberOfJobs", "steeringFile", "softwareVersion", "outputPath", "outputSE")
#: Key of a settings dict (and setConfig keyword) naming the local photon-training PandoraSettings
#: file; its content is sent with the job, so it is no calibration setting.
TRAINING_SETTINGS_KEY = "photonTrainingSettingsFile"
#: The job keys setConfig takes; createCalibration has arguments for the others.
OUTPUT_KEYS = ("outputPath", "outputSE")


def createCalibrationSettings(preset="CLIC"):
    """A complete settings dict for a detector preset, to adjust and pass to
    ``CalibrationClient().createCalibration``; 'steeringFile' and 'softwareVersion' must be set.

    :param str preset: 'CLIC' (default) or 'CLD'
    :return: dict of all calibration settings plus the job keys numberOfJobs (100),
        steeringFile and softwareVersion (both None); raises SettingsError for an unknown preset
    """
    settings = create_settings(preset)
    settings.update(numberOfJobs=100, steeringFile=None, softwareVersion=None)
    return settings


@createClient(SERVICE)
class CalibrationClient(Client):
    """RPC access to Calibration/Calibration; every ``export_`` method is a method here."""

    def __init__(self, **kwargs):
        """Talk to Calibration/Calibration.

        :param kwargs: passed to DIRAC's ``Client`` (e.g. ``proxyLocation``, ``useCertificates``, ``timeout``)
        """
        super().__init__(**kwargs)
        self.setServer(SERVICE)

    def createCalibration(self, inputFiles, numberOfEventsPerFile, settings):
        """Create a calibration from explicit input files and a settings dict.

        :param dict inputFiles: {sample type: [file, ...]} for 'gamma', 'muon', 'kaon', 'zuds'
        :param dict numberOfEventsPerFile: {sample type: events in each file}
        :param dict settings: e.g. from createCalibrationSettings(); besides the calibration
            settings it holds numberOfJobs, steeringFile (a local path), softwareVersion and
            optionally outputPath and outputSE (where the results are copied at the end) and
            photonTrainingSettingsFile (a local path; default: CalibrationPandoraSettings/
            PandoraSettingsPhotonTraining.xml beside the steering file, sent when it exists)
        :return: S_OK(calibrationID), with key 'Notes' saying what the service did to the steering
            file (each note is also logged), or S_ERROR saying what is wrong
        """
        if not isinstance(settings, dict):
            return S_ERROR(f"settings must be a dict, not {type(settings).__name__}")
        try:
            check_setting_names(settings, (*JOB_KEYS, TRAINING_SETTINGS_KEY))
        except SettingsError as error:
            return S_ERROR(f"Calibration not created: {error}")
        procedure = {key: value for key, value in settings.items() if key not in (*JOB_KEYS, TRAINING_SETTINGS_KEY)}
        job = {key: settings[key] for key in JOB_KEYS if settings.get(key) is not None}
        steering = _readLocalFile(settings.get("steeringFile"), "steeringFile", "the steering file",
                                  MAX_STEERING_FILE_SIZE)
        if not steering["OK"]:
            return steering
        job["steeringFile"] = steering["Value"]
        training = _readTrainingSettings(settings.get(TRAINING_SETTINGS_KEY), settings["steeringFile"])
        if not training["OK"]:
            return training
        if training["Value"] is not None:
            job["photonTrainingSettings"] = training["Value"]
        result = self.executeRPC(inputFiles, numberOfEventsPerFile, procedure, job, call="createCalibration")
        for note in result.get("Notes", []) if result["OK"] else []:
            gLogger.notice(f"Calibration {result['Value']}:", note)
        return result


def isLFN(path):
    """Whether ``path`` is written as the reference system's users name grid files: ``LFN:/vo/...``.

    :param path: a path given by the user
    :return: bool
    """
    return isinstance(path, str) and path.strip().upper().startswith("LFN:")


def _readLocalFile(path, key, what, limit):
    """S_OK(text of a local file) or S_ERROR saying why it cannot be used."""
    if not isinstance(path, str):
        return S_ERROR(f"{key} must be the path of {what}, not {type(path).__name__}")
    if isLFN(path):
        lfn = path.strip()[len("LFN:"):]
        return S_ERROR(
            f"{key} {path!r} is a grid file: its content is sent with the request, so it must be a local file. "
            f"Fetch it first (dirac-dms-get-file {lfn}) and give the local copy as {key}"
        )
    try:
        with open(path, "rb") as stream:
            content = stream.read(limit + 1)
    except OSError as error:
        return S_ERROR(f"Cannot read {what} {path!r}: {error.strerror}")
    if len(content) > limit:
        return S_ERROR(f"{what[0].upper()}{what[1:]} {path!r} is larger than {limit} bytes")
    return S_OK(content.decode(errors="surrogateescape"))


def _readTrainingSettings(path, steeringFile):
    """S_OK(text of the photon-training PandoraSettings) from ``path``, or else from beside the
    steering file if it is there (S_OK(None) if not: the service says whether the calibration needs it)."""
    if path is None:
        path = os.path.join(os.path.dirname(steeringFile), PACKAGE_TRAINING_SETTINGS)
        if not os.path.isfile(path):
            return S_OK(None)
    return _readLocalFile(path, TRAINING_SETTINGS_KEY, "the photon-training PandoraSettings file", MAX_SETTINGS_BYTES)


def setConfig(numberOfEventsPerFile=None, photonTrainingSettingsFile=None, outputPath=None, outputSE=None,
              **settings):
    """Set what ``createCalibration`` has no argument for; each call adds to the previous ones.

    :param dict numberOfEventsPerFile: {sample type: events per file} for LCIO samples
        (synthetic samples of the built-in detector model say it themselves)
    :param str photonTrainingSettingsFile: the PandoraSettings of the photon training (stage 2),
        if not CalibrationPandoraSettings/PandoraSettingsPhotonTraining.xml beside the steering file
    :param str outputPath: absolute directory (local deployment) or LFN directory (grid) where the
        agent copies the results of the finished calibration
    :param str outputSE: the storage element of an LFN outputPath
    :param settings: calibration settings, e.g. ``digitisationAccuracy=0.02``
    :return: S_OK(the complete settings that a calibration created now would use) or S_ERROR
    """
    merged = dict(_config["settings"], **settings)
    given = {key: value for key, value in (("outputPath", outputPath), ("outputSE", outputSE)) if value is not None}
    output = dict(_config["output"], **given)
    try:
        check_setting_names(settings, OUTPUT_KEYS)
        complete = validate_settings(merged)
        check_output(output.get("outputPath", ""), output.get("outputSE", ""))
    except SettingsError as error:
        return S_ERROR(_setConfigHint(str(error), settings))
    if numberOfEventsPerFile is not None and not isinstance(numberOfEventsPerFile, dict):
        return S_ERROR("numberOfEventsPerFile must be a dict {sample type: events per file}")
    if photonTrainingSettingsFile is not None and (
        not isinstance(photonTrainingSettingsFile, str) or not photonTrainingSettingsFile.strip()
    ):
        return S_ERROR("photonTrainingSettingsFile must be the path of a PandoraSettingsPhotonTraining.xml")
    if numberOfEventsPerFile is not None:
        _config["numberOfEventsPerFile"].update(numberOfEventsPerFile)
    if photonTrainingSettingsFile is not None:
        _config["photonTrainingSettingsFile"] = os.path.abspath(os.path.expanduser(photonTrainingSettingsFile))
    _config["settings"], _config["output"] = merged, output
    return S_OK(complete)


def _setConfigHint(message, settings):
    """The refusal of setConfig, saying where a job key it does not take belongs."""
    passed = sorted(set(settings) & {"steeringFile", "softwareVersion", "numberOfJobs"})
    if passed:
        return f"{passed[0]} is an argument of createCalibration, not a setting of setConfig"
    return message


def createCalibration(steeringFile, softwareVersion, inputFiles, numberOfJobs):
    """Start a calibration (the seed's call).

    :param str steeringFile: path of the Marlin steering file holding the initial constants
    :param str softwareVersion: the iLCSoft release the workers run
    :param list inputFiles: sample directories; their paths name the particle (gamma, mu-, kaon0L, zuds)
    :param int numberOfJobs: how many worker jobs to start
    :return: S_OK(calibrationID) or S_ERROR saying what is wrong
    """
    initializeDIRAC()
    if not serviceConfigured():
        return S_ERROR(NO_SERVICE_MESSAGE)
    try:
        files, counts = discover_input_files(inputFiles, _config["numberOfEventsPerFile"])
    except ProcedureError as error:
        return S_ERROR(f"Calibration not created: {error}")
    settings = dict(_config["settings"], **_config["output"], steeringFile=steeringFile,
                    softwareVersion=softwareVersion,
                    numberOfJobs=numberOfJobs, photonTrainingSettingsFile=_config["photonTrainingSettingsFile"])
    return CalibrationClient().createCalibration(files, counts, settings)


def resumeCalibration(calibrationID, fromStep=None, **changedSettings):
    """Resume a failed or killed calibration from one of its completed steps, as a new calibration
    that keeps the origin's history and input files; the origin stays as it was.

    :param int calibrationID: the failed or killed calibration
    :param int fromStep: the completed step to run again first (default: the last completed one)
    :param changedSettings: settings to change, e.g. ``nMaxIterationsPerPhase=50``,
        ``digitisationAccuracy=0.02``, ``numberOfJobs=20``, ``outputPath='/data/calib'``; the
        detector and steering settings cannot change
    :return: S_OK(ID of the new calibration) or S_ERROR saying why it was not resumed
    """
    initializeDIRAC()
    result = CalibrationClient().resumeCalibration(calibrationID, fromStep, changedSettings)
    for note in result.get("Notes", []) if result["OK"] else []:
        gLogger.notice(f"Calibration {result['Value']}:", note)
    return result


def initializeDIRAC():
    """Load the local DIRAC configuration if no script or program has done it yet.

    The seed's snippet is plain Python with no ``DIRAC.initialize()``; without it no service
    URL would be known.
    """
    if not serviceConfigured():
        import DIRAC

        DIRAC.initialize(require_auth=False)


def serviceConfigured():
    """Whether the DIRAC configuration loaded knows where the CalibrationService is.

    :return: bool
    """
    system, service = SERVICE.split("/")
    return gConfig.getOption(f"/Systems/{system}/URLs/{service}")["OK"]


#: What to do when the configuration does not know the CalibrationService (instead of DIRAC's
#: bare "URL for service Calibration/Calibration not found").
NO_SERVICE_MESSAGE = (
    f"The DIRAC configuration loaded does not know the CalibrationService (no URL for service {SERVICE}). "
    "On the local stack, source its env.sh first (source <workdir>/env.sh; dirac-calibration-local-stack "
    "start --workdir <workdir> starts it and names the file). On the grid, use an iLCDirac client installation "
    "configured with the Calibration system (dirac-configure) and a proxy (dirac-proxy-init -g ilc_user)."
)
