"""Service-side cost of every implemented phase's analysis, and what a worker uploads.

Why: the service analyses a step in its request thread when the last result arrives, so decoding
100 worker summaries and running the phase's analyse() must stay cheap in time and memory as the
event count grows; and a worker's summary should be much smaller than the PfoAnalysis ROOT file
it replaces on the network.

Events come from the synthetic detector model (Simulation/detector_model.generate: the phase's
samples, reconstructed with the demo's start constants), one slice per worker, reduced by the
phase's collect(), encoded with summary.encode_summary and decoded back as the service does.
Each measurement runs in a forked child, so that its maximum-RSS increase is its own: the child
starts with the RSS of the parent at the fork, not with the parent's earlier peak. Phases are
those registered in Procedure.phases.PHASES when the script runs; samples the model cannot
generate are skipped with a note.

Run:  .venv/bin/python bench/analysis.py [--quick]
"""
import argparse
import gc
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
import tracemalloc

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.phases import PHASES
from ILCDIRAC.CalibrationSystem.Procedure.procedure import STAGES
from ILCDIRAC.CalibrationSystem.Procedure.settings import create_settings
from ILCDIRAC.CalibrationSystem.Procedure.summary import decode_summary, encode_summary
from ILCDIRAC.CalibrationSystem.Simulation import detector_model
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import initial_constants

#: The bench times decoding at any size; the service's MaxResultSize is not what it measures.
NO_SIZE_LIMIT = 1 << 40

WORKERS = 100
EVENTS = (10**4, 10**5, 10**6)
QUICK_EVENTS = (10**3, 10**4)
SIZE_EVENTS = (100, 1000, 10000)
QUICK_SIZE_EVENTS = (100, 1000)
START_OFFSET = 0.15  # start constants 15 % off the fixed points, as the demo's samples
REPEATS = 3  # analyse() timings: the best of this many calls (one call when a call takes > 2 s)
MB = 1024 * 1024


def _machine_line():
    return (f"machine: nproc {len(os.sched_getaffinity(0))}, {platform.machine()}, python {platform.python_version()},"
            f" numpy {np.__version__}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def _stage(phase_id):
    """The first stage that runs the phase (phase 5, the photon training, only runs in stage 2)."""
    return min(stage for stage, phases in STAGES.items() if phase_id in phases)


def _missing_samples(phase):
    return [sample for sample in phase.samples if sample not in detector_model.SUPPORTED_SAMPLES]


def _worker_outputs(phase, first_event, n_events, constants, truth):
    """{sample: ReconstructionOutput} of one worker's slice, as its reconstruction would give them."""
    events = np.arange(first_event, first_event + n_events, dtype=np.int64)
    return {sample: detector_model.generate(sample, events, constants, truth, _stage(phase.id))
            for sample in phase.samples}


def _worker_summaries(phase, total_events, constants, settings, truth):
    """The 100 workers' encoded summaries for ``total_events`` events split evenly among them."""
    per_worker = total_events // WORKERS
    encoded = []
    for worker in range(WORKERS):
        outputs = _worker_outputs(phase, worker * per_worker, per_worker, constants, truth)
        encoded.append(encode_summary(phase.id, phase.collect(outputs, settings)))
    return encoded


def _measure(phase_id, encoded, constants, settings, pipe):
    """In the forked child: decode the summaries, time analyse(), then its tracemalloc peak."""
    phase = PHASES[phase_id]
    try:
        gc.collect()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        summaries = [decode_summary(content, phase_id, NO_SIZE_LIMIT) for content in encoded]
        decode_time = time.perf_counter() - start
        times = []
        while len(times) < REPEATS and sum(times) < 2.0:
            start = time.perf_counter()
            phase.analyse(summaries, constants, settings)
            times.append(time.perf_counter() - start)
        rss_delta = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
        tracemalloc.start()
        phase.analyse(summaries, constants, settings)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        pipe.send(("ok", decode_time, min(times), len(times), peak, rss_delta))
    except Exception as error:  # a benchmark row reports any failure of the analysis instead of stopping
        pipe.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        pipe.close()


def _in_child(phase_id, encoded, constants, settings):
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_measure, args=(phase_id, encoded, constants, settings, sender))
    child.start()
    sender.close()
    result = receiver.recv()
    child.join()
    return result


