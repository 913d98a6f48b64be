"""Machinery shared by the benchmarks that load a real CalibrationService (rpc.py, service.py).

Why one place: both start a throw-away local stack, create calibrations of alice, drive the
service from long-lived client processes, and report in the same table and machine-line format;
a fix to any of these (a timeout, the clean-up after a failure) must reach both.
"""
import argparse
import contextlib
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

from ILCDIRAC.CalibrationSystem.LocalStack.stack import LocalStack

SOFTWARE_VERSION = "ILCSoft-2019-04-01_gcc62"
EVENTS_PER_FILE = 100  # synthetic gamma events per file: a benchmark measures the service, not the samples


def argument_parser(doc, quick_help):
    """The options every benchmark has: --quick (a smaller plan) and --workdir (keep the stack)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--workdir", help="stack directory (default: a temporary one, removed afterwards)")
    return parser


@contextlib.contextmanager
def bench_stack(workdir=None, overrides=None, agent=False):
    """A started local stack, and this process acting as alice with DIRAC initialised.

    Unless ``agent``, the agent is stopped so that calibrations stay at the step the benchmark
    drives them to and no worker job competes for the CPU. On exit the stack is stopped; a temporary directory is
    removed after a success, and any directory is kept (and named) after a failure, for its logs.
    """
    path = Path(workdir or tempfile.mkdtemp(prefix="calibration-bench-"))
    stack = LocalStack(path, overrides=overrides)
    ok = False
    try:
        stack.start()
        if not agent:
            stack.stop_agent()
        # this process (and the client processes it starts) use exactly alice's DIRAC setup
        os.environ.clear()
        os.environ.update(stack.user_env("alice"))
        import DIRAC

        DIRAC.initialize(require_auth=False)
        yield stack
        ok = True
    finally:
        stack.stop()
        if not workdir and ok:
            shutil.rmtree(path, ignore_errors=True)
        elif not ok:
            print(f"stack directory kept for its logs: {path}", file=sys.stderr)


def gamma_samples(stack, files):
    """Synthetic samples in the stack directory with ``files`` gamma files of EVENTS_PER_FILE events."""
    from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import write_samples

    return write_samples(stack.workdir / "bench-samples", events_per_file=EVENTS_PER_FILE, files_per_sample=files)


def create_calibration(stack, samples, settings):
    """A gamma-only calibration of alice with ``settings`` (numberOfJobs included), and the
    credential its workers call with (the Workers methods take it as their last argument)."""
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient

    result = CalibrationClient(proxyLocation=str(stack.pki.proxy("alice"))).createCalibration(
        {"gamma": samples["inputFiles"]["gamma"]}, {"gamma": samples["numberOfEventsPerFile"]["gamma"]},
        {"steeringFile": samples["steeringFile"], "softwareVersion": SOFTWARE_VERSION, **settings})
    if not result["OK"]:
        raise RuntimeError(f"Cannot create the benchmark's calibration: {result['Message']}")
    credential = CalibrationClient(useCertificates=True).getWorkerCredential(result["Value"])
    if not credential["OK"]:
        raise RuntimeError(f"Cannot get the workers' credential: {credential['Message']}")
    return result["Value"], credential["Value"]


def stack_process(stack, name):
    """The running stack process ``name`` ('service', 'mariadb'), to read its CPU time."""
    return psutil.Process(stack.status()["processes"][name]["pid"])


def cpu_seconds(process):
    """CPU time of ``process`` and of the children it has waited for, in seconds."""
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def _client_process(conn, proxy, serve, call_timeout):
    """A client process: says "started" once DIRAC is set up, then hands every task it receives
    to ``serve(client, conn, task)``, which answers on ``conn``; None ends it."""
    import DIRAC

    DIRAC.initialize(require_auth=False)
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient

    client = CalibrationClient(proxyLocation=proxy)
    if call_timeout is not None:
        client.timeout = call_timeout
    conn.send("started")
    while (task := conn.recv()) is not None:
        serve(client, conn, task)


class ClientPool:
    """Long-lived client processes, started once and reused for every row, so that the numbers
    are the service's, not the GIL of the benchmark.

    They come from a forkserver that has imported (not initialised) DIRAC: importing it is
    single-threaded, and 32 clients start in ~4 s instead of ~25 s with plain spawn. ``serve``
    must be a module-level function (it is pickled to the processes). Use it as a context
    manager, so that the processes end before the stack stops.
    """

    def __init__(self, size, proxy, serve, start_timeout, call_timeout=None):
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["DIRAC", "ILCDIRAC.CalibrationSystem.Client.CalibrationClient"])
        self.conns, self.procs = [], []
        for _ in range(size):
            parent, child = context.Pipe()
            proc = context.Process(target=_client_process, args=(child, proxy, serve, call_timeout), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        # no row may start while other clients still import DIRAC on the same cores
        try:
            self.gather(self.conns, time.monotonic() + start_timeout)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def gather(conns, deadline):
        """One message from each of ``conns``, or RuntimeError once ``deadline`` (monotonic) passes."""
        messages = []
        for conn in conns:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise RuntimeError("a client process did not answer in time; see the service log")
            try:
                messages.append(conn.recv())
            except EOFError:
                raise RuntimeError("a client process died; its traceback is printed above") from None
        return messages

    def close(self):
        """End the processes: politely, then by SIGTERM for one that hangs."""
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

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def percentile(values, q):
    """The q-th percentile, never outside the measured range (inclusive method); one value is its own."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def print_table(header, rows):
    """Right-aligned columns as wide as their widest cell: readable in a terminal and in a diff."""
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
    for cells in [header, *rows]:
        print("  ".join(cell.rjust(width) for cell, width in zip(cells, widths)))


def machine_line(load):
    """The start of the line under a table: what the numbers depend on (cores, versions, and the
    machine's load before the run, ``load``, since clients and service share the cores)."""
    return (f"# nproc {len(os.sched_getaffinity(0))} ({platform.machine()}), Python {platform.python_version()}, "
            f"DIRAC {version('DIRAC')}, load average {load:.2f} before the run")


def progress(began, message):
    """A progress line on stderr (stdout holds only the tables), with the seconds since ``began``."""
    print(f"[{time.monotonic() - began:5.1f} s] {message}", file=sys.stderr)
