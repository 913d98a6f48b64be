#!/usr/bin/env python
"""
Run one worker of a calibration: the program that every calibration job executes.

It asks the CalibrationService for the current constants, reconstructs its slice of events,
reports the result, and waits for the next step until the calibration ends.

Example:
  $ dirac-calibration-worker --calibration-id 3 --worker-id 12
"""
import os

from DIRAC.Core.Base.Script import Script


@Script()
def main():
    defaults = {
        "polling-time": "0.1",
        "max-polling-time": "10",
        "service-timeout": "600",
        "reconstruction": "auto",
        "ilcsoft-init": None,
    }
    Script.registerSwitch("", "calibration-id=", "ID of the calibration (required)")
    Script.registerSwitch("", "worker-id=", "ID of this worker within the calibration (required)")
    Script.registerSwitch("", "polling-time=", "shortest wait between polls, seconds (default 0.1)")
    Script.registerSwitch("", "max-polling-time=", "longest wait between polls, seconds (default 10)")
    Script.registerSwitch("", "service-timeout=", "how long the service may be unreachable, seconds (default 600)")
    Script.registerSwitch("", "reconstruction=", "auto (default), builtin (detector model) or marlin")
    Script.registerSwitch("", "ilcsoft-init=", "iLCSoft init script for Marlin; '{version}' is the release")
    switches, _ = Script.parseCommandLine(ignoreErrors=False)
    options = dict(defaults, **dict(switches))

    from DIRAC import exit as dexit
    from DIRAC import gLogger

    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient
    from ILCDIRAC.CalibrationSystem.Utilities.WorkerCredential import CREDENTIAL_FILE, ENVIRONMENT_VARIABLE
    from ILCDIRAC.CalibrationSystem.Worker.reconstruction import choose_reconstruction
    from ILCDIRAC.CalibrationSystem.Worker.worker import CalibrationWorker

    try:
        calibrationID = int(options.get("calibration-id"))
        workerID = int(options.get("worker-id"))
        timing = {name: float(options[name]) for name in ("polling-time", "max-polling-time", "service-timeout")}
    except (TypeError, ValueError):
        gLogger.error("--calibration-id and --worker-id are required integers; the times are numbers of seconds")
        dexit(2)
    credential = os.environ.get(ENVIRONMENT_VARIABLE)
    if not credential and os.path.exists(CREDENTIAL_FILE):
        with open(CREDENTIAL_FILE) as stream:
            credential = stream.read().strip()
    if not credential:
        gLogger.error(f"No worker credential: set {ENVIRONMENT_VARIABLE} or provide the file {CREDENTIAL_FILE}")
        dexit(2)
    try:
        worker = CalibrationWorker(
            CalibrationClient(),
            calibrationID,
            workerID,
            credential,
            lambda setup, inputData: choose_reconstruction(
                options["reconstruction"], setup, inputData, os.getcwd(), options["ilcsoft-init"]
            ),
            pollingTime=timing["polling-time"],
            maxPollingTime=timing["max-polling-time"],
            serviceTimeout=timing["service-timeout"],
        )
    except ValueError as error:
        gLogger.error(f"--polling-time and --max-polling-time: {error}")
        dexit(2)
    result = worker.run()
    if not result["OK"]:
        gLogger.error("Worker failed", result["Message"])
        dexit(1)
    dexit(0)


if __name__ == "__main__":
    main()
