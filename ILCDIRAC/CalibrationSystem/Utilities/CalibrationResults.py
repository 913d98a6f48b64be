"""The result of a calibration, as the service hands it out and the agent copies it.

One place builds it, so that ``getResult``, ``dirac-calibration-result`` and the copy to the
output location always hold the same files. The result of a calibration that failed or was
killed is marked as not final in its file names, by a NOT_FINAL file and in calibration.json.
"""
import json

from DIRAC import S_ERROR, S_OK

from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import FINISHED
from ILCDIRAC.CalibrationSystem.Procedure.constants import written_value
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.failure_advice import failure_advice
from ILCDIRAC.CalibrationSystem.Procedure.outcome import decode_plots
from ILCDIRAC.CalibrationSystem.Procedure.plots import convergence_plot, render_plots
from ILCDIRAC.CalibrationSystem.Procedure.result_page import CONVERGENCE_PLOT, summary_page
from ILCDIRAC.CalibrationSystem.Procedure.steering import render_final_steering
from ILCDIRAC.CalibrationSystem.Procedure.uncertainties import final_uncertainties, statistics_limitations

STEERING_FILE = "steeringFile.xml"
STEERING_FILE_INPUT = "steeringFile.xml_INPUT"
#: The steering file of a calibration that did not finish: its constants are not the final ones.
STEERING_FILE_NOT_FINAL = "steeringFile_NOT_FINAL.xml"
#: Present only in the result of a calibration that did not finish: why, and what to try next.
NOT_FINAL_MARKER = "NOT_FINAL.txt"
SUMMARY_FILE = "calibration.json"
SUMMARY_PAGE = "summary.html"
#: How long a finished calibration is kept once its results were copied (agent option
#: TimeToKeepCalibrationResultsInMinutes), in minutes.
DEFAULT_RETENTION_MINUTES = 7 * 24 * 60


def collectResult(calibrationDB, calibration):
    """The result of a calibration read from the DB (see CalibrationHandler.export_getResult).

    :param calibrationDB: a CalibrationDB
    :param dict calibration: the calibration's row, as ``CalibrationDB.getCalibration`` returns it
    :return: S_OK(result dict), or S_ERROR if the DB cannot be read or the final steering file
        cannot be written
    """
    calibrationID = calibration["CalibrationID"]
    steering = calibrationDB.getSteeringFile(calibrationID)
    history = calibrationDB.getSteps(calibrationID)
    files = calibrationDB.getFiles(calibrationID)
    events = calibrationDB.getEvents(calibrationID)
    pending = calibrationDB.getPendingPlots(calibrationID)
    for answer in (steering, history, files, events, pending):
        if not answer["OK"]:
            return answer
    for _, _, plots in pending["Value"]:  # the agent has not drawn them yet: the result has them all the same
        files["Value"].update(render_plots(decode_plots(plots))[0])
    # the user's file, stored apart when the calibration added to it (its PfoAnalysis processor)
    steeringInput = files["Value"].pop(STEERING_FILE_INPUT, steering["Value"])
    try:
        finalSteering = render_final_steering(steering["Value"], calibration["Parameters"], calibration["Settings"])
        # the last step's update is in the calibration's constants only: the plot ends with them
        files["Value"][CONVERGENCE_PLOT] = convergence_plot(history["Value"], calibration["Parameters"])
    except (ProcedureError, ValueError) as error:
        return S_ERROR(f"Cannot write the results of calibration {calibrationID}: {error}")
    return S_OK(
        {
            "calibrationID": calibrationID,
            "status": calibration["Status"],
            "statusMessage": calibration["StatusMessage"],
            "parameters": calibration["Parameters"],
            "uncertainties": final_uncertainties(history["Value"]),
            "statisticsLimited": statistics_limitations(history["Value"]),
            "steeringFile": finalSteering.decode(errors="surrogateescape"),
            "steeringFileInput": steeringInput.decode(errors="surrogateescape"),
            "settings": calibration["Settings"],
            "history": history["Value"],
            "events": [
                {"time": time.isoformat(), "source": source, "message": message}
                for time, source, message in events["Value"]
            ],
            "files": files["Value"],
        }
    )


def resultFiles(result):
    """Every file a result holds, e.g. to write it to a directory.

    Works on a result fresh from the DB and on one received over DISET, where bytes arrive as
    str with surrogate escapes.

    :param dict result: the value of ``getResult`` (or the ``Result`` of its S_ERROR)
    :return: {file name: bytes}: the steering file with the constants reached (steeringFile.xml,
        or steeringFile_NOT_FINAL.xml and NOT_FINAL.txt if the calibration did not finish),
        steeringFile.xml_INPUT, calibration.json (constants and their uncertainties,
        statistics-limited phases, settings, history, event log, whether final, the reason and
        advice, the names of every file), the plots, summary.html (a self-contained page of the
        constants and plots) and any other files of the result
    """
    final = result["status"] == FINISHED
    steeringName = STEERING_FILE if final else STEERING_FILE_NOT_FINAL
    files = {name: _bytes(content) for name, content in result["files"].items()}
    files[steeringName] = _bytes(result["steeringFile"])
    files[STEERING_FILE_INPUT] = _bytes(result["steeringFileInput"])
    summary = {
        key: result[key]
        for key in ("calibrationID", "status", "statusMessage", "parameters", "uncertainties", "statisticsLimited",
                    "settings", "events")
    }
    summary["history"] = [
        {key: (value.isoformat() if hasattr(value, "isoformat") else value) for key, value in step.items()}
        for step in result["history"]
    ]
    # the constants as the steering files hold them (7 significant digits), not a double's 17
    summary["parameters"] = _written(summary["parameters"])
    for step in summary["history"]:
        step["Parameters"] = _written(step["Parameters"])
    summary["final"] = final
    summary["advice"] = failure_advice(
        result["calibrationID"], result["status"], result["statusMessage"], result["history"], result["settings"],
        steeringName,
    )
    if not final:
        files[NOT_FINAL_MARKER] = notFinalText(result, summary["advice"]).encode()
    summary["files"] = sorted([*files, SUMMARY_FILE, SUMMARY_PAGE])
    files[SUMMARY_FILE] = json.dumps(summary, indent=1, sort_keys=True).encode()
    files[SUMMARY_PAGE] = summary_page(result, files)
    return files


def _written(constants):
    return {name: written_value(value) for name, value in constants.items()}
def notFinalText(result, advice):
    """Why a result is not final and what to try next, as NOT_FINAL.txt and the script say it.

    :param dict result: the value of ``getResult`` (or the ``Result`` of its S_ERROR)
    :param list advice: sentences from ``failure_advice``
    :return: str, one paragraph per line
    """
    reason = f": {result['statusMessage']}" if result["statusMessage"] else ""
    lines = [
        f"Calibration {result['calibrationID']} is {result['status']}{reason}.",
        f"These are NOT its final constants: {STEERING_FILE_NOT_FINAL} holds those it had reached.",
    ]
    return "\n".join(lines + list(advice)) + "\n"


def _bytes(content):
    return content if isinstance(content, bytes) else content.encode(errors="surrogateescape")
