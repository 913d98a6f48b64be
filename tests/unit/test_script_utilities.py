"""The shared parts of the dirac-calibration-* scripts, without a service."""
import datetime
import json
import os

import pytest
from DIRAC import S_ERROR, S_OK

from ILCDIRAC.CalibrationSystem.Client import ScriptUtilities as su
from ILCDIRAC.CalibrationSystem.scripts import dirac_calibration_create as create
from ILCDIRAC.CalibrationSystem.scripts import dirac_calibration_status as status


@pytest.mark.parametrize("text", ["abc", "0", "-3", "1.5", "", " "])
def test_parse_id_refuses_what_is_not_a_positive_integer(text):
    with pytest.raises(ValueError, match="is not a calibration ID: IDs are positive integers"):
        su.parseID(text)


def test_parse_ids_keeps_order_and_drops_repetitions():
    assert su.parseIDs(["12", "3", "12", " 7"]) == [12, 3, 7]


def test_ids_or_exit_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        su.idsOrExit(["4", "x"])
    assert stop.value.code == su.USAGE_ERROR
    assert "ERROR: 'x' is not a calibration ID" in capsys.readouterr().err


def test_arguments_or_exit_refuses_extra_arguments(capsys):
    assert su.argumentsOrExit(["1", "/p"], 3) == ["1", "/p"]
    with pytest.raises(SystemExit) as stop:
        su.argumentsOrExit(["1", "2", "3"], 1)
    assert stop.value.code == su.USAGE_ERROR
    assert "Unexpected arguments 2 3" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["gamma", "=x", "gamma=", "gamma= "])
def test_parse_assignment_needs_type_and_value(text):
    with pytest.raises(ValueError, match="--input-files expects TYPE=VALUE"):
        su.parseAssignment(text, "input-files")


def test_parse_assignment_splits_at_the_first_equals_sign():
    assert su.parseAssignment(" mu- = /a/b=c.txt", "input-files") == ("mu-", "/a/b=c.txt")


def test_value_or_exit(capsys):
    assert su.valueOrExit(S_OK(5)) == 5
    with pytest.raises(SystemExit) as stop:
        su.valueOrExit(S_ERROR("Calibration 9 does not exist"))
    assert stop.value.code == su.REQUEST_FAILED
    assert capsys.readouterr().err == "ERROR: Calibration 9 does not exist\n"


def test_report_outcomes_prints_each_and_fails_if_one_failed(capsys):
    assert su.reportOutcomes({3: "Calibration 3 deleted", 1: "Calibration 1 deleted"}) == 0
    assert capsys.readouterr().out == "1: Calibration 1 deleted\n3: Calibration 3 deleted\n"
    assert su.reportOutcomes({2: "Error: Calibration 2 is still running", 1: "Calibration 1 deleted"}) == 1
    printed = capsys.readouterr()
    assert printed.out == "1: Calibration 1 deleted\n"
    assert printed.err == "2: Error: Calibration 2 is still running\n"


def test_format_table_aligns_text_left_and_numbers_right():
    table = su.formatTable(("ID", "Status", "Done"), [(7, "Running", "50%"), (12, "Finished", "100%")])
    assert table.splitlines() == [
        "ID  Status    Done",
        "--  --------  ----",
        " 7  Running    50%",
        "12  Finished  100%",
    ]


def test_format_table_without_rows_is_the_header():
    assert su.formatTable(("ID", "Status"), []) == "ID  Status\n--  ------"


def test_format_constant_and_time():
    assert su.formatConstant([43.14812345, 43.14812345]) == "43.1481, 43.1481"
    assert su.formatConstant(0.9546) == "0.9546"
    assert su.formatConstant(3) == "3"
    assert su.formatTime(datetime.datetime(2024, 5, 1, 13, 4, 5)) == "2024-05-01 13:04:05"
    assert su.formatTime(None) == "-"


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("0.5s", 0.5), ("2m", 120), (" 1m ", 60)])
def test_an_interval_is_a_duration_with_its_unit(text, seconds):
    assert status.parseDuration(text) == seconds


@pytest.mark.parametrize("text", ["6", "6 h", "s", "0s", "-1s", "infs", "nanm", "5sm", ""])
def test_an_interval_without_a_unit_or_not_positive_is_refused(text):
    with pytest.raises(ValueError, match="write a positive duration with its unit, e.g. 30s or 2m"):
        status.parseDuration(text)


