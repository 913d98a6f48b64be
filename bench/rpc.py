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
import argparse
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import psutil

from ILCDIRAC.CalibrationSystem.LocalStack import config as stack_config
from ILCDIRAC.CalibrationSystem.LocalStack.stack import LocalStack

OPTION = "/Systems/Calibration/Services/Calibration/TCPNoDelay"
SOFTWARE_VERSION = "ILCSoft-2019-04-01_gcc62"
#: step argument -> reply: at step 0, a worker that processed step 0 gets None (keep waiting,
#: the common polling reply); a worker at its start (-1) gets the full parameter set.
STEPS = {"poll": 0, "full": -1}
#: (reply, concurrent clients, calls per client), full run (about 2-3 min on 2 cores) and --quick.
PLAN = [("poll", 1, 500), ("poll", 8, 200), ("poll", 32, 50), ("full", 8, 125)]
QUICK_PLAN = [("poll", 1, 60), ("poll", 8, 30), ("poll", 32, 8), ("full", 8, 15)]
WARM_UP_CALLS = 5  # per reply kind, after each service restart
ROW_TIMEOUT = 300.0  # s; a row that takes longer means a hung service, not a slow one


def _act_as(env):
    """Make this process (and the processes it spawns) use exactly ``env`` (a user's DIRAC setup)."""
    os.environ.clear()
    os.environ.update(env)


def _client_loop(conn, proxy):
    """A client process. Says "started" once DIRAC is set up; on ("run", id, step, calls) makes
    one warm-up call, reports ready, waits for "go", then makes the calls and sends back
    (start, end, latencies, errors); None ends it."""
    import DIRAC

    DIRAC.initialize(require_auth=False)
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient

    client = CalibrationClient(proxyLocation=proxy)
    conn.send("started")
    while (command := conn.recv()) is not None:
        _, (calibrationID, credential), step, calls = command
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


class ClientPool:
    """Long-lived client processes, reused for every row.

    They come from a forkserver that has imported (not initialised) DIRAC: importing it is
    single-threaded, and 32 clients start in ~4 s instead of ~25 s with plain spawn.
    """

    def __init__(self, size, proxy):
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["DIRAC", "ILCDIRAC.CalibrationSystem.Client.CalibrationClient"])
        self.conns, self.procs = [], []
        for _ in range(size):
            parent, child = context.Pipe()
            proc = context.Process(target=_client_loop, args=(child, proxy), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        # no row may start while other clients still import DIRAC on the same cores
        deadline = time.monotonic() + ROW_TIMEOUT
        for conn in self.conns:
            self._receive(conn, deadline)

    def _receive(self, conn, deadline):
        if not conn.poll(max(0.0, deadline - time.monotonic())):
            raise RuntimeError(f"a client did not answer within {ROW_TIMEOUT:.0f} s; see the service log")
        try:
            return conn.recv()
        except EOFError:
            raise RuntimeError("a client process died; its traceback is printed above") from None

    def run(self, n_clients, calibration, step, calls, service):
        """One row: the first ``n_clients`` clients make ``calls`` calls each, all at once."""
        deadline = time.monotonic() + ROW_TIMEOUT
        active = self.conns[:n_clients]
        for conn in active:
            conn.send(("run", calibration, step, calls))
        warm_errors = [message for conn in active if (message := self._receive(conn, deadline))]
        if warm_errors:
            raise RuntimeError(f"getNewParameters failed before the measurement: {warm_errors[0]}")
        cpu_before = _cpu_seconds(service)
        for conn in active:
            conn.send("go")
        reports = [self._receive(conn, deadline) for conn in active]
        cpu = _cpu_seconds(service) - cpu_before
        errors = [message for report in reports for message in report[3]]
        if errors:
            raise RuntimeError(f"{len(errors)} of {n_clients * calls} calls failed, e.g. {errors[0]}")
        wall = max(report[1] for report in reports) - min(report[0] for report in reports)
        return [lat for report in reports for lat in report[2]], wall, cpu

    def close(self):
        for conn, proc in zip(self.conns, self.procs):
            if proc.is_alive():
                try:
                    conn.send(None)
                except OSError:
                    pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def _cpu_seconds(process):
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def _create_calibration(stack):
    """One calibration of alice at step 0 (the agent is stopped, so it stays there), and the
    credential its workers call with."""
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient
    from ILCDIRAC.CalibrationSystem.Worker.synthetic_samples import write_samples

    samples = write_samples(stack.workdir / "bench-samples", events_per_file=100, files_per_sample=2)
    result = CalibrationClient(proxyLocation=str(stack.pki.proxy("alice"))).createCalibration(
        {"gamma": samples["inputFiles"]["gamma"]}, {"gamma": samples["numberOfEventsPerFile"]["gamma"]},
        {"steeringFile": samples["steeringFile"], "softwareVersion": SOFTWARE_VERSION, "numberOfJobs": 2,
         "stopStage": 1, "stopPhase": 0})
    if not result["OK"]:
        raise RuntimeError(f"Cannot create the benchmark's calibration: {result['Message']}")
    credential = CalibrationClient(useCertificates=True).getWorkerCredential(result["Value"])
    if not credential["OK"]:
        raise RuntimeError(f"Cannot get the workers' credential: {credential['Message']}")
    return result["Value"], credential["Value"]


def _set_tcp_nodelay(stack, enabled):
    """Restart the service with TCPNoDelay = ``enabled``; the option is rewritten in both cfg files
    of the stack (the service reads DIR/etc/dirac.cfg), the rest of the stack keeps running."""
    from diraccfg import CFG

    stack.stop_service()
    stack.overrides[OPTION] = str(enabled)
    for path in (stack.cfg_file, stack.host_root / "etc" / "dirac.cfg"):
        cfg = CFG().loadFromFile(str(path))
        failed = cfg.setOption(OPTION, str(enabled))  # None, or S_ERROR if the section is missing
        if failed:
            raise RuntimeError(f"Cannot set {OPTION} in {path}: {failed['Message']}")
        stack_config.write_config(cfg, path)
    stack.start_service()
    return psutil.Process(stack.status()["processes"]["service"]["pid"])


def _row(nodelay, reply, n_clients, latencies, wall, cpu):
    ms = sorted(lat * 1000 for lat in latencies)
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98]
    return (str(nodelay), str(n_clients), reply, str(len(ms)), f"{len(ms) / wall:.1f}",
            f"{statistics.median(ms):.1f}", f"{p99:.1f}", f"{cpu * 1000 / len(ms):.2f}")


