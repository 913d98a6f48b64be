"""One CalibrationService against 100 and 1000 simulated workers that poll and report.

Why: every worker of a calibration polls getNewParameters with back-off and uploads a summary
at every step, all against one service. This script measures what that costs the service
(requests/s it sustains, latency, CPU per request) and how long workers wait for a new step
once its last needed result is in (the service stores that result, answers, and analyses the
step in a background thread; see AdvanceOnLastResult). A calibration that ends (it can only
fail: the summaries never converge) or stops moving (its step complete but not analysed for
STALL seconds) counts as an error of its row.

Real DISET/TLS on loopback against a throw-away local stack (MariaDB, service; the agent is
stopped, so no real worker job runs). One calibration of alice per row, numberOfJobs = workers,
settings stopStage 1, stopPhase 0: phase 0 only. The simulated workers follow the protocol of
Worker/worker.py without reconstructing anything: getNewParameters(id, last step, credential)
with back-off (doubling from --poll-start to --poll-max, 0.5 -> 2 s by default to make more
steps per minute; the real worker waits by what the service answers, Worker/polling.py, which
costs fewer polls per step than this plain back-off), and on a new step at once submitResult with
a valid phase-0 summary, then poll again at once. The summaries
peak 10 % below the photon energy, so phase 0 never converges and the step repeats until the
row's time is up (real workers would move the peak with the new constants). Workers are spread
over --processes client processes, each running its workers in order of their next due time;
each call opens its own TLS connection, as any DIRAC client does. Each row is bounded in time
(its duration, then no new call starts), every call by a timeout, every row by a deadline.
Run:  .venv/bin/python bench/service.py [--quick] [--workdir DIR]
"""
import collections
import datetime
import heapq
import math
import os
import re
import statistics
import time

import numpy as np

from common import (EVENTS_PER_FILE, ClientPool, argument_parser, bench_stack, cpu_seconds, create_calibration,
                    gamma_samples, machine_line, percentile, print_table, progress, stack_process)

#: (workers, seconds) of each row: full run (about 4 min on 2 cores) and --quick (under 1 min).
#: On 2 cores a step of 1000 workers takes ~30 s (every worker polls and submits once), hence 90 s.
PLAN = [(100, 60.0), (1000, 90.0)]
QUICK_PLAN = [(100, 30.0)]
PROCESSES = 16
POLL_START, POLL_MAX = 0.5, 2.0  # s
SETTINGS = {"stopStage": 1, "stopPhase": 0, "nMaxIterationsPerPhase": 10000}
VALUES_PER_REGION = 50  # selected photons per worker and ECal region in a summary
SUMMARY_PEAK, SUMMARY_WIDTH = 9.0, 0.3  # GeV: 10 % off 10 GeV, beyond digitisationAccuracy
#: the event written with a step's analysis (private/StepAdvancement, Procedure/advance.py)
ANALYSED = re.compile(r"\bstep (\d+)(?: \([^()]*\))? analysed")  # the step, its deviation (if measured), then "analysed"
STALL = 10.0  # s: a complete step not analysed for that long means the calibration stopped moving
CALL_TIMEOUT = 60  # s, per DISET call
ROW_GRACE = 180.0  # s after a row's duration; a row that takes longer means a hung service


def _summary(workerID, step, peak=SUMMARY_PEAK):
    """A valid phase-0 summary as a worker would upload it (its own random photons per step)."""
    from ILCDIRAC.CalibrationSystem.Procedure.summary import encode_summary

    rng = np.random.default_rng([workerID, step])
    return encode_summary(0, {region: rng.normal(peak, SUMMARY_WIDTH, VALUES_PER_REGION).astype(np.float32)
                              for region in ("barrel", "endcap")})


def _serve_workers(client, conn, task):
    """A client process's part of a row: simulate the workers of ``task``, send back what happened."""
    conn.send(_simulate(client, task))


