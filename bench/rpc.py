"""Throughput and latency of CalibrationService.getNewParameters, with and without TCP_NODELAY.

Why: workers poll getNewParameters all the time, and a stock DIRAC service holds each small
reply ~40 ms (Nagle against the client's delayed ACK). The handler sets TCP_NODELAY on accepted
sockets when its option TCPNoDelay is True; this script measures what that buys, over real
DISET/TLS on loopback, against a real local stack (MariaDB, service; the agent is stopped so
that the calibration stays at step 0 and no worker job competes for the CPU).

Clients run in separate processes (started once, reused for every row) so that the numbers are
the service's, not the GIL of this script. Each client makes its own TLS connection per call,
as any DIRAC client does. Run:  .venv/bin/python bench/rpc.py [--quick] [--workdir DIR]
"""
import os
import statistics
import time

from common import (ClientPool, argument_parser, bench_stack, cpu_seconds, create_calibration, gamma_samples,
                    machine_line, percentile, print_table, progress, stack_process)

OPTION = "/Systems/Calibration/Services/Calibration/TCPNoDelay"
#: step argument -> reply: at step 0, a worker that processed step 0 is told to keep waiting (the
#: common polling reply, with the results the step misses); a worker at its start (-1) gets the
#: full parameter set.
STEPS = {"poll": 0, "full": -1}
#: (reply, concurrent clients, calls per client), full run (about 2-3 min on 2 cores) and --quick.
PLAN = [("poll", 1, 500), ("poll", 8, 200), ("poll", 32, 50), ("full", 8, 125)]
QUICK_PLAN = [("poll", 1, 60), ("poll", 8, 30), ("poll", 32, 8), ("full", 8, 15)]
#: phase 0 only, two jobs: the calibration never leaves step 0 with the agent stopped
SETTINGS = {"numberOfJobs": 2, "stopStage": 1, "stopPhase": 0}
WARM_UP_CALLS = 5  # per reply kind, after each service restart
ROW_TIMEOUT = 300.0  # s; a row that takes longer means a hung service, not a slow one


def _serve_calls(client, conn, task):
    """A client's part of a row: on (calibration, step, calls) makes one warm-up call, reports
    ready, waits for "go", then makes the calls and sends back (start, end, latencies, errors)."""
    (calibrationID, credential), step, calls = task
    warm = client.getNewParameters(calibrationID, step, credential)
    conn.send(None if warm["OK"] else warm["Message"])
    conn.recv()
    latencies, errors = [], []
    start = time.perf_counter()
    for _ in range(calls):
        before = time.perf_counter()
        result = client.getNewParameters(calibrationID, step, credential)
        latencies.append(time.perf_counter() - before)
        if not result["OK"]:
            errors.append(result["Message"])
    conn.send((start, time.perf_counter(), latencies, errors))


def _measure(pool, n_clients, calibration, step, calls, service):
    """One row: the first ``n_clients`` clients make ``calls`` calls each, all at once.
    Returns the latencies, the wall time from the first start to the last end, and the
    service's CPU seconds meanwhile."""
    deadline = time.monotonic() + ROW_TIMEOUT
    active = pool.conns[:n_clients]
    for conn in active:
        conn.send((calibration, step, calls))
    warm_errors = [message for message in pool.gather(active, deadline) if message]
    if warm_errors:
        raise RuntimeError(f"getNewParameters failed before the measurement: {warm_errors[0]}")
    cpu_before = cpu_seconds(service)
    for conn in active:
        conn.send("go")
    reports = pool.gather(active, deadline)
    cpu = cpu_seconds(service) - cpu_before
    errors = [message for report in reports for message in report[3]]
    if errors:
        raise RuntimeError(f"{len(errors)} of {n_clients * calls} calls failed, e.g. {errors[0]}")
    wall = max(report[1] for report in reports) - min(report[0] for report in reports)
    return [lat for report in reports for lat in report[2]], wall, cpu


def _set_tcp_nodelay(stack, enabled):
    """Restart the service with TCPNoDelay = ``enabled``; the rest of the stack keeps running."""
    stack.stop_service()
    stack.set_overrides({OPTION: str(enabled)})
    stack.start_service()
    return stack_process(stack, "service")


def _row(nodelay, reply, n_clients, latencies, wall, cpu):
    ms = sorted(lat * 1000 for lat in latencies)
    return (str(nodelay), str(n_clients), reply, str(len(ms)), f"{len(ms) / wall:.1f}",
            f"{statistics.median(ms):.1f}", f"{percentile(ms, 99):.1f}", f"{cpu * 1000 / len(ms):.2f}")


def _warm_up(calibration, proxy):
    """A fresh service connects to the DB and imports lazily on its first calls: not measured.
    Also checks that the replies are still the ones the rows are named after."""
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient

    calibrationID, credential = calibration
    client = CalibrationClient(proxyLocation=proxy)
    for reply, step in [*STEPS.items()] * WARM_UP_CALLS:
        result = client.getNewParameters(calibrationID, step, credential)
        if not result["OK"]:
            raise RuntimeError(f"getNewParameters fails on the restarted service: {result['Message']}")
        if ("parameters" in result["Value"]) == (reply == "poll"):
            raise RuntimeError(f"getNewParameters({calibrationID}, {step}) returned {result['Value']!r}: "
                               "the calibration is no longer waiting at step 0 (is an agent running?)")


def main(argv=None):
    args = argument_parser(__doc__, "fewer calls: about 30 s instead of 2-3 min").parse_args(argv)
    plan = QUICK_PLAN if args.quick else PLAN
    load = os.getloadavg()[0]
    measured, began = {}, time.monotonic()
    with bench_stack(args.workdir, overrides={OPTION: "False"}) as stack:
        proxy = str(stack.pki.proxy("alice"))
        calibration = create_calibration(stack, gamma_samples(stack, 2), SETTINGS)
        with ClientPool(max(n for _, n, _ in plan), proxy, _serve_calls, ROW_TIMEOUT) as pool:
            current = None
            for index, (reply, n_clients, calls) in enumerate(plan):
                # A B, B A, A B, ...: both settings of a row are measured back to back, so a change in
                # the load of the machine hits both alike, with one service restart per row
                for nodelay in (False, True) if index % 2 == 0 else (True, False):
                    if nodelay != current:
                        service, current = _set_tcp_nodelay(stack, nodelay), nodelay
                        _warm_up(calibration, proxy)
                    measured[reply, n_clients, nodelay] = _measure(pool, n_clients, calibration, STEPS[reply],
                                                                   calls, service)
                    progress(began, f"measured TCP_NODELAY={nodelay} clients={n_clients} reply={reply}")
    print_table(("TCP_NODELAY", "clients", "reply", "calls", "calls/s", "median ms", "p99 ms", "service CPU ms/call"),
                [_row(nodelay, reply, n, *measured[reply, n, nodelay])
                 for reply, n, _ in plan for nodelay in (False, True)])
    print(f"{machine_line(load)}; clients are processes on the same cores, one TLS connection per call; "
          f"poll = getNewParameters(id, 0) -> wait, full = getNewParameters(id, -1) -> the parameter set")


if __name__ == "__main__":
    main()
