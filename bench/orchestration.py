"""Orchestration overhead: one calibration run with 1, 2 and 8 local worker jobs on the same events.

Why: every job reprocesses its slice of the same events at each step, so 8 jobs do the work of
1 in slices; what grows with the number of jobs is the orchestration: workers that have reported
wait (polling the service) while the others finish and the step is analysed. This script runs the
demo's calibration (all phases, the demo's synthetic samples: 10 files x 400 events per sample)
on a throw-away local stack with its agent and local worker jobs, once per row, and prints the
wall time from createCalibration to the end, the steps, what the workers cost the service (its
calls per worker and step, read from the service log, and its CPU time) and whether the final
constants are those of the first row (they must be: same events, same procedure).

Rows run one after the other, each after the jobs of the previous one have ended, after a
one-job warm-up run that is not reported. Run:
.venv/bin/python bench/orchestration.py [--quick] [--repeat N] [--workdir DIR]
"""
import collections
import datetime
import json
import os
import re
import statistics
import time

from common import (SOFTWARE_VERSION, argument_parser, bench_stack, cpu_seconds, machine_line, print_table,
                    progress, stack_process)

JOBS = (1, 2, 8)
#: the demo's samples (LocalStack/demo.py): files per sample, events per file; --quick: fewer events
SAMPLES, QUICK_SAMPLES = (10, 400), (4, 100)
#: the methods a worker calls (Worker/worker.py); the agent's and the benchmark's calls are not counted
WORKER_METHODS = ("getCalibrationSetup", "getInputDataDict", "getNewParameters", "getNewPhotonLikelihood",
                  "submitResult")
#: DIRAC's RequestHandler logs every call at NOTICE: "Executing action <caller> <method>(<masked>)"
CALL = re.compile(r"Executing action .* RPC/(\w+)\(")
CALIBRATION_TIMEOUT = 900.0  # s; the demo's default
JOBS_END_TIMEOUT = 60.0  # s for the workers to leave once the calibration has ended
POLLING_OPTION = "/Systems/Calibration/Agents/CalibrationAgent/WorkerPollingTime"
POLL = 0.1  # s between two looks at the calibration's status (in the DB: no service call)


def _db(stack):
    import MySQLdb

    params = stack.db_params()
    return MySQLdb.connect(host=params["host"], port=params["port"], user=params["user"],
                           passwd=params["password"], db=params["dbname"], autocommit=True)


def _create(stack, samples, jobs):
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient

    result = CalibrationClient(proxyLocation=str(stack.pki.proxy("alice"))).createCalibration(
        samples["inputFiles"], samples["numberOfEventsPerFile"],
        {"steeringFile": samples["steeringFile"], "softwareVersion": SOFTWARE_VERSION, "numberOfJobs": jobs})
    if not result["OK"]:
        raise RuntimeError(f"Cannot create the calibration: {result['Message']}")
    return result["Value"]


def _wait_for_end(db, calibrationID):
    """Poll the DB until the calibration is no longer Running: (end time, its row)."""
    deadline = time.monotonic() + CALIBRATION_TIMEOUT
    cursor = db.cursor()
    while time.monotonic() < deadline:
        cursor.execute("SELECT Status, StatusMessage, Step, Parameters FROM Calibrations WHERE CalibrationID = %s",
                       (calibrationID,))
        row = cursor.fetchone()
        if row[0] != "Running":
            return time.time(), {"status": row[0], "message": row[1], "steps": row[2],
                                 "parameters": json.loads(row[3])}
        time.sleep(POLL)
    raise RuntimeError(f"calibration {calibrationID} did not end within {CALIBRATION_TIMEOUT:.0f} s")


def _wait_for_jobs(stack, calibrationID):
    """Wait until every local job of the calibration has ended (the workers leave by themselves
    once they see the end), so that their last calls count for this row and no worker of it
    competes with the next row; then (when the last ended, when the first was started)."""
    from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import ATTEMPT_RUNNING
    from ILCDIRAC.CalibrationSystem.JobBackends.JobDescription import JOB_NAME_PREFIX
    from ILCDIRAC.CalibrationSystem.JobBackends.LocalJobBackend import LocalJobBackend

    directory = stack.workdir / "jobs"
    backend = LocalJobBackend(str(directory))
    prefix = f"{JOB_NAME_PREFIX}_calid_{calibrationID}_"
    deadline = time.monotonic() + JOBS_END_TIMEOUT
    while time.monotonic() < deadline:
        jobs = [name for name in os.listdir(directory) if name.startswith(prefix)]
        statuses = backend.getStatus(jobs)["Value"]
        if all(status != ATTEMPT_RUNNING for status, _ in statuses.values()):
            # the backend records each job's process creation time (epoch s) in its pid.json
            started = min(json.loads((directory / job / "pid.json").read_text())["created"] for job in jobs)
            return time.time(), started
        time.sleep(POLL)
    raise RuntimeError(f"the jobs of calibration {calibrationID} still run {JOBS_END_TIMEOUT:.0f} s after its end")


