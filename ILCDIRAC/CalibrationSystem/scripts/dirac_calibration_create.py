#!/usr/bin/env python
"""
Create a calibration and print its ID: the only output on stdout, so that
ID=$(dirac-calibration-create ...) holds the ID; messages and the service's notes go to stderr.

The settings file is a JSON object with calibration settings (e.g. "stopStage",
"digitisationAccuracy") and the job keys "numberOfJobs", "steeringFile" (a path, relative to
the settings file's directory), "softwareVersion" and optionally "outputPath", "outputSE" and
"photonTrainingSettingsFile" (a path like steeringFile); whatever it leaves out comes from the
detector preset (--preset, default CLIC).

The photon training (stage 2) needs its PandoraSettings file: by default
CalibrationPandoraSettings/PandoraSettingsPhotonTraining.xml beside the steering file, or the
file given with --photon-training-settings.

Input samples are sample directories, whose path names the particle (gamma, mu-, kaon0L, zuds),
or text files listing one file (LFN) per line with --input-files TYPE=FILE. Give the number of
events in each file with --events-per-file TYPE=N for LCIO files; synthetic files of the
built-in detector model say it themselves.

Example:
  $ dirac-calibration-create --settings calib.json /data/gamma/10 /data/mu-/10
  12
  $ dirac-calibration-create --settings calib.json --input-files gamma=gamma.txt --events-per-file gamma=1000
  13
"""
import json
import os

from DIRAC.Core.Base.Script import Script

from ILCDIRAC.CalibrationSystem.Client.InputFiles import discover_input_files
from ILCDIRAC.CalibrationSystem.Client.ScriptUtilities import (
    clientOrExit,
    parseCommandLine,
    parseAssignment,
    usageError,
    valueOrExit,
)
from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError
from ILCDIRAC.CalibrationSystem.Procedure.samples import sample_type_of_path


@Script()
def main():
    Script.registerSwitch("", "settings=", "JSON file of settings and job keys (required)")
    Script.registerSwitch("", "preset=", "detector preset the settings start from: CLIC (default) or CLD")
    Script.registerSwitch("", "input-files=", "TYPE=FILE: the sample TYPE's files, one LFN per line (repeatable)")
    Script.registerSwitch("", "events-per-file=", "TYPE=N: events in each file of sample TYPE (repeatable)")
    Script.registerSwitch("", "photon-training-settings=", "PandoraSettings file of the photon training (stage 2)")
    Script.registerArgument(["SampleDir: directory of a sample; its path names the particle"], mandatory=False)
    switches, directories = parseCommandLine()

    try:
        settings, fileLists, eventsPerFile = _options(switches, directories)
        inputFiles, counts = _inputs(directories, fileLists, eventsPerFile)
    except ValueError as error:
        usageError(str(error))
    print(valueOrExit(clientOrExit().createCalibration(inputFiles, counts, settings)))


def _options(switches, directories):
    """(settings, {sample: list file}, {sample: events per file}) from the command line."""
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import TRAINING_SETTINGS_KEY, createCalibrationSettings

    options = {"preset": "CLIC", "input-files": [], "events-per-file": []}
    for key, value in switches:
        if key in ("input-files", "events-per-file"):
            options[key].append(value)
        else:
            options[key] = value
    if "settings" not in options:
        raise ValueError("--settings FILE is required: the JSON file of the calibration's settings")
    try:
        settings = createCalibrationSettings(options["preset"])
    except SettingsError as error:
        raise ValueError(f"--preset: {error}") from None
    settings.update(_readSettingsFile(options["settings"], ("steeringFile", TRAINING_SETTINGS_KEY)))
    if "photon-training-settings" in options:
        settings[TRAINING_SETTINGS_KEY] = os.path.abspath(os.path.expanduser(options["photon-training-settings"]))
    fileLists = {}
    for assignment in options["input-files"]:
        sample, listFile = parseAssignment(assignment, "input-files")
        sample = _sampleType(sample)
        if sample in fileLists:
            raise ValueError(f"--input-files gives the {sample} sample twice")
        fileLists[sample] = listFile
    eventsPerFile = {}
    for assignment in options["events-per-file"]:
        sample, count = parseAssignment(assignment, "events-per-file")
        sample = _sampleType(sample)
        try:
            eventsPerFile[sample] = int(count)
        except ValueError:
            raise ValueError(f"--events-per-file {assignment}: the number of events must be an integer") from None
    if not directories and not fileLists:
        raise ValueError("No input samples: give sample directories or --input-files TYPE=FILE")
    return settings, fileLists, eventsPerFile


def _readSettingsFile(path, pathKeys):
    """The settings file's dict, with its file paths made absolute (relative to the settings file)."""
    try:
        with open(path, encoding="utf-8") as stream:
            content = json.load(stream)
    except OSError as error:
        raise ValueError(f"Cannot read the settings file {path!r}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"The settings file {path!r} is not valid JSON: {error}") from None
    if not isinstance(content, dict):
        raise ValueError(f"The settings file {path!r} must hold a JSON object {{setting: value}}")
    if not isinstance(content.get("steeringFile"), str):
        raise ValueError(f"The settings file {path!r} must give steeringFile: the path of the Marlin steering file")
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import isLFN

    for key in pathKeys:
        if isinstance(content.get(key), str) and not isLFN(content[key]):
            content[key] = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(content[key]))
    return content


def _sampleType(name):
    sample = sample_type_of_path(name)
    if sample is None:
        raise ValueError(f"Unknown sample type {name!r}: use gamma, muon, kaon or zuds")
    return sample


def _inputs(directories, fileLists, eventsPerFile):
    """({sample: [files]}, {sample: events per file}) of the directories and list files."""
    inputFiles, counts = {}, {}
    if directories:
        try:
            inputFiles, counts = discover_input_files(directories, eventsPerFile)
        except SettingsError as error:
            raise ValueError(str(error)) from None
    for sample, listFile in fileLists.items():
        if sample in inputFiles:
            raise ValueError(f"The {sample} sample is given both as a directory and with --input-files")
        if sample not in eventsPerFile:
            raise ValueError(
                f"--input-files {sample}=...: give the events in each file with --events-per-file {sample}=N"
            )
        inputFiles[sample] = _readFileList(listFile)
        counts[sample] = eventsPerFile[sample]
    unused = sorted(set(eventsPerFile) - set(inputFiles))
    if unused:
        raise ValueError(
            f"--events-per-file names {unused}, which are not among the input samples {sorted(inputFiles)}"
        )
    return inputFiles, counts


def _readFileList(path):
    """The LFNs of a list file: one per line; blank lines and lines starting with '#' are skipped."""
    try:
        with open(path, encoding="utf-8") as stream:
            files = [line.strip() for line in stream if line.strip() and not line.lstrip().startswith("#")]
    except OSError as error:
        raise ValueError(f"Cannot read the file list {path!r}: {error.strerror}") from None
    if not files:
        raise ValueError(f"The file list {path!r} names no files")
    return files


if __name__ == "__main__":
    main()
