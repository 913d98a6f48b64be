"""What a phase's analysis of one step returns, and what its plots show."""
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Distribution:
    """A 1-D distribution the analysis measured, with the window and fit it used."""

    name: str  # plot file stem, e.g. 'ecal_barrel'
    title: str
    xlabel: str
    counts: np.ndarray
    edges: np.ndarray
    window: tuple | None = None  # (low, high) range the peak was taken from
    gaussian: tuple | None = None  # (amplitude, mean, sigma) of an accepted Gaussian fit
    peak: float | None = None  # the peak position that was used
    target: float | None = None  # where the peak should be

    @classmethod
    def of_peak(cls, peak, name, title, xlabel, target=None):
        """The distribution behind a histogram.PeakFit.

        :param peak: a histogram.PeakFit
        :param str name: plot file stem
        :param str title: plot title
        :param str xlabel: x axis label
        :param float target: where the peak should be (None: not drawn)
        :return: Distribution
        """
        gaussian = (peak.amplitude, peak.mean, peak.sigma) if peak.method == "gaussian" else None
        return cls(name, title, xlabel, peak.counts, peak.edges, (peak.window_low, peak.window_high), gaussian,
                   peak.mean, target)


@dataclass(frozen=True)
class Scatter:
    """A 2-D point cloud the analysis fitted a line to (the hadronic chi-square method)."""

    name: str
    title: str
    xlabel: str
    ylabel: str
    x: np.ndarray
    y: np.ndarray
    line: tuple | None = None  # (x intercept, y intercept) of the fitted line x/b + y/a = 1
    target: float | None = None  # the ideal intercept of both axes


@dataclass(frozen=True)
class PhaseOutcome:
    """The analysis of one step.

    ``constants``: the complete new constants; ``metrics``: flat name -> float or str;
    ``converged``: the phase's convergence verdict; ``plots``: Distribution/Scatter objects;
    ``artifacts``: name -> bytes produced by the step (e.g. 'photonLikelihood').
    """

    constants: dict
    metrics: dict
    converged: bool
    plots: tuple = ()
    artifacts: dict = field(default_factory=dict)