def test_watch_with_a_value_says_how_to_give_the_interval(capsys):
    status._refuseWatchValue(["4", "--watch", "--", "--watch=3"])   # after '--' it is an argument
    with pytest.raises(SystemExit) as stop:
        status._refuseWatchValue(["4", "--watch=3"])
    assert stop.value.code == su.USAGE_ERROR
    assert "--watch=3: --watch takes no value; give the interval with its unit, e.g. --watch --interval 3s" in \
        capsys.readouterr().err


def test_status_output_column():
    base = {"outputPath": "/data/out", "outputSE": "", "resultsCopied": False}
    assert status._output(dict(base, outputPath="")) == "-"
    assert status._output(base) == "/data/out"
    assert status._output(dict(base, outputSE="CERN-EOS")) == "/data/out CERN-EOS"
    copied = dict(base, resultsCopied=True, timeLeftBeforeOutputWillBeDeleted=7 * 86400)
    assert status._output(copied) == "/data/out (copied, kept 7.0 d more)"
    assert status._output(dict(copied, timeLeftBeforeOutputWillBeDeleted=5400)) == "/data/out (copied, kept 1.5 h more)"


def test_settings_file_paths_are_relative_to_the_settings_file(tmp_path):
    settings, keys = tmp_path / "calib.json", ("steeringFile", "photonTrainingSettingsFile")
    settings.write_text(json.dumps({"steeringFile": "steer.xml", "numberOfJobs": 3}))
    assert create._readSettingsFile(str(settings), keys) == {"steeringFile": str(tmp_path / "steer.xml"),
                                                             "numberOfJobs": 3}
    settings.write_text(json.dumps({"steeringFile": "/abs/steer.xml", "photonTrainingSettingsFile": "pst/t.xml"}))
    assert create._readSettingsFile(str(settings), keys) == {"steeringFile": "/abs/steer.xml",
                                                             "photonTrainingSettingsFile": str(tmp_path / "pst/t.xml")}
    settings.write_text(json.dumps({"numberOfJobs": 3}))
    with pytest.raises(ValueError, match="must give steeringFile"):
        create._readSettingsFile(str(settings), keys)
    settings.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        create._readSettingsFile(str(settings), keys)


def test_file_list_skips_blank_and_comment_lines(tmp_path):
    listFile = tmp_path / "gamma.txt"
    listFile.write_text("# gamma\n/ilc/a.slcio\n\n  /ilc/b.slcio  \n")
    assert create._readFileList(str(listFile)) == ["/ilc/a.slcio", "/ilc/b.slcio"]
    listFile.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="names no files"):
        create._readFileList(str(listFile))


def test_inputs_need_events_per_file_for_file_lists(tmp_path):
    listFile = tmp_path / "muons.txt"
    listFile.write_text("/ilc/mu.slcio\n")
    assert create._inputs([], {"muon": str(listFile)}, {"muon": 500}) == ({"muon": ["/ilc/mu.slcio"]}, {"muon": 500})
    with pytest.raises(ValueError, match="--events-per-file muon=N"):
        create._inputs([], {"muon": str(listFile)}, {})
    with pytest.raises(ValueError, match=r"--events-per-file names \['kaon'\]"):
        create._inputs([], {"muon": str(listFile)}, {"muon": 500, "kaon": 10})


def test_options_collect_repeated_switches_and_check_them(tmp_path):
    settings = tmp_path / "calib.json"
    settings.write_text(json.dumps({"steeringFile": "/s.xml", "softwareVersion": "v1", "stopStage": 1}))
    switches = [("settings", str(settings)), ("preset", "CLD"), ("input-files", "mu-=m.txt"),
                ("input-files", "photons=g.txt"), ("events-per-file", "muon=10")]
    complete, fileLists, eventsPerFile = create._options(switches, [])
    assert (complete["detectorModel"], complete["stopStage"], complete["softwareVersion"]) == ("FCCee_o1_v04", 1, "v1")
    assert "photonTrainingSettingsFile" not in complete
    named, _, _ = create._options(switches + [("photon-training-settings", "pst/training.xml")], [])
    assert named["photonTrainingSettingsFile"] == os.path.abspath("pst/training.xml")
    assert fileLists == {"muon": "m.txt", "gamma": "g.txt"}
    assert eventsPerFile == {"muon": 10}
    with pytest.raises(ValueError, match="Unknown sample type 'pion'"):
        create._options(switches + [("events-per-file", "pion=3")], [])
    with pytest.raises(ValueError, match="the number of events must be an integer"):
        create._options(switches + [("events-per-file", "gamma=many")], [])
    with pytest.raises(ValueError, match="gives the muon sample twice"):
        create._options(switches + [("input-files", "muon=other.txt")], [])


