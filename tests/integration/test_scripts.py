"""The dirac-calibration-* user scripts, each run as a process acting as alice (or bob) against
the real local stack, as a user would type them."""
import json
import signal
import subprocess

import pytest

from conftest import ECAL_ONLY, SOFTWARE_VERSION, wait_for

from ILCDIRAC.CalibrationSystem.Utilities.CalibrationResults import resultFiles

pytestmark = pytest.mark.integration

JOBS = 2
ENDED_JOB_STATUSES = {"Done", "Failed", "Killed", "Lost"}


def run(stack, *arguments, user="alice", timeout=120):
    """Run a script (found on the stack's PATH) as ``user``; the CompletedProcess."""
    return subprocess.run(list(arguments), env=stack.user_env(user), capture_output=True, text=True, timeout=timeout)


def run_all(stack, commands, user="alice", timeout=120):
    """Run independent script invocations side by side (each start-up takes seconds); their
    CompletedProcesses, in order."""
    processes = [
        subprocess.Popen(command, env=stack.user_env(user), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command in commands
    ]
    done = []
    for command, process in zip(commands, processes):
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            process.kill()
        done.append(subprocess.CompletedProcess(command, process.returncode, stdout, stderr))
    return done


def table_rows(stdout):
    """{calibration ID: row cells} of the table dirac-calibration-status printed."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = cells
    return rows


def calibration_status(db, calibrationID):
    cursor = db.cursor()
    cursor.execute("SELECT Status FROM Calibrations WHERE CalibrationID = %s", (calibrationID,))
    row = cursor.fetchone()
    return row[0] if row else None


def count_calibrations(db):
    cursor = db.cursor()
    cursor.execute("SELECT COUNT(*) FROM Calibrations")
    return cursor.fetchone()[0]


@pytest.fixture(scope="module")
def created(clients):
    """IDs of every calibration the tests create: killed and cleaned at the end of the module."""
    ids = []
    yield ids
    alice = clients["alice"]()
    if ids:
        alice.killCalibrations(ids, "end of test_scripts")
        cleaned = alice.cleanCalibrations(ids)
        assert cleaned["OK"], cleaned


@pytest.fixture(scope="module")
def settings_files(tmp_path_factory, samples):
    """Settings files: 'ecal' (stage 1 phase 0 only: finishes in seconds), 'capped' (the same, failing
    at the iteration cap) and 'full' (the whole procedure: runs for a minute or more, long enough to be
    caught running)."""
    directory = tmp_path_factory.mktemp("settings")
    job = {"numberOfJobs": JOBS, "steeringFile": samples["steeringFile"], "softwareVersion": SOFTWARE_VERSION}
    files = {"ecal": directory / "ecal.json", "full": directory / "full.json", "capped": directory / "capped.json"}
    files["ecal"].write_text(json.dumps(dict(ECAL_ONLY, **job)))
    files["capped"].write_text(json.dumps(dict(ECAL_ONLY, **CAPPED, **job)))
    files["full"].write_text(json.dumps(job))
    return {name: str(path) for name, path in files.items()}


def create(stack, created, *arguments):
    """Run dirac-calibration-create; the new ID (all it prints on stdout, as ID=$(...) needs),
    remembered for the clean-up."""
    process = run(stack, "dirac-calibration-create", *arguments)
    assert process.returncode == 0, process.stdout + process.stderr
    assert "added PfoAnalysis processor 'MyPfoAnalysis'" in process.stderr   # the service's note
    assert process.stdout.strip().isdigit(), process.stdout
    calibrationID = int(process.stdout)
    created.append(calibrationID)
    return calibrationID


def run_to_end(stack, samples, settings, created, db, expected):
    """A stage-1-phase-0 calibration created from the gamma sample directory, run to its end."""
    calibrationID = create(stack, created, "--settings", settings, samples["directories"]["gamma"])
    wait_for(lambda: calibration_status(db, calibrationID) != "Running", 180, what="the calibration to end")
    assert calibration_status(db, calibrationID) == expected
    return calibrationID


@pytest.fixture(scope="module")
def finished(stack, samples, settings_files, created, db):
    return run_to_end(stack, samples, settings_files["ecal"], created, db, "Finished")


#: An accuracy no sample reaches and one iteration: the calibration fails after its first step.
CAPPED = {"digitisationAccuracy": 0.0001, "nMaxIterationsPerPhase": 1}


@pytest.fixture(scope="module")
def failed(stack, samples, settings_files, created, db):
    """It fails at the iteration cap."""
    return run_to_end(stack, samples, settings_files["capped"], created, db, "Failed")


@pytest.fixture
def running(stack, samples, settings_files, created, clients):
    """A fresh calibration of the whole procedure: still running for the next minute or so.
    Killed after the test, so that its workers do not slow down the others."""
    directories = [samples["directories"][s] for s in ("gamma", "muon", "kaon", "zuds")]
    calibrationID = create(stack, created, "--settings", settings_files["full"], *directories)
    yield calibrationID
    clients["alice"]().killCalibration(calibrationID, "end of test")


# ---------------------------------------------------------------- create


def stored(db, calibrationID):
    """What the DB holds of a calibration: owner, jobs, settings, input files, events per file."""
    cursor = db.cursor()
    cursor.execute(
        "SELECT Owner, NumberOfJobs, Settings, InputFiles, EventsPerFile FROM Calibrations WHERE CalibrationID = %s",
        (calibrationID,),
    )
    owner, jobs, settings, inputFiles, eventsPerFile = cursor.fetchone()
    return owner, jobs, json.loads(settings), json.loads(inputFiles), json.loads(eventsPerFile)


def test_create_from_directories(finished, samples, db):
    owner, jobs, settings, inputFiles, eventsPerFile = stored(db, finished)
    assert (owner, jobs) == ("alice", JOBS)
    assert (settings["stopStage"], settings["stopPhase"]) == (1, 0)
    assert inputFiles == {"gamma": samples["inputFiles"]["gamma"]}
    assert eventsPerFile == {"gamma": 100}


def test_create_from_file_lists(stack, samples, settings_files, created, clients, db, tmp_path):
    gammaFiles = samples["inputFiles"]["gamma"][:3]
    listFile = tmp_path / "gamma.txt"
    listFile.write_text("# gamma sample\n" + "\n".join(gammaFiles) + "\n\n")
    calibrationID = create(
        stack, created, "--settings", settings_files["ecal"], "--input-files", f"photon={listFile}",
        "--events-per-file", "gamma=100",
    )
    owner, jobs, _, inputFiles, eventsPerFile = stored(db, calibrationID)
    assert (owner, jobs) == ("alice", JOBS)
    assert inputFiles == {"gamma": gammaFiles}
    assert eventsPerFile == {"gamma": 100}
    clients["alice"]().killCalibration(calibrationID, "not needed any further")


REFUSED_CREATES = [
    (lambda s, d: [d["gamma"]], 2, "--settings FILE is required"),
    (lambda s, d: ["--settings", s["ecal"]], 2, "No input samples"),
    (lambda s, d: ["--settings", s["ecal"], "/tmp"], 2, "Cannot tell the particle of '/tmp'"),
    (lambda s, d: ["--settings", s["ecal"], "--input-files", "gamma=/no/such/list"], 2, "--events-per-file gamma=N"),
    (lambda s, d: ["--settings", s["ecal"], "--input-files", "gamma=/no/such/list", "--events-per-file", "gamma=100"],
     2, "Cannot read the file list '/no/such/list'"),
    (lambda s, d: ["--settings", s["ecal"], "--preset", "ILD", d["gamma"]], 2, "unknown settings preset 'ILD'"),
    (lambda s, d: ["--settings", "/no/such.json", d["gamma"]], 2, "Cannot read the settings file"),
    (lambda s, d: ["--settings", s["typo"], d["gamma"]], 1, "did you mean 'digitisationAccuracy'"),
    (lambda s, d: ["--settings", s["jobTypo"], d["gamma"]], 1, "unknown setting 'numberOfJob': did you mean "
                                                               "'numberOfJobs'?"),
    (lambda s, d: ["--settings", s["lfn"], d["gamma"]], 1, "steeringFile 'LFN:/ilc/user/a/alice/steering.xml' is a "
                                                           "grid file"),
    (lambda s, d: ["--settings", s["full"], d["gamma"]], 1, "Missing input samples ['kaon', 'muon', 'zuds']"),
]


@pytest.fixture(scope="module")
def refused_creates(stack, samples, settings_files, db, tmp_path_factory):
    """Every REFUSED_CREATES case, run side by side: (processes, calibrations before, after)."""
    typo = tmp_path_factory.mktemp("typo") / "typo.json"
    with open(settings_files["ecal"]) as stream:
        typo.write_text(json.dumps(dict(json.load(stream), digitisationAcuracy=0.01)))
    jobTypo, lfn = typo.parent / "jobTypo.json", typo.parent / "lfn.json"
    with open(settings_files["ecal"]) as stream:
        ecal = json.load(stream)
    jobTypo.write_text(json.dumps(dict(ecal, numberOfJob=3)))
    lfn.write_text(json.dumps(dict(ecal, steeringFile="LFN:/ilc/user/a/alice/steering.xml")))
    files = dict(settings_files, typo=str(typo), jobTypo=str(jobTypo), lfn=str(lfn))
    before = count_calibrations(db)
    processes = run_all(
        stack, [["dirac-calibration-create", *case(files, samples["directories"])] for case, _, _ in REFUSED_CREATES]
    )
    return processes, before, count_calibrations(db)


@pytest.mark.parametrize("case", range(len(REFUSED_CREATES)))
def test_create_refuses_bad_requests_and_stores_nothing(refused_creates, case):
    processes, before, after = refused_creates
    _, code, message = REFUSED_CREATES[case]
    assert processes[case].returncode == code, processes[case].stdout + processes[case].stderr
    assert message in processes[case].stderr
    assert after == before


# ---------------------------------------------------------------- status


def test_status_table_shows_own_calibrations(stack, finished):
    process = run(stack, "dirac-calibration-status")
    assert process.returncode == 0, process.stderr
    row = table_rows(process.stdout)[finished]
    assert (row[1], row[2][:4], row[3], row[4]) == ("Finished", "1/0/", f"{JOBS}/{JOBS}", "100%")
    assert "Created (UTC)" in process.stdout and f"{finished}: Finished after stage 1" in process.stdout
    only = run(stack, "dirac-calibration-status", str(finished))
    assert list(table_rows(only.stdout)) == [finished]
    assert finished not in table_rows(run(stack, "dirac-calibration-status", user="bob").stdout)


def test_a_finished_calibration_shows_its_ended_jobs(stack, finished, db):
    wait_for(lambda: set(job_statuses(db, finished)) <= ENDED_JOB_STATUSES, 60, interval=0.5,
             what="the workers of the finished calibration to end")
    row = table_rows(run(stack, "dirac-calibration-status", str(finished)).stdout)[finished]
    assert row[5:6] == [f"Done:{JOBS}"], row


def test_status_of_an_unknown_calibration_fails(stack, finished):
    process = run(stack, "dirac-calibration-status", str(finished), "999999")
    assert process.returncode == 1
    assert "Calibration 999999 does not exist" in process.stderr
    assert list(table_rows(process.stdout)) == [finished]


def test_status_watch_refreshes_count_times(stack, finished):
    process = run(stack, "dirac-calibration-status", "--watch", str(finished), "--interval", "0.5s", "--count", "2")
    assert process.returncode == 0, process.stderr
    assert process.stdout.count("Calibrations at") == 2
    assert sum(1 for line in process.stdout.splitlines() if line.split()[:2] == [str(finished), "Finished"]) == 2


def test_status_watch_ends_cleanly_on_ctrl_c(stack, finished, tmp_path):
    output = tmp_path / "watch.out"
    with open(output, "w") as stream:
        # Ctrl-C's default action, also when the tests run as a background job (whose SIGINT is ignored)
        process = subprocess.Popen(["dirac-calibration-status", "--watch"], env=stack.user_env("alice"),
                                   stdout=stream, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(lambda: "Calibrations at" in output.read_text(), 60, interval=0.2, what="the first table")
        assert "every 10 s" in output.read_text()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "Traceback" not in stderr


# ---------------------------------------------------------------- kill, clean, result on running ones


def test_running_calibration_has_no_result_and_cannot_be_cleaned(stack, running, db, tmp_path):
    result, clean = run_all(stack, [
        ["dirac-calibration-result", str(running), "--output-dir", str(tmp_path / "out")],
        ["dirac-calibration-clean", str(running)],
    ])
    assert result.returncode == 1
    assert f"Calibration {running} has no result: it is Running" in result.stderr
    assert not (tmp_path / "out").exists()
    assert clean.returncode == 1
    assert (f"{running}: Error: Calibration in another state ( 3104 : Calibration {running} is still running: "
            "kill it before cleaning it)") in clean.stderr
    for other in run_all(stack, [[script, str(running)] for script in ("dirac-calibration-kill",
                                                                       "dirac-calibration-clean")], user="bob"):
        assert other.returncode == 1
        assert f"Calibration {running} does not exist" in other.stderr
    assert calibration_status(db, running) == "Running"


def job_statuses(db, calibrationID):
    cursor = db.cursor()
    cursor.execute("SELECT Status FROM JobAttempts WHERE CalibrationID = %s", (calibrationID,))
    return [row[0] for row in cursor.fetchall()]


def test_kill_ends_a_running_calibration_and_clean_removes_it(stack, running, db, tmp_path):
    wait_for(lambda: len(job_statuses(db, running)) == JOBS, 60, interval=0.2,
             what="the agent to submit the calibration's jobs")
    kill = run(stack, "dirac-calibration-kill", str(running), "999999", "--reason", "wrong steering file")
    assert kill.returncode == 1
    assert f"{running}: Calibration {running} killed" in kill.stdout
    assert "999999: Error: Calibration not found ( 3101 : Calibration 999999 does not exist)" in kill.stderr
    assert calibration_status(db, running) == "Killed"

    wait_for(lambda: set(job_statuses(db, running)) <= ENDED_JOB_STATUSES, 60, interval=0.5,
             what="the agent to end the killed calibration's jobs")
    status, again, result = run_all(stack, [
        ["dirac-calibration-status", str(running)],
        ["dirac-calibration-kill", str(running)],
        ["dirac-calibration-result", str(running), "--output-dir", str(tmp_path / "killed")],
    ])
    assert table_rows(status.stdout)[running][1] == "Killed"
    assert f"{running}: Killed by alice: wrong steering file" in status.stdout
    assert again.returncode == 1
    assert f"Calibration {running} has already ended (Killed)" in again.stderr
    assert result.returncode == 1
    assert f"ERROR: Calibration {running} is Killed: Killed by alice: wrong steering file" in result.stderr
    assert "To go on from where it was killed" in result.stderr
    assert (tmp_path / "killed" / "steeringFile_NOT_FINAL.xml").exists()

    clean = run(stack, "dirac-calibration-clean", str(running))
    assert clean.returncode == 0, clean.stderr
    assert f"{running}: Calibration {running} deleted" in clean.stdout
    assert calibration_status(db, running) is None
    gone = run(stack, "dirac-calibration-status", str(running))
    assert gone.returncode == 1 and f"Calibration {running} does not exist" in gone.stderr


# ---------------------------------------------------------------- result, change-output


def test_result_writes_every_file_and_prints_the_constants(stack, finished, clients, tmp_path):
    output = tmp_path / "result"
    process = run(stack, "dirac-calibration-result", str(finished), "--output-dir", str(output))
    assert process.returncode == 0, process.stderr
    expected = resultFiles(clients["alice"]().getResult(finished)["Value"])
    assert {"steeringFile.xml", "steeringFile.xml_INPUT", "calibration.json", "convergence.png"} <= set(expected)
    assert any(name.startswith("step001_") and name.endswith(".png") for name in expected)
    assert {path.name: path.read_bytes() for path in output.iterdir()} == expected
    summary = json.loads((output / "calibration.json").read_text())
    barrel = summary["parameters"]["CalibrECAL"][0]
    constants = {line.split()[0]: line for line in process.stdout.splitlines() if line.split()}
    assert f"{barrel:.6g}" in constants["CalibrECAL"]
    assert "ECALEndcapCorrectionFactor" in constants
    assert f"Files written to {output}" in process.stdout
    assert all(f"  {name} (" in process.stdout for name in expected)


def test_a_failed_calibrations_result_is_written_marked_not_final(stack, failed, clients, tmp_path):
    output = tmp_path / "failed"
    process = run(stack, "dirac-calibration-result", str(failed), "--output-dir", str(output))
    assert process.returncode == 1
    answer = clients["alice"]().getResult(failed)
    expected = resultFiles(answer["Result"])
    assert {path.name: path.read_bytes() for path in output.iterdir()} == expected
    assert {"steeringFile_NOT_FINAL.xml", "NOT_FINAL.txt"} <= set(expected) and "steeringFile.xml" not in expected
    summary = json.loads((output / "calibration.json").read_text())
    assert summary["final"] is False and "did not converge within nMaxIterationsPerPhase=1" in summary["statusMessage"]
    assert f"Calibration {failed}: Failed after 1 steps (NOT FINAL)" in process.stdout
    assert process.stdout.splitlines()[1].split() == ["Constant", "Initial", "Reached", "Uncertainty"]
    error = process.stderr[process.stderr.index("ERROR: "):]   # after DIRAC's log
    assert error.startswith(f"ERROR: Calibration {failed} is Failed: ECalDigi did not converge")
    assert "Relax digitisationAccuracy to" in error and "startStage=1 and startPhase=0" in error
    assert f"dirac-calibration-resume {failed}" in error
    assert error[len("ERROR: "):] == (output / "NOT_FINAL.txt").read_text()


def test_output_dir_of_another_result_is_refused_or_replaced(stack, finished, failed, tmp_path):
    output = tmp_path / "shared"
    assert run(stack, "dirac-calibration-result", str(finished), "--output-dir", str(output)).returncode == 0
    before = {path.name: path.read_bytes() for path in output.iterdir()}
    refused = run(stack, "dirac-calibration-result", str(failed), "--output-dir", str(output))
    assert refused.returncode == 1
    assert (f"holds the result of calibration {finished}: choose another --output-dir, or add --replace"
            in refused.stderr)
    assert {path.name: path.read_bytes() for path in output.iterdir()} == before
    replaced = run(stack, "dirac-calibration-result", str(failed), "--output-dir", str(output), "--replace")
    assert replaced.returncode == 1 and "NOT_FINAL" in replaced.stderr   # written: not final
    summary = json.loads((output / "calibration.json").read_text())
    assert summary["calibrationID"] == failed
    assert sorted(path.name for path in output.iterdir()) == summary["files"]
    assert not (output / "steeringFile.xml").exists()


def test_compare_with_an_earlier_calibration_and_with_a_steering_file(stack, finished, failed, samples, tmp_path):
    withID, withFile, missing = run_all(stack, [
        ["dirac-calibration-result", str(finished), "--output-dir", str(tmp_path / "a"), "--compare", str(failed)],
        ["dirac-calibration-result", str(finished), "--output-dir", str(tmp_path / "b"), "--compare",
         samples["steeringFile"]],
        ["dirac-calibration-result", str(finished), "--output-dir", str(tmp_path / "c"), "--compare", "/no/such.xml"],
    ])
    assert withID.returncode == 0, withID.stderr
    assert f"Compared with calibration {failed} (Failed, not final):" in withID.stdout
    comparison = withID.stdout.split("Compared with")[1].splitlines()
    assert comparison[1].split()[:4] == ["Constant", "This", "Reference", "Difference"]
    assert {line.split()[0] for line in comparison[3:] if line.strip() and not line.startswith("Files")} >= {
        "CalibrECAL[0]", "CalibrECAL[1]", "ECALEndcapCorrectionFactor"}
    assert withFile.returncode == 0, withFile.stderr
    assert f"Compared with steering file {samples['steeringFile']}:" in withFile.stdout
    start = json.loads((tmp_path / "b" / "calibration.json").read_text())["history"][0]["Parameters"]
    row = next(line.split() for line in withFile.stdout.split("Compared with")[1].splitlines()
               if line.startswith("CalibrECAL[0] "))
    assert row[2] == f"{start['CalibrECAL'][0]:.6g}"   # the generated steering file holds the start constants
    assert missing.returncode == 2 and "neither a calibration ID nor a readable steering file" in missing.stderr
    assert not (tmp_path / "c").exists()


def test_change_output_makes_the_agent_copy_the_results(stack, finished, tmp_path):
    target = tmp_path / "copy"
    process = run(stack, "dirac-calibration-change-output", str(finished), str(target))
    assert process.returncode == 0, process.stderr
    assert f"Results of calibration {finished} will be copied to {target}" in process.stdout
    copied = target / f"calib{finished}" / "steeringFile.xml"
    wait_for(copied.exists, 60, interval=0.5, what="the agent to copy the results")
    status, relative = run_all(stack, [["dirac-calibration-status", str(finished)],
                                       ["dirac-calibration-change-output", str(finished), "copy"]])
    assert f"{target} (copied" in status.stdout
    assert relative.returncode == 1 and "must be an absolute path" in relative.stderr
    other = run(stack, "dirac-calibration-change-output", str(finished), str(target), user="bob")
    assert other.returncode == 1 and f"Calibration {finished} does not exist" in other.stderr


# ---------------------------------------------------------------- bad arguments


BAD_ARGUMENTS = [
    (["dirac-calibration-kill", "abc"], "'abc' is not a calibration ID"),
    (["dirac-calibration-kill"], "not all mandatory arguments are defined"),
    (["dirac-calibration-clean", "0"], "'0' is not a calibration ID"),
    (["dirac-calibration-result"], "not all mandatory arguments are defined"),
    (["dirac-calibration-result", "1", "2"], "Unexpected arguments 2"),
    (["dirac-calibration-change-output", "1"], "not all mandatory arguments are defined"),
    (["dirac-calibration-status", "one"], "'one' is not a calibration ID"),
    (["dirac-calibration-status", "--interval", "6"], "--interval '6': write a positive duration with its unit"),
    (["dirac-calibration-status", "--watch=6"], "--watch takes no value; give the interval with its unit"),
    (["dirac-calibration-status", "--colour"], "option --colour not recognized"),
]


@pytest.fixture(scope="module")
def bad_argument_runs(stack):
    return run_all(stack, [command for command, _ in BAD_ARGUMENTS])


@pytest.mark.parametrize("case", range(len(BAD_ARGUMENTS)), ids=[" ".join(c[1:]) or c[0] for c, _ in BAD_ARGUMENTS])
def test_bad_arguments_exit_non_zero_with_a_message(bad_argument_runs, case):
    process, message = bad_argument_runs[case], BAD_ARGUMENTS[case][1]
    assert process.returncode != 0
    assert message in process.stdout + process.stderr
    assert "Traceback" not in process.stderr
