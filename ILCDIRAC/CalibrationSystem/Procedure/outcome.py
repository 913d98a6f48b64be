"""What a phase's analysis of one step returns, and what its plots show.

The plots are kept with their step (``encode_plots``) until they are drawn, after the next step
has started: drawing takes longer than the analysis itself and the next constants do not need it.
"""
import json
import zlib
from dataclasses import dataclass, field, fields

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


_PLOT_KINDS = {kind.__name__: kind for kind in (Distribution, Scatter)}


def _plain(value):
    """A JSON value for a plot field: arrays and tuples become lists, numpy numbers Python ones."""
    if isinstance(value, (np.ndarray, tuple, list)):
        return np.asarray(value, dtype=float).tolist()
    return value.item() if isinstance(value, np.generic) else value


def encode_plots(plots):
    """Plots not drawn yet, as bytes to keep with their step until they are drawn.

    :param dict plots: {file name: Distribution or Scatter}
    :return: bytes (compressed JSON)
    """
    records = {name: {"kind": type(plot).__name__, **{f.name: _plain(getattr(plot, f.name)) for f in fields(plot)}}
               for name, plot in plots.items()}
    return zlib.compress(json.dumps(records).encode())


def decode_plots(data):
    """The plots kept by ``encode_plots``.

    :param bytes data: what encode_plots returned
    :return: {file name: Distribution or Scatter}
    """
    plots = {}
    for name, record in json.loads(zlib.decompress(data)).items():
        kind = _PLOT_KINDS[record.pop("kind")]
        values = {}
        for f in fields(kind):
            value = record[f.name]
            if f.type is np.ndarray:
                value = np.asarray(value, dtype=float)
            elif isinstance(value, list):
                value = tuple(value)
            values[f.name] = value
        plots[name] = kind(**values)
    return plots
