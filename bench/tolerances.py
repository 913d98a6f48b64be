"""Do the statistical tolerances of the synthetic detector hold? And how fast is the model?

Why: the end-to-end test asserts every constant within Simulation/tolerances.statistical_tolerances
of the expected run's final constants (Simulation/fixed_points.expected_run). Those tolerances are
derived, not measured; this checks them on many independent samples of the test's size (8
workers x 500 events per sample): for each seed of the detector truth, the procedure's own
analyses (Procedure.phases collect/analyse) run the whole calibration in-process
(Simulation/direct_run), and the spread of the final constants is compared with the stated
statistical part and the total tolerance. A second table gives the iterations each phase took
against the expected run's, a third the model's cost per step.

Run:  .venv/bin/python bench/tolerances.py [--samples N] [--events N]
"""
import argparse
import os
import platform
import time

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.constants import CONSTANTS
from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import COLUMN_SAMPLES, DetectorTruth, generate
from ILCDIRAC.CalibrationSystem.Simulation.direct_run import run_directly
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import expected_run, phase_fixed_points
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import initial_constants
from ILCDIRAC.CalibrationSystem.Simulation.tolerances import statistical_tolerances

START_OFFSET = 0.15  # as the test's samples


def _first(value):
    return value[0] if isinstance(value, list) else value


def _print_table(header, rows):
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths)))


def _machine_line():
    return (f"machine: nproc {len(os.sched_getaffinity(0))}, {platform.machine()}, python {platform.python_version()},"
            f" numpy {np.__version__}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def tolerance_table(runs, expected, tolerances, limits):
    header = ("constant", "expected", "fixed point", "tolerance", "stat", "quantis.",
              "mean dev", "std dev", "std/stat", "max |dev|", "outside")
    rows = []
    for name in CONSTANTS:
        deviations = np.array([_first(run[-1].new_constants[name]) / _first(expected[name]) - 1.0 for run in runs])
        tolerance = tolerances[name]
        ratio = f"{deviations.std() / tolerance.statistical:.2f}" if tolerance.statistical else ""
        rows.append((name, f"{_first(expected[name]):.5g}", f"{_first(limits[name]):.5g}", f"{tolerance.total:.2%}",
                     f"{tolerance.statistical:.2%}", f"{tolerance.quantisation:.2%}",
                     f"{deviations.mean():+.2%}", f"{deviations.std():.2%}", ratio,
                     f"{np.abs(deviations).max():.2%}", int((np.abs(deviations) > tolerance.total).sum())))
    _print_table(header, rows)


def iteration_table(runs, expected_iterations):
    header = ("stage", "phase", "expected", "observed (runs)")
    rows = []
    for (stage, phase), count in expected_iterations.items():
        observed = {}
        for run in runs:
            n = max(step.iteration for step in run if (step.stage, step.phase) == (stage, phase))
            observed[n] = observed.get(n, 0) + 1
        rows.append((stage, phase, count, ", ".join(f"{n}: {k}" for n, k in sorted(observed.items()))))
    _print_table(header, rows)


def speed_table(truth, constants, events):
    header = ("sample", "events", "generate [s]", "events/s")
    rows = []
    numbers = np.arange(events, dtype=np.int64)
    for sample in COLUMN_SAMPLES:
        start = time.perf_counter()
        generate(sample, numbers, constants, truth)
        elapsed = time.perf_counter() - start
        rows.append((sample, events, f"{elapsed:.3f}", f"{events / elapsed:.3g}"))
    _print_table(header, rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100, help="independent samples (seeds), default 100")
    parser.add_argument("--events", type=int, default=4000, help="generated events per sample and step, default 4000")
    args = parser.parse_args()
    truth = DetectorTruth()
    settings = validate_settings({})
    start = initial_constants(truth, START_OFFSET)
    print(_machine_line())
    began = time.perf_counter()
    run = expected_run(truth, settings, start, args.events)
    expected_time = time.perf_counter() - began
    began = time.perf_counter()
    tolerances = statistical_tolerances(truth, settings, start, args.events, run=run)
    tolerance_time = time.perf_counter() - began
    limits = {name: value for values in phase_fixed_points(truth)[3].values() for name, value in values.items()}
    began = time.perf_counter()
    runs = [run_directly(DetectorTruth(seed=truth.seed + 1 + i), settings, start, args.events)
            for i in range(args.samples)]
    direct_time = (time.perf_counter() - began) / args.samples
    print(f"\n{args.samples} independent samples of {args.events} events per sample and step, start constants"
          f" {START_OFFSET:.0%} off the fixed points, default settings; deviations from the expected run's final"
          " constants (relative)")
    tolerance_table(runs, run.final_constants, tolerances, limits)
    print("\nIterations per phase: the expected run's, and how many runs took how many")
    iteration_table(runs, run.iterations)
    print(f"\nexpected run {expected_time:.1f} s, tolerances {tolerance_time:.1f} s,"
          f" one in-process calibration {direct_time:.2f} s ({len(runs[0])} steps)")
    print("\nModel cost per step (all events of a sample at once, start constants)")
    speed_table(truth, start, args.events)


if __name__ == "__main__":
    main()
