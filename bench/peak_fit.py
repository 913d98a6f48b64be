"""The peak estimator (Procedure/histogram.fit_peak) on Gaussian samples: time per fit, the spread
of the fitted means, the mean fit error and how often it covers the true mean, for sample sizes
from 100 to 10000 at the default accuracy (0.5 GeV reference bins on a σ = 0.55 GeV peak).

Run: .venv/bin/python bench/peak_fit.py [--toys N]
"""
import argparse
import time

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.histogram import fit_peak

TRUE_MEAN, SIGMA, ACCURACY, ENERGY = 10.0, 0.55, 0.05, 10.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toys", type=int, default=500, help="samples per size (default 500)")
    toys = parser.parse_args().toys
    rng = np.random.default_rng(1)
    print(f"{'entries':>8}{'ms/fit':>9}{'spread':>9}{'fit error':>11}{'covers':>8}{'gaussian':>10}")
    for entries in (100, 400, 1000, 4000, 10000):
        samples = [rng.normal(TRUE_MEAN, SIGMA, entries) for _ in range(toys)]
        start = time.perf_counter()
        peaks = [fit_peak(sample, ACCURACY, ENERGY) for sample in samples]
        elapsed = (time.perf_counter() - start) / toys
        means = np.array([peak.mean for peak in peaks])
        errors = np.array([peak.mean_error for peak in peaks])
        covers = np.mean(np.abs(means - TRUE_MEAN) < errors)
        fitted = np.mean([peak.method == "gaussian" for peak in peaks])
        print(f"{entries:>8}{elapsed * 1e3:>9.2f}{means.std():>9.4f}{errors.mean():>11.4f}{covers:>8.1%}{fitted:>10.1%}")
    print(f"covers: share of the {toys} samples whose true mean lies within the fit error (68.3 % expected)")


if __name__ == "__main__":
    main()
