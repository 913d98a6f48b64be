"""Do the statistical tolerances of the synthetic detector hold? And how fast is the model?

Why: the end-to-end test asserts every constant within Simulation/tolerances.statistical_tolerances
of the expected run's final constants (Simulation/fixed_points.expected_run). Those tolerances are
derived, not measured; this checks them on many independent samples of the test's size (8
workers x 500 events per sample): for each seed of the detector truth, the procedure's own
analyses (Procedure.phases collect/analyse) run the whole calibration in-process
(Simulation/direct_run), and the spread of the final constants is compared with the stated
statistical part and the total tolerance. A second table gives the iterations each phase took
against the expected run's. A third shows that the test catches approximate physics: the
expected run with an approximate algorithm in place of the reference's (a mean instead of the
fitted peak; the χ² minimum on its grid; CalibrHCALOther with μ_EC measured again after the
phase-1 update), and how far its final constants lie from the faithful ones in units of the
tolerance. The last gives the model's cost per step.

Run:  .venv/bin/python bench/tolerances.py [--samples N] [--events N] [--robust]
"""
import argparse
import dataclasses
import os
import platform
import time

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.constants import CONSTANTS
from ILCDIRAC.CalibrationSystem.Procedure.hadronic_scale import intercept_grid
from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import COLUMN_SAMPLES, DetectorTruth, generate
from ILCDIRAC.CalibrationSystem.Simulation.direct_run import run_directly
from ILCDIRAC.CalibrationSystem.Simulation.expected_hadronic import kaon_points
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import Measurement, expected_run, measure, phase_fixed_points
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


def _mean(mixture):
    """The mean of a selected energy, ∫(1 − F(x))dx."""
    x = np.linspace(0.0, mixture.maximum(1e6, 0.999999), 20001)
    return float(np.trapezoid(1.0 - mixture.cdf(x), x))


def _mean_instead_of_peak(approximated):
    def measurement(phase, truth, constants, settings, stage, events, endcap_mean=None):
        measured = measure(phase, truth, constants, settings, stage, events, endcap_mean)
        if phase != approximated:
            return measured
        return Measurement({name: _mean(mixture) for name, (mixture, _, _) in measured.peaks.items()}, measured.peaks)
    return measurement


def _grid_minimum(phase, truth, constants, settings, stage, events, endcap_mean=None):
    measured = measure(phase, truth, constants, settings, stage, events, endcap_mean)
    if phase != 4:
        return measured
    points = kaon_points(truth, constants, stage)
    grid = intercept_grid(float(settings['pandoraPFAAccuracy']))
    chi2 = np.array([[np.sum(points.weight * (points.x * a + points.y * b - a * b) ** 2
                             / (points.x * a * a + points.y * b * b)) for b in grid] for a in grid])
    i, j = np.unravel_index(int(np.argmin(chi2)), chi2.shape)  # the first minimum, as the reference's scan
    return Measurement({'ecalIntercept': float(grid[i]), 'hcalIntercept': float(grid[j])}, {})


def _remeasured_endcap_mean(phase, truth, constants, settings, stage, events, endcap_mean=None):
    if phase == 2:
        endcap_mean = measure(1, truth, constants, settings, stage, events).values['hcalEndcap']
    return measure(phase, truth, constants, settings, stage, events, endcap_mean)


APPROXIMATIONS = {
    **{f'mean instead of the fitted peak (phase {phase})': _mean_instead_of_peak(phase) for phase in (0, 1, 3)},
    'chi-square minimum on its grid (phase 4)': _grid_minimum,
    'CalibrHCALOther with mu_EC measured after the update': _remeasured_endcap_mean,
}


def approximation_table(truth, settings, start, events, faithful, tolerances):
    header = ("approximation", "constant", "faithful", "approximate", "difference", "tolerance", "x tolerance")
    rows = []
    for label, measurement in APPROXIMATIONS.items():
        run = expected_run(truth, settings, start, events, measurement)
        changed = [(stage, phase, n, faithful.iterations[(stage, phase)])
                   for (stage, phase), n in run.iterations.items() if n != faithful.iterations[(stage, phase)]]
        shown = False
        for name in CONSTANTS:
            difference = _first(run.final_constants[name]) / _first(faithful.final_constants[name]) - 1
            if abs(difference) < 1e-9:
                continue
            rows.append((label if not shown else "", name, f"{_first(faithful.final_constants[name]):.5g}",
                         f"{_first(run.final_constants[name]):.5g}", f"{difference:+.2%}",
                         f"{tolerances[name].total:.2%}", f"{abs(difference) / tolerances[name].total:.1f}"))
            shown = True
        for stage, phase, n, expected in changed:
            rows.append(("" if shown else label, f"iterations {stage}/{phase}", str(expected), str(n), "", "", ""))
            shown = True
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
    parser.add_argument("--robust", action="store_true", help="the model's robustness mode")
    args = parser.parse_args()
    truth = DetectorTruth(robustness=args.robust)
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
    runs = [run_directly(dataclasses.replace(truth, seed=truth.seed + 1 + i), settings, start, args.events)
            for i in range(args.samples)]
    direct_time = (time.perf_counter() - began) / args.samples
    print(f"\n{args.samples} independent samples of {args.events} events per sample and step, start constants"
          f" {START_OFFSET:.0%} off the fixed points, default settings{', robustness mode' if args.robust else ''};"
          " deviations from the expected run's final constants (relative)")
    tolerance_table(runs, run.final_constants, tolerances, limits)
    print("\nIterations per phase: the expected run's, and how many runs took how many")
    iteration_table(runs, run.iterations)
    print("\nApproximate algorithms on the expected distributions: their final constants against the faithful ones")
    approximation_table(truth, settings, start, args.events, run, tolerances)
    print(f"\nexpected run {expected_time:.1f} s, tolerances {tolerance_time:.1f} s,"
          f" one in-process calibration {direct_time:.2f} s ({len(runs[0])} steps)")
    print("\nModel cost per step (all events of a sample at once, start constants)")
    speed_table(truth, start, args.events)


if __name__ == "__main__":
    main()