def _calls(log_path, offset):
    """The calls logged by the service after byte ``offset`` of its log: (count by method, the
    time of the first worker call, epoch s)."""
    with open(log_path, "rb") as stream:
        stream.seek(offset)
        text = stream.read().decode(errors="replace")
    calls = collections.Counter(match[1] for match in CALL.finditer(text))
    first = next(match for match in CALL.finditer(text) if match[1] in WORKER_METHODS)
    return calls, _log_time(text[text.rindex("\n", 0, first.start()) + 1:first.start()])


def _log_time(line):
    """The time stamp a DIRAC log line starts with (UTC, e.g. 2026-01-02T03:04:05,678901Z), epoch s."""
    stamp = datetime.datetime.strptime(line[:26], "%Y-%m-%dT%H:%M:%S,%f")
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


def _run(stack, db, samples, jobs):
    """One calibration with ``jobs`` jobs, from creation to its end and the end of its jobs."""
    service = stack_process(stack, "service")
    log_path = stack.log_dir / "service.log"
    offset = log_path.stat().st_size
    cpu_before, start = cpu_seconds(service), time.time()
    calibrationID = _create(stack, samples, jobs)
    end, outcome = _wait_for_end(db, calibrationID)
    if outcome["status"] != "Finished":
        raise RuntimeError(f"calibration {calibrationID} ended {outcome['status']}: {outcome['message']}")
    left, submitted = _wait_for_jobs(stack, calibrationID)
    cpu = cpu_seconds(service) - cpu_before
    calls, first_call = _calls(log_path, offset)
    return {"jobs": jobs, "wall": end - start, "submitted": end - submitted, "working": end - first_call,
            "left": left - end, "cpu": cpu, "calls": calls, **outcome}


def _row(runs, reference):
    """The cells of one row: medians over the repeated runs of one number of jobs."""
    jobs, steps = runs[0]["jobs"], runs[0]["steps"]
    wall = statistics.median(run["wall"] for run in runs)
    worker_steps = jobs * steps

    def per_worker_step(methods):
        return statistics.median(sum(run["calls"][m] for m in methods) for run in runs) / worker_steps

    cpu = statistics.median(run["cpu"] for run in runs)
    same = all(run["parameters"] == reference for run in runs) and all(run["steps"] == steps for run in runs)
    return (str(jobs), f"{wall:.1f}", "/".join(f"{run['wall']:.1f}" for run in runs),
            f"{statistics.median(run['submitted'] for run in runs):.1f}",
            f"{statistics.median(run['working'] for run in runs):.1f}", str(steps),
            f"{per_worker_step(WORKER_METHODS):.2f}", f"{per_worker_step(['getNewParameters']):.2f}",
            f"{cpu:.2f}", f"{cpu * 1000 / worker_steps:.0f}",
            f"{statistics.median(run['left'] for run in runs):.1f}", "yes" if same else "NO")


def main(argv=None):
    parser = argument_parser(__doc__, f"fewer events ({QUICK_SAMPLES[0]} files x {QUICK_SAMPLES[1]} per sample)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per number of jobs (default %(default)s)")
    parser.add_argument("--jobs", type=int, nargs="+", default=JOBS, help="numbers of jobs (default 1 2 8)")
    parser.add_argument("--worker-polling-time", type=float,
                        help="the agent's WorkerPollingTime (default: ConfigTemplate.cfg's)")
    args = parser.parse_args(argv)
    files, events = QUICK_SAMPLES if args.quick else SAMPLES
    load = os.getloadavg()[0]
    began = time.monotonic()
    runs = collections.defaultdict(list)
    overrides = {} if args.worker_polling_time is None else {POLLING_OPTION: str(args.worker_polling_time)}
    with bench_stack(args.workdir, overrides=overrides, agent=True) as stack:
        from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import write_samples

        samples = write_samples(stack.workdir / "bench-samples", events_per_file=events, files_per_sample=files)
        db = _db(stack)
        try:
            # the agent's first cycle comes late after its start, and the service imports the analyses
            # and plotting at its first steps: a one-job run takes both before any row is measured
            _run(stack, db, samples, 1)
            progress(began, "warm-up run done")
            for repeat in range(args.repeat):
                # 1 2 8, 8 2 1, ...: a drift in the machine's load hits every row alike
                for jobs in args.jobs if repeat % 2 == 0 else reversed(args.jobs):
                    runs[jobs].append(_run(stack, db, samples, jobs))
                    progress(began, f"{jobs} jobs: {runs[jobs][-1]['wall']:.1f} s")
        finally:
            db.close()
    reference = runs[args.jobs[0]][0]["parameters"]
    print_table(("jobs", "wall s", "runs s", "from submission s", "from first call s", "steps", "calls/worker/step", "polls/worker/step", "service CPU s",
                 "service CPU ms/worker/step", "jobs left s", "same constants"),
                [_row(runs[jobs], reference) for jobs in args.jobs])
    print(f"{machine_line(load)}; {files} files x {events} events per sample; wall = createCalibration -> "
          "calibration Finished (the agent's cycle, at least 10 s apart in DIRAC 9, and the workers' start-up "
          "included); from submission = first job started -> Finished; from first call = first call of a worker -> "
          "Finished; calls and polls: the workers' calls "
          "(getNewParameters alone for polls) in the service log, per worker and step; service CPU from "
          "createCalibration until every job has ended; jobs left = end -> last job gone")


if __name__ == "__main__":
    main()
