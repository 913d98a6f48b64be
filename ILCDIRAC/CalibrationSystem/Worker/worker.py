"""The worker loop of the seed: ask for constants, reconstruct, report, wait for the next step.

A worker reprocesses the same slice of events at every step with the constants the service
hands out, and uploads a compact summary of what the current phase needs. It polls for the next
step when the service's answers say it is likely to be there (polling.NextStepWait; never
busy-waits), rides out a service that is down for a while, and leaves when the calibration has
ended.
"""
import os
import time

from DIRAC import S_ERROR, S_OK, gLogger

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.phases import get_phase
from ILCDIRAC.CalibrationSystem.Procedure.steering import (
    processor_name_of_type,
    processor_parameter,
    render_steering,
)
from ILCDIRAC.CalibrationSystem.Procedure.summary import encode_summary
from ILCDIRAC.CalibrationSystem.Worker.pandora_settings import (
    MERGED_LIKELIHOOD,
    write_calibration_settings,
    write_training_settings,
)
from ILCDIRAC.CalibrationSystem.Worker.polling import NextStepWait
from ILCDIRAC.Core.Utilities.DErrno import isRefusal


class CalibrationWorker:
    """One worker of one calibration."""

    def __init__(self, client, calibrationID, workerID, credential, reconstructionFor, workDirectory=".",
                 pollingTime=0.1, maxPollingTime=10.0, serviceTimeout=600.0, sleep=time.sleep):
        """
        :param client: a CalibrationClient (or anything with the service's methods)
        :param int calibrationID: the calibration
        :param int workerID: this worker, from 0 to numberOfJobs - 1
        :param str credential: the calibration's worker credential, shown with every call
        :param reconstructionFor: callable(setup, inputData) -> reconstruct, where
            reconstruct(steering bytes, settings) -> worker_output.ReconstructionOutput
        :param str workDirectory: where input files downloaded by the job and the step's files are
        :param float pollingTime: shortest wait between two polls for the next step (see
            polling.NextStepWait), and first wait before calling a failing service again
        :param float maxPollingTime: longest wait between two polls; a failing service is called
            again with waits doubling from ``pollingTime`` up to it
        :param float serviceTimeout: how long the service may fail to answer before giving up
        :param sleep: the function that waits (``time.sleep``; replaced in tests)
        :raises ValueError: unless 0 < pollingTime <= maxPollingTime
        """
        self.client = client
        self.calibrationID = calibrationID
        self.workerID = workerID
        self.credential = credential
        self.reconstructionFor = reconstructionFor
        self.reconstruct = None
        self.workDirectory = workDirectory
        self.pollingTime = pollingTime
        self.maxPollingTime = maxPollingTime
        self.nextStepWait = NextStepWait(pollingTime, maxPollingTime)
        self.serviceTimeout = serviceTimeout
        self.sleep = sleep
        self.log = gLogger.getSubLogger(f"CalibrationWorker/{calibrationID}/{workerID}")

    def run(self):
        """Work until the calibration ends: fetch the setup and the event slice once, then for every
        new step render the steering file, reconstruct, upload the summary and poll for the next step.

        :return: S_OK(number of steps processed) when the calibration has ended, or S_ERROR (the service
            refused the worker, stayed unreachable longer than serviceTimeout, or the reconstruction failed)
        """
        setup = self._call("getCalibrationSetup", self.calibrationID)
        if not setup["OK"]:
            return setup
        inputData = self._call("getInputDataDict", self.calibrationID, self.workerID)
        if not inputData["OK"]:
            return inputData
        try:
            self.reconstruct = self.reconstructionFor(setup["Value"], inputData["Value"])
        except ProcedureError as error:
            return S_ERROR(f"Worker {self.workerID} cannot reconstruct: {error}")
        jobs, waits = setup["Value"]["numberOfJobs"], self.nextStepWait
        step, processed = -1, 0
        while True:
            result = self._call("getNewParameters", self.calibrationID, step)
            if not result["OK"]:
                return result
            parameterSet = result["Value"]
            if parameterSet["calibrationIsFinished"]:
                self.log.notice("Calibration ended", f"{parameterSet['calibrationStatus']} after {processed} steps")
                return S_OK(processed)
            if parameterSet["currentStep"] <= step:
                self.sleep(waits.afterPoll(parameterSet.get("resultsMissing"), parameterSet.get("nextStepIn")))
                continue
            started = time.monotonic()
            result = self._processStep(parameterSet, setup["Value"], inputData["Value"])
            if not result["OK"]:
                return result
            step = parameterSet["currentStep"]
            processed += 1
            wait = waits.afterReport(result["Value"]["ResultsMissing"], jobs, time.monotonic() - started,
                                     result["Value"].get("AnalysisSeconds"))
            if wait:
                self.sleep(wait)

    def _processStep(self, parameterSet, setup, inputData):
        """Reconstruct and report one step: S_OK(submitResult's answer) or S_ERROR."""
        stage, phaseID, step = (parameterSet[k] for k in ("currentStage", "currentPhase", "currentStep"))
        self.log.info("Processing", f"stage {stage} phase {phaseID} step {step}")
        try:
            summary = self._summarise(phaseID, step, stage, parameterSet["parameters"], setup, inputData)
        except (ProcedureError, ValueError, OSError) as error:
            # ValueError: inputs the reconstruction cannot use; OSError: the work directory
            return S_ERROR(f"Step {step} failed on worker {self.workerID}: {error}")
        result = self._call("submitResult", self.calibrationID, stage, phaseID, step, self.workerID, summary)
        if not result["OK"]:
            return result
        self.log.info("Reported", result["Value"]["Message"])
        return result

    def _summarise(self, phaseID, step, stage, parameters, setup, inputData):
        """Reconstruct this worker's events of every sample the phase needs with ``parameters``;
        return the phase's summary bytes."""
        phase = get_phase(phaseID)
        settings = setup["settings"]
        template = setup["steeringFile"].encode(errors="surrogateescape")
        stepParameters = self._stepParameters(stage, template, setup)
        outputs = {}
        for sample in phase.samples:
            if sample not in inputData:
                raise ProcedureError(f"no {sample} events were given to this worker")
            files, skip, nEvents = inputData[sample]
            files = [self._localFile(name) for name in files]
            steering = render_steering(
                template,
                parameters,
                settings,
                {"LCIOInputFiles": " ".join(files), "SkipNEvents": str(skip), "MaxRecordNumber": str(nEvents)},
                stepParameters,
            )
            path = os.path.join(self.workDirectory, f"marlinSteeringFile_{stage}_{phaseID}_{step}_{sample}.xml")
            with open(path, "wb") as stream:
                stream.write(steering)
            outputs[sample] = self.reconstruct(steering, settings)
        return encode_summary(phaseID, phase.collect(outputs, settings))

    def _localFile(self, name):
        """A grid job finds its input data downloaded into its working directory; elsewhere the
        file is read where it is."""
        downloaded = os.path.join(self.workDirectory, os.path.basename(name))
        return downloaded if os.path.isfile(downloaded) else name

    def _stepParameters(self, stage, template, setup):
        """Processor parameters a stage sets: the PfoAnalysis output in the work directory (with the
        calibration details, whatever the user's processor says), and the PandoraSettings of the
        photon training (stage 2) or of the merged likelihood (stage 3)."""
        pandora = setup["settings"]["DDPandoraPFANewProcessorName"]
        configured = processor_parameter(template, pandora, "PandoraSettingsXmlFile")
        pfoAnalysis = processor_name_of_type(template, "PfoAnalysis")
        parameters = {
            (pfoAnalysis, "RootFile"): os.path.join(os.path.abspath(self.workDirectory), "pfoAnalysis.root"),
            (pfoAnalysis, "CollectCalibrationDetails"): "1",
        }
        if stage == 2:
            training = setup.get("photonTrainingSettings")
            if training is None:
                raise ProcedureError(
                    "the calibration holds no photon-training PandoraSettings, so stage 2 cannot run; create it"
                    " again with its PandoraSettingsPhotonTraining.xml"
                )
            parameters[(pandora, "PandoraSettingsXmlFile")] = write_training_settings(
                self.workDirectory, training.encode(errors="surrogateescape")
            )
        elif stage == 3:
            parameters[(pandora, "PandoraSettingsXmlFile")] = write_calibration_settings(
                self.workDirectory, self._mergedLikelihood(), configured
            )
        return parameters

    def _mergedLikelihood(self):
        """The stage-2 likelihood, fetched once from the service (waiting while it is not there)."""
        path = os.path.join(self.workDirectory, MERGED_LIKELIHOOD)
        if not os.path.exists(path):
            result = self._call("getNewPhotonLikelihood", self.calibrationID)
            if not result["OK"]:
                raise ProcedureError(f"no merged photon likelihood: {result['Message']}")
            content = result["Value"]
            with open(path, "wb") as stream:
                stream.write(content.encode(errors="surrogateescape") if isinstance(content, str) else content)
        return path

    def _call(self, method, *args):
        """Call a worker method of the service (the credential is added as last argument);
        errors other than a refusal are retried with back-off until
        ``serviceTimeout`` has passed, so a service restart does not lose the worker."""
        deadline = time.monotonic() + self.serviceTimeout
        wait = self.pollingTime
        while True:
            result = getattr(self.client, method)(*args, self.credential)
            if result["OK"] or isRefusal(result) or time.monotonic() + wait > deadline:
                if not result["OK"]:
                    self.log.error(f"{method} failed", result["Message"])
                return result
            self.log.warn(f"{method} failed, retrying in {wait:.0f} s", result["Message"])
            self.sleep(wait)
            wait = min(2 * wait, self.maxPollingTime)