def _print_table(header, rows):
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths)))


def analysis_table(phases, event_counts, constants, settings, truth):
    header = ("phase", "events", "upload [kB]", "generate [s]", "decode 100 [ms]", "analyse [ms]",
              "tracemalloc peak [MB]", "maxRSS + [MB]")
    rows = []
    for phase in phases:
        for total in event_counts:
            start = time.perf_counter()
            encoded = _worker_summaries(phase, total, constants, settings, truth)
            generate_time = time.perf_counter() - start
            upload = sum(len(content) for content in encoded) / 1024
            result = _in_child(phase.id, encoded, constants, settings)
            label = f"{phase.id} {phase.name}"
            if result[0] == "error":
                rows.append((label, f"{total:.0e}", f"{upload:.0f}", f"{generate_time:.1f}", result[1], "", "", ""))
                continue
            _, decode_time, best, calls, peak, rss_delta = result
            rows.append((label, f"{total:.0e}", f"{upload:.0f}", f"{generate_time:.1f}", f"{decode_time * 1e3:.1f}",
                         f"{best * 1e3:.1f} (best of {calls})", f"{peak / MB:.1f}", f"{rss_delta / MB:.1f}"))
    _print_table(header, rows)


def _raw_file_size(outputs, directory):
    """Bytes of the PfoAnalysis ROOT files (or likelihood XML) the worker would otherwise upload."""
    try:
        from ILCDIRAC.CalibrationSystem.Worker.pfoanalysis_file import write_pfoanalysis
    except ImportError:
        return "n/a (pfoanalysis_file not available)"
    sizes, kinds = 0, set()
    for sample, output in outputs.items():
        if output.columns:
            path = os.path.join(directory, f"{sample}.root")
            write_pfoanalysis(path, output)
            sizes += os.path.getsize(path)
            kinds.add("ROOT")
        else:
            sizes += len(output.likelihood or b"")
            kinds.add("likelihood XML")
    return sizes, " + ".join(sorted(kinds))


def size_table(phases, event_counts, constants, settings, truth):
    header = ("phase", "events/worker", "summary [B]", "raw file [B]", "raw / summary", "raw file kind")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as directory:
        for phase in phases:
            for n_events in event_counts:
                outputs = _worker_outputs(phase, 0, n_events, constants, truth)
                summary = len(encode_summary(phase.id, phase.collect(outputs, settings)))
                raw = _raw_file_size(outputs, directory)
                if isinstance(raw, str):
                    rows.append((f"{phase.id} {phase.name}", n_events, summary, raw, "", ""))
                else:
                    rows.append((f"{phase.id} {phase.name}", n_events, summary, raw[0], f"{raw[0] / summary:.1f}",
                                 raw[1]))
    _print_table(header, rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 events only (< 30 s)")
    args = parser.parse_args()
    truth = detector_model.DetectorTruth()
    constants = initial_constants(truth, START_OFFSET)
    settings = create_settings("CLIC")
    print(_machine_line())
    phases = []
    for phase_id, phase in sorted(PHASES.items()):
        missing = _missing_samples(phase)
        if missing:
            print(f"note: phase {phase_id} ({phase.name}) skipped: the synthetic model cannot generate {missing}")
        else:
            phases.append(phase)
    print(f"phases: {', '.join(f'{p.id} {p.name}' for p in phases)}; {WORKERS} workers;"
          f" constants {START_OFFSET:.0%} off the model's fixed points; settings preset CLIC")
    print("\nService side: decode the 100 summaries, then analyse(); upload = all 100 encoded summaries;"
          "\ntracemalloc peak of one analyse(); maxRSS + = increase of the maximum RSS during decode and analyse")
    analysis_table(phases, QUICK_EVENTS if args.quick else EVENTS, constants, settings, truth)
    print("\nOne worker's encoded summary against the raw file its reconstruction writes")
    size_table(phases, QUICK_SIZE_EVENTS if args.quick else SIZE_EVENTS, constants, settings, truth)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
