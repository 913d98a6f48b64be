"""Throughput and latency of CalibrationService.getNewParameters: TLS session tickets, keep-alive.

Why: workers poll getNewParameters all the time, and each DISET call is a TLS connection of its
own. Two things are measured over real DISET/TLS on loopback, against a real local stack
(MariaDB, service; the agent is stopped so that the calibration stays at step 0 and no worker
job competes for the CPU):

- Session tickets. A stock service (OpenSSL's default: 2 TLS 1.3 session tickets per
  connection) holds the first answer of every call ~40 ms (Nagle against the client's delayed
  ACK, see LocalStack/config.OPENSSL_CONFIG); the local stack's service sends one ticket.
- Keep-alive. DIRAC's clients take ``keepAliveLapse`` (default 150 s, 0 disables it), but it
  only makes the transport pool ping persistent DISET connections (MessageClient's
  "Connection/new"): for an RPC the client closes its connection after the answer
  (InnerRPCClient.executeRPC) and the server closes it after the action (Service._processProposal
  sets closeTransport for everything but a message connection). The connections a client opens
  are counted (audit hook on socket.connect) to show it: one per call whatever the lapse.

Clients run in separate processes (started once, reused for every row) so that the numbers are
the service's, not the GIL of this script. Run:  .venv/bin/python bench/rpc.py [--quick] [--workdir DIR]
"""
import os
import statistics
import sys
import time

from common import (ClientPool, argument_parser, bench_stack, cpu_seconds, create_calibration, gamma_samples,
                    machine_line, percentile, print_table, progress, stack_process)

#: step argument -> reply: at step 0, a worker that processed step 0 is told to keep waiting (the
#: common polling reply, with the results the step misses); a worker at its start (-1) gets the
#: full parameter set.
STEPS = {"poll": 0, "full": -1}
#: (reply, concurrent clients, calls per client), full run (about 3-4 min on 2 cores) and --quick.
PLAN = [("poll", 1, 300), ("poll", 8, 100), ("poll", 32, 30), ("full", 8, 100)]
QUICK_PLAN = [("poll", 1, 40), ("poll", 8, 20), ("poll", 32, 6), ("full", 8, 12)]
#: (session tickets, keepAliveLapse) measured in each row: a stock service and the local stack's,
#: with DIRAC's default lapse (None: not given, 150 s) and with keep-alive off (0)
SETTINGS = [(2, None), (1, None), (1, 0)]
#: phase 0 only, two jobs: the calibration never leaves step 0 with the agent stopped
CALIBRATION = {"numberOfJobs": 2, "stopStage": 1, "stopPhase": 0}
WARM_UP_CALLS = 5  # per reply kind, after each service restart
ROW_TIMEOUT = 300.0  # s; a row that takes longer means a hung service, not a slow one

_connects = {"port": None, "count": 0}


def _count_connects(event, args):
    """Audit hook: count the TCP connections this process opens to the service's port."""
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1][1] == _connects["port"]:
        _connects["count"] += 1


def _serve_calls(client, conn, task):
    """A client's part of a row: on (calibration, step, calls, client options, port) makes one
    warm-up call with a client made with those options, reports ready, waits for "go", then makes
    the calls and sends back (start, end, latencies, errors, connections opened)."""
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient

    (calibrationID, credential), step, calls, options, port = task
    if _connects["port"] is None:
        sys.addaudithook(_count_connects)
    _connects["port"] = port
    client = CalibrationClient(**options)
    warm = client.getNewParameters(calibrationID, step, credential)
    conn.send(None if warm["OK"] else warm["Message"])
    conn.recv()
    latencies, errors, connects = [], [], _connects["count"]
    start = time.perf_counter()
    for _ in range(calls):
        before = time.perf_counter()
        result = client.getNewParameters(calibrationID, step, credential)
        latencies.append(time.perf_counter() - before)
        if not result["OK"]:
            errors.append(result["Message"])
    conn.send((start, time.perf_counter(), latencies, errors, _connects["count"] - connects))


def _measure(pool, n_clients, task, service):
    """One row: the first ``n_clients`` clients run ``task`` at once. Returns the latencies, the wall
    time from the first start to the last end, the service's CPU seconds meanwhile and the
    connections the clients opened."""
    deadline = time.monotonic() + ROW_TIMEOUT
    active = pool.conns[:n_clients]
    for conn in active:
        conn.send(task)
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
        raise RuntimeError(f"{len(errors)} of {n_clients * task[2]} calls failed, e.g. {errors[0]}")
    wall = max(report[1] for report in reports) - min(report[0] for report in reports)
    return [lat for report in reports for lat in report[2]], wall, cpu, sum(report[4] for report in reports)


def _restart_service(stack, tickets):
    """Restart the service sending ``tickets`` session tickets; the rest of the stack keeps running."""
    stack.stop_service()
    stack.set_session_tickets(tickets)
    stack.start_service()
    return stack_process(stack, "service")


def _row(tickets, lapse, reply, n_clients, latencies, wall, cpu, connects):
    ms = sorted(lat * 1000 for lat in latencies)
    return (str(tickets), "150 (default)" if lapse is None else str(lapse), str(n_clients), reply, str(len(ms)),
            f"{len(ms) / wall:.1f}", f"{statistics.median(ms):.1f}", f"{percentile(ms, 99):.1f}",
            f"{cpu * 1000 / len(ms):.2f}", f"{connects / len(ms):.2f}")


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
    args = argument_parser(__doc__, "fewer calls: about 40 s instead of 3-4 min").parse_args(argv)
    plan = QUICK_PLAN if args.quick else PLAN
    load = os.getloadavg()[0]
    measured, began = {}, time.monotonic()
    with bench_stack(args.workdir) as stack:
        proxy = str(stack.pki.proxy("alice"))
        calibration = create_calibration(stack, gamma_samples(stack, 2), CALIBRATION)
        with ClientPool(max(n for _, n, _ in plan), proxy, _serve_calls, ROW_TIMEOUT) as pool:
            current = None
            for index, (reply, n_clients, calls) in enumerate(plan):
                # A B C, C B A, ...: the settings of a row are measured back to back, so that a change
                # in the load of the machine hits them alike, with one service restart per row
                for tickets, lapse in SETTINGS if index % 2 == 0 else SETTINGS[::-1]:
                    if tickets != current:
                        service, current = _restart_service(stack, tickets), tickets
                        _warm_up(calibration, proxy)
                    options = {"proxyLocation": proxy, **({} if lapse is None else {"keepAliveLapse": lapse})}
                    task = (calibration, STEPS[reply], calls, options, stack.service_port)
                    measured[reply, n_clients, tickets, lapse] = _measure(pool, n_clients, task, service)
                    progress(began, f"measured tickets={tickets} keepAliveLapse={lapse} clients={n_clients} "
                                    f"reply={reply}")
    print_table(("session tickets", "keepAliveLapse s", "clients", "reply", "calls", "calls/s", "median ms",
                 "p99 ms", "service CPU ms/call", "connections/call"),
                [_row(tickets, lapse, reply, n, *measured[reply, n, tickets, lapse])
                 for reply, n, _ in plan for tickets, lapse in SETTINGS])
    print(f"{machine_line(load)}; clients are processes on the same cores; session tickets: 2 is OpenSSL's "
          "default (a stock service), 1 the local stack's (LocalStack/config.OPENSSL_CONFIG); poll = "
          "getNewParameters(id, 0) -> wait, full = getNewParameters(id, -1) -> the parameter set; "
          "connections/call: TCP connections the clients opened to the service, per call")


if __name__ == "__main__":
    main()