def _print_table(rows):
    header = ("TCP_NODELAY", "clients", "reply", "calls", "calls/s", "median ms", "p99 ms", "service CPU ms/call")
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
    for cells in [header, *rows]:
        print("  ".join(cell.rjust(width) for cell, width in zip(cells, widths)))


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
        if (result["Value"] is None) != (reply == "poll"):
            raise RuntimeError(f"getNewParameters({calibrationID}, {step}) returned {result['Value']!r}: "
                               "the calibration is no longer waiting at step 0 (is an agent running?)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls: about 30 s instead of 2-3 min")
    parser.add_argument("--workdir", help="stack directory (default: a temporary one, removed afterwards)")
    args = parser.parse_args(argv)
    plan = QUICK_PLAN if args.quick else PLAN
    load = os.getloadavg()[0]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="calibration-bench-"))
    stack = LocalStack(workdir, overrides={OPTION: "False"})
    pool, measured, ok, began = None, {}, False, time.monotonic()
    try:
        stack.start()
        stack.stop_agent()
        _act_as(stack.user_env("alice"))
        import DIRAC

        DIRAC.initialize(require_auth=False)
        proxy = str(stack.pki.proxy("alice"))
        calibration = _create_calibration(stack)
        pool = ClientPool(max(n for _, n, _ in plan), proxy)
        current = None
        for index, (reply, n_clients, calls) in enumerate(plan):
            # A B, B A, A B, ...: both settings of a row are measured back to back, so a change in
            # the load of the machine hits both alike, with one service restart per row
            for nodelay in (False, True) if index % 2 == 0 else (True, False):
                if nodelay != current:
                    service, current = _set_tcp_nodelay(stack, nodelay), nodelay
                    _warm_up(calibration, proxy)
                measured[reply, n_clients, nodelay] = pool.run(n_clients, calibration, STEPS[reply], calls, service)
                print(f"[{time.monotonic() - began:5.1f} s] measured TCP_NODELAY={nodelay} clients={n_clients} "
                      f"reply={reply}", file=sys.stderr)
        ok = True
    finally:
        if pool is not None:
            pool.close()
        stack.stop()
        if not args.workdir and ok:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            print(f"stack directory kept for its logs: {workdir}", file=sys.stderr)
    _print_table([_row(nodelay, reply, n, *measured[reply, n, nodelay])
                  for reply, n, _ in plan for nodelay in (False, True)])
    print(f"# nproc {len(os.sched_getaffinity(0))} ({platform.machine()}), Python {platform.python_version()}, "
          f"DIRAC {version('DIRAC')}, load average {load:.2f} before the run; clients are processes on the same "
          f"cores, one TLS connection per call; poll = getNewParameters(id, 0) -> None, "
          f"full = getNewParameters(id, -1) -> the parameter set")


if __name__ == "__main__":
    main()