def _simulate(client, task):
    """Run the workers of ``task`` until its end time, as Worker/worker.py's loop does.

    Returns the latency of every call by method, the (step, start, end, stored) of every
    submitResult, the earliest reply that served each step, how late calls started against
    their due time (this process being busy with its other workers), and the errors.
    """
    from ILCDIRAC.Core.Utilities.DErrno import isRefusal

    calibrationID, credential = task["calibrationID"], task["credential"]
    pollStart, pollMax = task["pollStart"], task["pollMax"]
    step = {workerID: -1 for workerID, _ in task["workers"]}
    wait = dict.fromkeys(step, pollStart)
    queue = [(due, workerID) for workerID, due in task["workers"]]
    heapq.heapify(queue)
    latencies = {"getNewParameters": [], "submitResult": []}
    submits, firstServed, lags, errors = [], {}, [], collections.Counter()
    finished, lastEnd = 0, task["start"]

    def call(method, *args):
        nonlocal lastEnd
        start = time.perf_counter()
        result = getattr(client, method)(*args, credential)
        lastEnd = time.perf_counter()
        latencies[method].append(lastEnd - start)
        if not result["OK"]:
            errors[f"{method}: {result['Message'][:200]}"] += 1
        return start, result

    def later(workerID):
        heapq.heappush(queue, (lastEnd + wait[workerID], workerID))
        wait[workerID] = min(2 * wait[workerID], pollMax)

    while queue and queue[0][0] < task["end"] and time.perf_counter() < task["end"]:
        due, workerID = heapq.heappop(queue)
        time.sleep(max(0.0, due - time.perf_counter()))
        start, result = call("getNewParameters", calibrationID, step[workerID])
        lags.append(start - due)
        if not result["OK"]:
            if not isRefusal(result):  # a refusal ends a real worker; anything else is retried
                later(workerID)
            continue
        parameters = result["Value"]
        if parameters["calibrationIsFinished"]:
            finished += 1
            continue
        if parameters["currentStep"] <= step[workerID]:
            later(workerID)
            continue
        newStep = parameters["currentStep"]
        firstServed[newStep] = min(firstServed.get(newStep, math.inf), lastEnd)
        start, result = call("submitResult", calibrationID, parameters["currentStage"], parameters["currentPhase"],
                             newStep, workerID, _summary(workerID, newStep))
        if result["OK"]:
            submits.append((newStep, start, lastEnd, result["Value"]["Stored"]))
            step[workerID], wait[workerID] = newStep, pollStart
            heapq.heappush(queue, (lastEnd, workerID))  # at once: the harder case for the service
        elif not isRefusal(result):
            later(workerID)  # it gets the same step again and re-submits
    return {"latencies": latencies, "submits": submits, "firstServed": firstServed, "lags": lags,
            "errors": errors, "finished": finished, "lastEnd": lastEnd}


def _run_workers(pool, calibration, n_workers, duration, poll_start, poll_max):
    """Start all workers at once (their first polls spread over ``poll_max``), spread round-robin
    over the pool's processes, and collect the processes' reports."""
    calibrationID, credential = calibration
    start = time.perf_counter() + 1.0  # every process has its task before the first call
    for index, conn in enumerate(pool.conns):
        workers = [(w, start + poll_max * w / n_workers) for w in range(index, n_workers, len(pool.conns))]
        conn.send({"calibrationID": calibrationID, "credential": credential, "workers": workers,
                   "start": start, "end": start + duration, "pollStart": poll_start, "pollMax": poll_max})
    return start, pool.gather(pool.conns, time.monotonic() + duration + ROW_GRACE)