def test_resume_options_read_the_step_and_the_settings_as_json():
    from ILCDIRAC.CalibrationSystem.scripts.dirac_calibration_resume import resumeOptions

    fromStep, changes = resumeOptions([("from-step", "4"), ("set", "nMaxIterationsPerPhase=50"),
                                       ("set", "digitisationAccuracy=0.02"), ("set", "outputPath=/data/calib"),
                                       ("set", "stopStage = 2")])
    assert fromStep == 4
    assert changes == {"nMaxIterationsPerPhase": 50, "digitisationAccuracy": 0.02, "outputPath": "/data/calib",
                       "stopStage": 2}
    assert resumeOptions([]) == (None, {})


@pytest.mark.parametrize("switches, message", [
    ([("from-step", "last")], "--from-step last: a step is a number"),
    ([("set", "numberOfJobs")], "--set expects TYPE=VALUE"),
    ([("set", "numberOfJobs=2"), ("set", "numberOfJobs=3")], "--set gives numberOfJobs twice"),
])
def test_resume_options_refuse_what_they_cannot_read(switches, message):
    from ILCDIRAC.CalibrationSystem.scripts.dirac_calibration_resume import resumeOptions

    with pytest.raises(ValueError, match=message):
        resumeOptions(switches)
@pytest.mark.parametrize("arguments, asked", [
    (["--help"], True), (["-h"], True), (["1", "--help"], True), (["--", "--help"], False), (["--helpme"], False),
    ([], False),
])
def test_help_requested(arguments, asked):
    assert su.helpRequested(arguments) is asked


def fake_parse(handlers):
    """A Script.parseCommandLine that, as DIRAC's, makes its log handlers on sys.stdout and logs its banner."""
    import logging
    import sys

    from DIRAC import gLogger

    def parse(ignoreErrors):
        handler = logging.StreamHandler(sys.stdout)
        logging.getLogger("dirac").addHandler(handler)
        handlers.append(handler)
        gLogger.always("Running without remote configuration")
        print("Usage: dirac-calibration-create" if "--help" in sys.argv else "")
        return [("settings", "x.json")], []
    return parse


@pytest.mark.parametrize("argv", [["x", "--settings", "x.json"], ["x", "--help"]])
def test_parse_command_line_sends_dirac_log_to_stderr_except_for_help(monkeypatch, capsys, argv):
    import logging
    import sys

    from DIRAC import gLogger

    handlers = []
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(su.Script, "parseCommandLine", fake_parse(handlers))
    try:
        assert su.parseCommandLine() == ([("settings", "x.json")], [])
        print(12)
        gLogger.always("a later note")
    finally:
        for handler in handlers:
            logging.getLogger("dirac").removeHandler(handler)
    captured = capsys.readouterr()
    if "--help" in argv:
        assert "Usage: dirac-calibration-create\n" in captured.out and captured.err == ""
    else:
        assert captured.out == "12\n"
        assert "Running without remote configuration" in captured.err and "a later note" in captured.err


def test_client_or_exit_says_to_source_env_sh(capsys, monkeypatch):
    from ILCDIRAC.CalibrationSystem.Client import CalibrationClient as client

    monkeypatch.setattr(client, "serviceConfigured", lambda: False)
    with pytest.raises(SystemExit) as stop:
        su.clientOrExit()
    assert stop.value.code == su.REQUEST_FAILED
    assert capsys.readouterr().err == f"ERROR: {client.NO_SERVICE_MESSAGE}\n"


def test_jobs_of_an_ended_calibration_not_yet_seen_to_end_are_ending():
    jobs = {"Waiting": 2, "Running": 1, "Done": 3, "Unsubmitted": 1}
    assert status.jobCounts({"status": "Running", "jobs": jobs}) == jobs
    assert status.jobCounts({"status": "Finished", "jobs": jobs}) == {"Ending": 3, "Done": 3, "Unsubmitted": 1}
    assert status.jobCounts({"status": "Killed", "jobs": {"Killed": 2}}) == {"Killed": 2}
