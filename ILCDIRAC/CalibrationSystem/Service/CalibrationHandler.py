"""CalibrationService (Calibration/Calibration): the DISET front of the CalibrationSystem.

As DIRAC's own services, the handler is a mixin with the ``export_`` methods
(``CalibrationHandlerMixin``) and the DISET handler on it (``CalibrationHandler``); where DIRAC's
Tornado (its own tornado fork) is installed, an HTTPS handler is one class away, in a module of
its own as DIRAC does it: ``class TornadoCalibrationHandler(CalibrationHandlerMixin, TornadoService)``.

Each method checks its arguments and the caller (``CalibrationPolicy``), then makes one call into
the pure procedure code and the CalibrationDB. The handler keeps no state of its own: everything
is in the DB, so a restart of the service loses nothing. A result that completes a step is stored
and answered at once; the step is analysed in the background (``private/StepAdvancement``), and
the agent's cycle analyses any complete step left over. Refusals carry the CalibrationSystem's
error codes (``ILCDIRAC.Core.Utilities.DErrno``), which a worker reads with ``isRefusal``.
"""
import datetime

from DIRAC import S_ERROR, S_OK, gConfig, gLogger
from DIRAC.ConfigurationSystem.Client.PathFinder import getAgentSection
from DIRAC.Core.DISET.RequestHandler import RequestHandler
from DIRAC.Core.Security import Locations, Properties

from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import FINISHED, KILLED, RUNNING
from ILCDIRAC.CalibrationSystem.DB.CalibrationDB import CalibrationDB
from ILCDIRAC.CalibrationSystem.Procedure.advance import ARTIFACT_FILES, results_needed
from ILCDIRAC.CalibrationSystem.Procedure.creation import check_output, plan_calibration
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.summary import decode_summary
from ILCDIRAC.CalibrationSystem.Service.AnalysisClock import AnalysisClock
from ILCDIRAC.CalibrationSystem.Service.CalibrationPolicy import CalibrationPolicy, isInteger
from ILCDIRAC.CalibrationSystem.Utilities.CalibrationResults import (
    DEFAULT_RETENTION_MINUTES,
    STEERING_FILE_INPUT,
    collectResult,
)
from ILCDIRAC.CalibrationSystem.Utilities.WorkerCredential import credentialHash, loadKey, matches, workerCredential
from ILCDIRAC.CalibrationSystem.private.StepAdvancement import StepAdvancer, maxResultSize
from ILCDIRAC.Core.Utilities.DErrno import ECALNOTREADY, ECALREQUEST, ECALSTATE

_INT = (int,)
AGENT = "Calibration/CalibrationAgent"
#: Job keys holding a file's text, which the transport carries as str; the domain code takes bytes.
_FILE_JOB_KEYS = ("steeringFile", "photonTrainingSettings")


def _idList(calibrationIDs):
    if not isinstance(calibrationIDs, (list, tuple)) or not all(isInteger(c) for c in calibrationIDs):
        return None
    return list(dict.fromkeys(calibrationIDs))