def _warm_up(stack, samples):
    """A one-job calibration run to its end: the fresh service connects to the DB and imports the
    analysis code on its first step, which no row should pay for. Also checks the protocol the
    simulated workers use before minutes are spent on it."""
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient

    calibrationID, credential = create_calibration(stack, samples, {"numberOfJobs": 1, **SETTINGS})
    client = CalibrationClient(proxyLocation=str(stack.pki.proxy("alice")))
    first = client.getNewParameters(calibrationID, -1, credential)
    if not first["OK"] or "parameters" not in first["Value"]:
        raise RuntimeError(f"getNewParameters does not serve step 0: {first}")
    stored = client.submitResult(calibrationID, 1, 0, 0, 0, _summary(0, 0, peak=10.0), credential)
    if not stored["OK"] or not stored["Value"]["Stored"]:
        raise RuntimeError(f"submitResult did not store the warm-up result: {stored}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        last = client.getNewParameters(calibrationID, 0, credential)
        if last["OK"] and last["Value"]["calibrationIsFinished"]:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the warm-up step was not analysed within 30 s of its last result: {last}")


def _service_state(stack, calibrationID):
    """What the service and its DB say about the calibration after a row: results needed per
    step, current step and status, results stored (the check that the simulated results really
    arrived), when each step's analysis was written (its event, ms resolution, epoch s), and
    whether it stopped moving (its current step complete for more than STALL s, not analysed)."""
    import MySQLdb

    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient

    statuses = CalibrationClient(proxyLocation=str(stack.pki.proxy("alice"))).getUserCalibrationStatuses()
    if not statuses["OK"]:
        raise RuntimeError(f"getUserCalibrationStatuses failed: {statuses['Message']}")
    status = next(s for s in statuses["Value"] if s["calibrationID"] == calibrationID)
    params = stack.db_params()
    db = MySQLdb.connect(host=params["host"], port=params["port"], user=params["user"],
                         passwd=params["password"], db=params["dbname"])
    try:
        cursor = db.cursor()
        cursor.execute("SELECT COUNT(*) FROM StepResults WHERE CalibrationID = %s", (calibrationID,))
        stored = int(cursor.fetchone()[0])
        cursor.execute("SELECT EventTime, Message FROM CalibrationEvents WHERE CalibrationID = %s ORDER BY EventID",
                       (calibrationID,))
        analysed = {int(match[1]): when.replace(tzinfo=datetime.timezone.utc).timestamp()
                    for when, message in cursor.fetchall() if (match := ANALYSED.search(message))}
        cursor.execute("SELECT ReceivedTime FROM StepResults WHERE CalibrationID = %s AND Step = %s "
                       "ORDER BY ReceivedTime LIMIT 1 OFFSET %s", (calibrationID, status["currentStep"],
                                                                   status["resultsNeeded"] - 1))
        complete = cursor.fetchone()
        cursor.execute("SELECT UTC_TIMESTAMP()")
        now = cursor.fetchone()[0]
    finally:
        db.close()
    # one more event than the status says: a step analysed between the two reads
    if len(analysed) < status["currentStep"]:
        raise RuntimeError(f"calibration {calibrationID} is at step {status['currentStep']} but has "
                           f"{len(analysed)} 'step N analysed' events: has the event message changed?")
    stalled = complete is not None and (now - complete[0]).total_seconds() > STALL
    return {"needed": status["resultsNeeded"], "step": status["currentStep"], "status": status["status"],
            "statusMessage": status["statusMessage"], "stalled": stalled, "storedInDB": stored,
            "analysed": analysed}


def _transitions(reports, analysed, needed):
    """Per step that moved on: (ms from the start of the submitResult that completed the step to
    the end of the first reply serving the next step, ms of that submitResult call, ms from the
    analysis being written to that reply).

    ``analysed``: {step: when its analysis was written, on the clients' clock}. The completing
    call is the ``needed``-th stored result of the step, in the order the calls ended.
    """
    firstServed = {}
    for report in reports:
        for step, end in report["firstServed"].items():
            firstServed[step] = min(firstServed.get(step, math.inf), end)
    stored = collections.defaultdict(list)
    for report in reports:
        for step, start, end, kept in report["submits"]:
            if kept:
                stored[step].append((end, start))
    found = []
    for step, calls in stored.items():
        if step + 1 in firstServed and step in analysed and len(calls) >= needed:
            end, start = sorted(calls)[needed - 1]
            served = firstServed[step + 1]
            found.append(((served - start) * 1000, (end - start) * 1000, (served - analysed[step]) * 1000))
    return found


def _median_of(rows, column):
    return f"{statistics.median(row[column] for row in rows):.0f}" if rows else "-"


def _p50_p99(values):
    return f"{statistics.median(values):.0f}/{percentile(values, 99):.0f}"


def _measure_row(stack, pool, samples, n_workers, duration, poll_start, poll_max):
    calibrationID, credential = create_calibration(stack, samples, {"numberOfJobs": n_workers, **SETTINGS})
    service, mariadb = stack_process(stack, "service"), stack_process(stack, "mariadb")
    cpu_before = cpu_seconds(service), cpu_seconds(mariadb)
    start, reports = _run_workers(pool, (calibrationID, credential), n_workers, duration, poll_start, poll_max)
    cpu = cpu_seconds(service) - cpu_before[0], cpu_seconds(mariadb) - cpu_before[1]
    state = _service_state(stack, calibrationID)
    offset = time.time() - time.perf_counter()  # the events' wall clock -> the clients' perf_counter
    analysed = {step: when - offset for step, when in state.pop("analysed").items()}
    return {"workers": n_workers, "wall": max(r["lastEnd"] for r in reports) - start, "cpu": cpu,
            "reports": reports, "transitions": _transitions(reports, analysed, state["needed"]), **state}


def _rows(row):
    """The main table's cells, the details table's cells and the errors of one measured row."""
    reports = row["reports"]
    by_method = {method: [x * 1000 for r in reports for x in r["latencies"][method]]
                 for method in ("getNewParameters", "submitResult")}
    ms = sorted(by_method["getNewParameters"] + by_method["submitResult"])
    transitions = row["transitions"]
    errors = sum((r["errors"] for r in reports), collections.Counter())
    if row["status"] != "Running":
        errors[f"calibration ended {row['status']} at step {row['step']}: {row['statusMessage'][:200]}"] += 1
    elif row["stalled"]:
        errors[f"calibration stopped moving: step {row['step']} complete for more than {STALL:g} s"] += 1
    elif not transitions:
        errors["calibration stopped moving: no step moved on"] += 1
    main = (str(row["workers"]), f"{row['wall']:.1f}", str(len(ms)), f"{len(ms) / row['wall']:.1f}",
            f"{statistics.median(ms):.1f}", f"{percentile(ms, 99):.1f}", f"{row['cpu'][0] * 1000 / len(ms):.2f}",
            _median_of(transitions, 0), str(sum(errors.values())))
    submits = [s for r in reports for s in r["submits"]]
    stored = sum(1 for s in submits if s[3])
    lags = sorted(x * 1000 for r in reports for x in r["lags"])
    details = (str(row["workers"]), str(len(by_method["getNewParameters"])), _p50_p99(by_method["getNewParameters"]),
               str(len(submits)), _p50_p99(by_method["submitResult"]) if submits else "-",
               f"{stored}/{row['storedInDB']}", str(len(submits) - stored), f"{row['needed']}",
               f"{len(transitions)} ({row['step']}, {row['status']})",
               _median_of(transitions, 1), _median_of(transitions, 2),
               _p50_p99(lags),
               f"{row['cpu'][1] * 1000 / len(ms):.2f}", str(sum(r["finished"] for r in reports)))
    return main, details, errors


def _report(measured, args, load):
    tables = [_rows(row) for row in measured]
    print_table(("workers", "duration s", "requests", "req/s", "p50 ms", "p99 ms", "service CPU ms/req",
                 "step transition ms", "errors"), [t[0] for t in tables])
    print()
    print_table(("workers", "polls", "poll p50/p99 ms", "submits", "submit p50/p99 ms", "stored client/DB", "late",
                 "needed/step", "steps moved (service step, status)", "completing submit ms", "analysed->served ms",
                 "client lag p50/p99 ms", "MariaDB CPU ms/req", "saw end"), [t[1] for t in tables])
    for row, (_, _, errors) in zip(measured, tables):
        for message, count in errors.most_common(5):
            print(f"error x{count} ({row['workers']} workers): {message}")
    print(f"{machine_line(load)}; {args.processes} client processes on the same cores, one TLS connection per "
          f"call; back-off {args.poll_start:g} -> {args.poll_max:g} s (real workers: Worker/polling.py); {VALUES_PER_REGION} "
          "photons per region per summary. Step transition = start of the submitResult carrying the last needed "
          "result -> first reply serving the next step (median over the steps); completing submit = that call (the "
          "needed-th stored result of the step, by end time); analysed->served = from the analysis being written "
          "(its event) to that reply; late = results for a step already over (not stored, as for real late workers); client lag = how late a "
          "poll started against its due time because its process was busy.")


def main(argv=None):
    parser = argument_parser(__doc__, "100 workers for 30 s only (about 1 min in all)")
    parser.add_argument("--processes", type=int, default=PROCESSES, help="client processes (default %(default)s)")
    parser.add_argument("--poll-start", type=float, default=POLL_START, help="first back-off, s (default %(default)s)")
    parser.add_argument("--poll-max", type=float, default=POLL_MAX, help="largest back-off, s (default %(default)s)")
    args = parser.parse_args(argv)
    plan = QUICK_PLAN if args.quick else PLAN
    load = os.getloadavg()[0]
    measured, began = [], time.monotonic()
    with bench_stack(args.workdir) as stack:
        samples = gamma_samples(stack, math.ceil(max(n for n, _ in plan) / EVENTS_PER_FILE))  # a file per worker
        _warm_up(stack, samples)
        with ClientPool(args.processes, str(stack.pki.proxy("alice")), _serve_workers, ROW_GRACE,
                        call_timeout=CALL_TIMEOUT) as pool:
            for n_workers, duration in plan:
                measured.append(_measure_row(stack, pool, samples, n_workers, duration, args.poll_start,
                                             args.poll_max))
                progress(began, f"measured {n_workers} workers")
    _report(measured, args, load)


if __name__ == "__main__":
    main()