class CalibrationHandlerMixin:
    """Creates calibrations, serves constants and event slices to workers, collects results."""

    @classmethod
    def initializeHandler(cls, serviceInfoDict):
        """Once, when the service starts: connect to the CalibrationDB (creating missing tables), read
        the service options (MaxResultSize, AdvanceOnLastResult, WorkerCredentialKeyFile) and start
        the background step analysis, which first looks at every running calibration once.

        :param dict serviceInfoDict: DIRAC's description of the service
        :return: S_OK, or S_ERROR if the DB or the worker credential secret cannot be used
        """
        cls.log = gLogger.getSubLogger("CalibrationHandler")
        try:
            cls.calibrationDB = CalibrationDB(parentLogger=cls.log)
        except RuntimeError as error:
            return S_ERROR(f"Cannot use the CalibrationDB: {error}")
        cls.maxResultSize = maxResultSize()
        cls.analysisClock = AnalysisClock()
        keyFile = cls.srv_getCSOption("WorkerCredentialKeyFile", "") or Locations.getHostCertificateAndKeyLocation()[1]
        try:
            cls.credentialKey = loadKey(keyFile)
        except (OSError, ValueError, TypeError) as error:
            return S_ERROR(f"Cannot read the worker credential secret (WorkerCredentialKeyFile {keyFile}): {error}")
        cls.stepAdvancer = None
        if cls.srv_getCSOption("AdvanceOnLastResult", True):
            cls.stepAdvancer = StepAdvancer(cls.calibrationDB, cls.maxResultSize, cls.log, cls.analysisClock)
            running = cls.calibrationDB.getCalibrations(statuses=[RUNNING])
            for calibration in running["Value"] if running["OK"] else []:
                cls.stepAdvancer.trigger(calibration["CalibrationID"])
        return S_OK()

    def _policy(self):
        return CalibrationPolicy(self.getRemoteCredentials())

    @staticmethod
    def _parameterSet(calibration):
        return {
            "currentStage": calibration["Stage"],
            "currentPhase": calibration["Phase"],
            "currentStep": calibration["Step"],
            "parameters": calibration["Parameters"],
            "calibrationIsFinished": calibration["Status"] != RUNNING,
            "calibrationStatus": calibration["Status"],
            "statusMessage": calibration["StatusMessage"],
        }

    def _forEach(self, calibrationIDs, action):
        """Apply ``action(calibrationID) -> S_OK/S_ERROR`` to a list of IDs: S_OK({str(id): message}).

        Keys are strings: DISET's JSON encoding would turn integer keys into strings anyway.
        """
        ids = _idList(calibrationIDs)
        if ids is None:
            return S_ERROR(ECALREQUEST, f"Expected a list of calibration IDs, not {calibrationIDs!r}")
        report = {}
        for calibrationID in ids:
            result = action(calibrationID)
            report[str(calibrationID)] = result["Value"] if result["OK"] else f"Error: {result['Message']}"
        return S_OK(report)

    # ------------------------------------------------------------------ users

    # Checked by plan_calibration, whose messages say more than DISET's type mismatch
    types_createCalibration = [None, None, None, None]

    def export_createCalibration(self, inputFiles, numberOfEventsPerFile, settings, job):
        """Create a calibration; its jobs are submitted by the CalibrationAgent.

        :param dict inputFiles: {sample type: [file, ...]} for 'gamma', 'muon', 'kaon', 'zuds'
        :param dict numberOfEventsPerFile: {sample type: events in each file of that sample}
        :param dict settings: calibration settings (missing ones take their defaults)
        :param dict job: 'steeringFile' (the Marlin steering file's XML text, with the initial
            constants), 'softwareVersion' (the iLCSoft release), 'numberOfJobs', and optionally
            'photonTrainingSettings' (the text of the PandoraSettings of the photon training, needed
            when stage 2 runs), 'outputPath' and 'outputSE' (where the agent copies the results)
        :return: S_OK(calibrationID), with key 'Notes': what was done to the steering file (e.g.
            the PfoAnalysis processor added), also kept in the calibration's event log
        """
        policy = self._policy()
        allowed = policy.mayCreate()
        if not allowed["OK"]:
            return allowed
        if isinstance(job, dict):
            job = {key: value.encode(errors="surrogateescape") if key in _FILE_JOB_KEYS and isinstance(value, str)
                   else value for key, value in job.items()}
        try:
            plan = plan_calibration(inputFiles, numberOfEventsPerFile, settings, job)
        except ProcedureError as error:
            return S_ERROR(ECALREQUEST, f"Calibration not created: {error}")
        result = self.calibrationDB.createCalibration(
            policy.owner,
            {
                "Settings": plan.settings,
                "InputFiles": plan.input_files,
                "EventsPerFile": plan.events_per_file,
                "SteeringFile": plan.steering_file,
                "Files": {STEERING_FILE_INPUT: plan.input_steering_file}
                if plan.input_steering_file != plan.steering_file
                else {},
                "Notes": list(plan.notes),
                "PhotonTrainingSettings": plan.photon_training_settings,
                "SoftwareVersion": plan.software_version,
                "NumberOfJobs": plan.number_of_jobs,
                "OutputPath": plan.output_path,
                "OutputSE": plan.output_se,
            },
            plan.worker_input_data,
            plan.parameters,
            plan.position,
            lambda calibrationID, created: credentialHash(workerCredential(self.credentialKey, calibrationID, created)),
        )
        if result["OK"]:
            self.log.info("Calibration created",
                          f"{result['Value']} by {policy.owner['Owner']} ({plan.number_of_jobs} jobs)")
            result["Notes"] = list(plan.notes)
        return result

    types_getUserCalibrationStatuses = []

    def export_getUserCalibrationStatuses(self):
        """The caller's calibrations: status, position, progress of the current step, jobs.

        :return: S_OK(list of dicts, one per calibration, oldest first), with
            'percentageOfFinishedJobs' the share of the jobs that reported the current step and
            'fractionOfFinishedJobsNeededToStartNextStep' the share it needs (both in %)
        """
        owner = self._policy().owner
        result = self.calibrationDB.getCalibrations(owner=owner["Owner"], ownerGroup=owner["OwnerGroup"])
        if not result["OK"]:
            return result
        retention = datetime.timedelta(minutes=self._retentionMinutes())
        now = datetime.datetime.utcnow()
        statuses = []
        for calibration in result["Value"]:
            calibrationID = calibration["CalibrationID"]
            counted = self.calibrationDB.countResults(calibrationID, calibration["Step"])
            jobs = self.calibrationDB.countJobStatuses(calibrationID)
            for answer in (counted, jobs):
                if not answer["OK"]:
                    return answer
            total = calibration["NumberOfJobs"]
            status = {
                "calibrationID": calibrationID,
                "status": calibration["Status"],
                "statusMessage": calibration["StatusMessage"],
                "currentStage": calibration["Stage"],
                "currentPhase": calibration["Phase"],
                "currentStep": calibration["Step"],
                "numberOfJobs": total,
                "jobs": jobs["Value"],
                "resultsInCurrentStep": counted["Value"],
                "resultsNeeded": results_needed(total, calibration["Settings"]),
                "percentageOfFinishedJobs": 100.0 * counted["Value"] / total,
                "fractionOfFinishedJobsNeededToStartNextStep": 100.0
                * calibration["Settings"]["fractionOfFinishedJobsNeededToStartNextStep"],
                "creationTime": calibration["CreationTime"],
                "endTime": calibration["EndTime"],
                "outputPath": calibration["OutputPath"],
                "outputSE": calibration["OutputSE"],
                "resultsCopied": bool(calibration["ResultsCopied"]),
            }
            if calibration["EndTime"] and calibration["ResultsCopied"]:
                left = calibration["EndTime"] + retention - now
                status["timeLeftBeforeOutputWillBeDeleted"] = max(left.total_seconds(), 0.0)
            statuses.append(status)
        return S_OK(statuses)

    @staticmethod
    def _retentionMinutes():
        return gConfig.getValue(
            f"{getAgentSection(AGENT)}/TimeToKeepCalibrationResultsInMinutes", DEFAULT_RETENTION_MINUTES
        )

    types_getResult = [_INT]

    def export_getResult(self, calibrationID):
        """The outcome of a finished calibration.

        :param int calibrationID: the calibration
        :return: S_OK({'calibrationID', 'status', 'parameters' (final constants), 'uncertainties'
            (statistical uncertainty of each measured constant, in its shape), 'statisticsLimited'
            (notes of the phases whose statistics could not reach their accuracy),
            'steeringFile' (the user's steering file with the final constants),
            'steeringFileInput' (as given), 'settings', 'history' (constants and metrics of
            every step), 'events' (the event log), 'files' ({name: content}: the plots of every
            step, convergence.png and, after the photon training, newPandoraLikelihoodData.xml)});
            S_ERROR while it is not
            finished, or if it failed or was killed, saying why: then its key 'Result' holds the
            same dict with the constants it had reached
        """
        result = self._policy().calibration(self.calibrationDB, calibrationID)
        if not result["OK"]:
            return result
        calibration = result["Value"]
        collected = collectResult(self.calibrationDB, calibration) if calibration["Status"] != RUNNING else None
        if calibration["Status"] == FINISHED:
            return collected
        where = f"stage {calibration['Stage']}, phase {calibration['Phase']}, step {calibration['Step']}"
        refusal = S_ERROR(
            ECALSTATE,
            f"Calibration {calibrationID} has no result: it is {calibration['Status']} ({where})"
            + (f": {calibration['StatusMessage']}" if calibration["StatusMessage"] else "")
        )
        if collected and collected["OK"]:
            refusal["Result"] = collected["Value"]
        return refusal

    types_killCalibration = [_INT, str]

    def export_killCalibration(self, calibrationID, reason):
        """Stop a running calibration; the agent kills its jobs.

        :param int calibrationID: the calibration
        :param str reason: why, kept as the calibration's status message
        :return: S_OK(message) or S_ERROR if it does not exist or has already ended
        """
        policy = self._policy()
        result = policy.calibration(self.calibrationDB, calibrationID)
        if not result["OK"]:
            return result
        message = f"Killed by {policy.owner['Owner'] or policy.owner['OwnerDN']}: {reason or 'no reason given'}"
        changed = self.calibrationDB.setStatus(calibrationID, KILLED, message, "service")
        if not changed["OK"]:
            return changed
        if not changed["Value"]:
            return S_ERROR(ECALSTATE, f"Calibration {calibrationID} has already ended ({result['Value']['Status']})")
        return S_OK(f"Calibration {calibrationID} killed; its jobs are being killed")

    types_killCalibrations = [list, str]

    def export_killCalibrations(self, calibrationIDs, reason):
        """Kill several calibrations (see ``export_killCalibration``).

        :param list calibrationIDs: the calibrations
        :param str reason: why, kept as their status message
        :return: S_OK({str(calibrationID): message or 'Error: ...'})
        """
        return self._forEach(calibrationIDs, lambda calibrationID: self.export_killCalibration(calibrationID, reason))

    types_cleanCalibration = [_INT]

    def export_cleanCalibration(self, calibrationID):
        """Delete an ended calibration with everything it stored (results included).

        :param int calibrationID: the calibration
        :return: S_OK(message) or S_ERROR if it does not exist or is still running
        """
        result = self._policy().calibration(self.calibrationDB, calibrationID)
        if not result["OK"]:
            return result
        deleted = self.calibrationDB.deleteCalibration(calibrationID)
        if not deleted["OK"]:
            return deleted
        if not deleted["Value"]:
            return S_ERROR(ECALSTATE, f"Calibration {calibrationID} is still running: kill it before cleaning it")
        return S_OK(f"Calibration {calibrationID} deleted")

    types_cleanCalibrations = [list]

    def export_cleanCalibrations(self, calibrationIDs):
        """Clean several calibrations (see ``export_cleanCalibration``).

        :param list calibrationIDs: the calibrations
        :return: S_OK({str(calibrationID): message or 'Error: ...'})
        """
        return self._forEach(calibrationIDs, self.export_cleanCalibration)

    types_changeDirectoryToCopyTo = [_INT, str, str]

    def export_changeDirectoryToCopyTo(self, calibrationID, newPath, newSE):
        """Change where the agent copies the calibration's results (copied again if already done).

        :param int calibrationID: the calibration
        :param str newPath: absolute directory (local deployment) or LFN directory (grid)
        :param str newSE: storage element for the grid ('' locally)
        :return: S_OK(message saying where the results will go), or S_ERROR for a path that cannot be used
        """
        result = self._policy().calibration(self.calibrationDB, calibrationID)
        if not result["OK"]:
            return result
        try:
            check_output(newPath, newSE)
        except ProcedureError as error:
            return S_ERROR(ECALREQUEST, str(error))
        changed = self.calibrationDB.setOutput(calibrationID, newPath, newSE)
        if not changed["OK"]:
            return changed
        return S_OK(f"Results of calibration {calibrationID} will be copied to {newPath} {newSE}".rstrip())

    # ------------------------------------------------------------------ workers

    types_getNewParameters = [_INT, _INT, str]

    def export_getNewParameters(self, calibrationID, stepOnWorker, credential):
        """The constants of the current step, if the worker has not processed it yet.

        :param int calibrationID: the calibration
        :param int stepOnWorker: the last step the worker processed (-1 at its start)
        :param str credential: the calibration's worker credential
        :return: S_OK(parameter set dict) when there is a newer step or the calibration has
            ended (``calibrationIsFinished`` True); while the worker must wait,
            S_OK({'currentStep', 'calibrationIsFinished': False, 'resultsMissing': how many more
            results the step needs before it is analysed (0 while it is being analysed),
            'nextStepIn': in how many seconds its analysis is expected to end, None if unknown}),
            which tells the worker when to ask again
        """
        result = self._policy().workerCalibration(self.calibrationDB, calibrationID, credential)
        if not result["OK"]:
            return result
        calibration = result["Value"]
        if calibration["Status"] != RUNNING or calibration["Step"] > stepOnWorker:
            return S_OK(self._parameterSet(calibration))
        missing = self._resultsMissing(calibration)
        if not missing["OK"]:
            return missing
        return S_OK({"currentStep": calibration["Step"], "calibrationIsFinished": False,
                     "resultsMissing": missing["Value"],
                     "nextStepIn": self.analysisClock.expectedIn(calibrationID, calibration["Step"],
                                                                 calibration["Phase"])})

    types_getInputDataDict = [_INT, _INT, str]

    def export_getInputDataDict(self, calibrationID, workerID, credential):
        """The events a worker reprocesses at every step.

        :param int calibrationID: the calibration
        :param int workerID: the worker, from 0 to numberOfJobs - 1
        :param str credential: the calibration's worker credential
        :return: S_OK({sample type: [[file, ...], events to skip, number of events]})
        """
        result = self._policy().workerCalibration(self.calibrationDB, calibrationID, credential)
        if not result["OK"]:
            return result
        if not isInteger(workerID) or not 0 <= workerID < result["Value"]["NumberOfJobs"]:
            return S_ERROR(ECALREQUEST, f"Calibration {calibrationID} has no worker {workerID!r}")
        return self.calibrationDB.getWorkerInputData(calibrationID, workerID)

    types_getCalibrationSetup = [_INT, str]

    def export_getCalibrationSetup(self, calibrationID, credential):
        """What a worker needs once: the settings, the template steering file, the photon-training
        PandoraSettings, the release.

        :param int calibrationID: the calibration
        :param str credential: the calibration's worker credential
        :return: S_OK({'settings': dict, 'steeringFile': str, 'photonTrainingSettings': str or None
            (None for a calibration without stage 2), 'softwareVersion': str, 'numberOfJobs': int})
        """
        result = self._policy().workerCalibration(self.calibrationDB, calibrationID, credential)
        if not result["OK"]:
            return result
        calibration = result["Value"]
        steering = self.calibrationDB.getSteeringFile(calibrationID)
        if not steering["OK"]:
            return steering
        training = self.calibrationDB.getPhotonTrainingSettings(calibrationID)
        if not training["OK"]:
            return training
        return S_OK(
            {
                "settings": calibration["Settings"],
                "steeringFile": steering["Value"].decode(errors="surrogateescape"),
                "photonTrainingSettings": None if training["Value"] is None
                else training["Value"].decode(errors="surrogateescape"),
                "softwareVersion": calibration["SoftwareVersion"],
                "numberOfJobs": calibration["NumberOfJobs"],
            }
        )

    types_getNewPhotonLikelihood = [_INT, str]

    def export_getNewPhotonLikelihood(self, calibrationID, credential):
        """The photon likelihood merged at the end of the training (stage 2), for stage 3.

        :param int calibrationID: the calibration
        :param str credential: the calibration's worker credential
        :return: S_OK(bytes of the merged likelihood XML), or S_ERROR while it does not exist yet
        """
        result = self._policy().workerCalibration(self.calibrationDB, calibrationID, credential)
        if not result["OK"]:
            return result
        name = ARTIFACT_FILES["photonLikelihood"]
        files = self.calibrationDB.getFiles(calibrationID, [name])
        if not files["OK"]:
            return files
        if name not in files["Value"]:
            return S_ERROR(ECALNOTREADY, f"Calibration {calibrationID} has no merged photon likelihood yet")
        return S_OK(files["Value"][name])

    types_submitResult = [_INT, _INT, _INT, _INT, _INT, (str, bytes), str]

    def export_submitResult(self, calibrationID, stageID, phaseID, stepID, workerID, content, credential):
        """Store a worker's result (summary) for a step and answer at once; if it completes the step
        (and AdvanceOnLastResult is set), the service analyses the step in the background.

        :param int calibrationID: the calibration
        :param int stageID: stage of the step the result is for
        :param int phaseID: phase of that step
        :param int stepID: the step
        :param int workerID: the worker
        :param bytes content: the encoded summary (``Procedure.summary.encode_summary``)
        :param str credential: the calibration's worker credential
        :return: S_OK({'Stored': bool, 'Message': str, 'ResultsMissing', 'AnalysisSeconds'}): not
            stored when the step is over or the worker already reported it; ResultsMissing is how many
            more results the step needs before it is analysed (0 once it has enough, or is over; None
            if they could not be counted); AnalysisSeconds how long this service's last analysis of
            the phase took (None if it has not analysed it; absent when the step is over);
            S_ERROR(ECALREQUEST) for a malformed or oversized result
        """
        result = self._policy().workerCalibration(self.calibrationDB, calibrationID, credential)
        if not result["OK"]:
            return result
        calibration = result["Value"]
        if not isInteger(stageID, phaseID, stepID, workerID):
            return S_ERROR(ECALREQUEST, "stageID, phaseID, stepID and workerID must be integers")
        if not 0 <= workerID < calibration["NumberOfJobs"]:
            return S_ERROR(ECALREQUEST, f"Calibration {calibrationID} has no worker {workerID}")
        if isinstance(content, str):
            content = content.encode(errors="surrogateescape")
        if len(content) > self.maxResultSize:
            return S_ERROR(ECALREQUEST,
                           f"Result of {len(content)} bytes refused: the limit is {self.maxResultSize} bytes")
        if stepID == calibration["Step"] and (stageID, phaseID) != (calibration["Stage"], calibration["Phase"]):
            return S_ERROR(
                ECALREQUEST,
                f"Step {stepID} is stage {calibration['Stage']} phase {calibration['Phase']}, "
                f"not stage {stageID} phase {phaseID}"
            )
        try:
            decode_summary(content, phaseID, self.maxResultSize)
        except ProcedureError as error:
            return S_ERROR(ECALREQUEST, f"Result refused: {error}")
        stored = self.calibrationDB.addResult(calibrationID, stageID, phaseID, stepID, workerID, content)
        if not stored["OK"]:
            return stored
        if stepID != calibration["Step"] or calibration["Status"] != RUNNING:  # then nothing was stored
            message = f"Step {stepID} is over (calibration at step {calibration['Step']}, {calibration['Status']})"
            return S_OK({"Stored": False, "Message": message, "ResultsMissing": 0})
        missing = self._resultsMissing(calibration)
        if not missing["OK"]:  # no reason to fail the upload: the agent's cycle finds a complete step
            self.log.warn("Cannot count the step's results; the agent's cycle will see the step", missing["Message"])
        elif stored["Value"] and missing["Value"] == 0 and self.stepAdvancer is not None:
            self.stepAdvancer.trigger(calibrationID)
        message = (f"Result of worker {workerID} for step {stepID} stored" if stored["Value"]
                   else f"Worker {workerID} had already reported step {stepID}")
        return S_OK({"Stored": stored["Value"], "Message": message, "ResultsMissing": missing.get("Value"),
                     "AnalysisSeconds": self.analysisClock.lastDuration(calibrationID, phaseID)})

    def _resultsMissing(self, calibration):
        """S_OK(how many more results the current step needs before it is analysed; 0 once it has enough)."""
        counted = self.calibrationDB.countResults(calibration["CalibrationID"], calibration["Step"])
        if not counted["OK"]:
            return counted
        return S_OK(max(0, results_needed(calibration["NumberOfJobs"], calibration["Settings"]) - counted["Value"]))

    # ------------------------------------------------------------------ agent (TrustedHost)

    auth_getWorkerCredential = [Properties.TRUSTED_HOST]
    types_getWorkerCredential = [_INT]

    def export_getWorkerCredential(self, calibrationID):
        """The worker credential of a calibration, for the jobs the agent submits.

        :param int calibrationID: the calibration
        :return: S_OK(str)
        """
        result = self._policy().calibration(self.calibrationDB, calibrationID)
        if not result["OK"]:
            return result
        credential = workerCredential(self.credentialKey, calibrationID, result["Value"]["CreationTime"])
        if not matches(credential, result["Value"]["WorkerCredentialHash"]):
            return S_ERROR(
                f"The worker credential of calibration {calibrationID} cannot be derived any more: "
                "the WorkerCredentialKeyFile changed since its creation"
            )
        return S_OK(credential)


class CalibrationHandler(CalibrationHandlerMixin, RequestHandler):
    """The DISET handler of the CalibrationService.

    Its replies do not wait ~40 ms for the client's delayed ACK as long as OpenSSL sends one TLS
    session ticket per connection (``NumTickets = 1`` in the OPENSSL_CONF the local stack starts it
    with; see the admin guide): DIRAC offers no TCP_NODELAY option for its sockets.
    """
