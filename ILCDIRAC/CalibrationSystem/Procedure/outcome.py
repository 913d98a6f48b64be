"""What a phase's analysis of one step returns, and what its plots show.

The plots are kept with their step (``encode_plots``) until they are drawn, after the next step
has started: drawing takes longer than the analysis itself and the next constants do not need it.
"""
import json
import math
import zlib
from dataclasses import MISSING, dataclass, field, fields

import numpy as np

#: The histogram shown for a fitted peak spans this many widths (sigma) either side of the peak.
DISPLAY_SIGMAS = 5.0
#: At most this many bins are shown: a wide range gets coarser bins.
MAX_DISPLAY_BINS = 120
#: How a MIP peak is found (Distribution.method), without a fit: the centre of the fullest bin, or
#: of the bin PandoraAnalysis' peak finder picks.
FULLEST_BIN = "fullest bin"
PEAK_FINDER = "peak finder"


@dataclass(frozen=True)
class Distribution:
    """A 1-D distribution the analysis measured, with the window and fit it used.

    The histogram shown need not be the one the peak was measured in: a fitted peak is shown in
    bins suited to its width (``fit_bin_width`` then gives the width of the fit's bins, and the
    Gaussian's amplitude is per shown bin); entries outside it are counted in ``below``/``above``.
    """

    name: str  # plot file stem, e.g. 'ecal_barrel'
    title: str
    xlabel: str
    counts: np.ndarray
    edges: np.ndarray
    window: tuple | None = None  # (low, high) range the peak was taken from
    gaussian: tuple | None = None  # (amplitude per shown bin, mean, sigma) of an accepted Gaussian fit
    peak: float | None = None  # the peak position that was used
    target: float | None = None  # where the peak should be
    below: float = 0.0  # entries below the first edge
    above: float = 0.0  # entries above the last edge
    mean_error: float | None = None  # statistical error on the peak
    chi2: float | None = None  # of the Gaussian fit
    ndf: int | None = None
    fit_bin_width: float | None = None  # width of the bins the peak was measured in, if not those shown
    method: str = ""  # how the peak was found: 'gaussian', 'window-mean', 'fullest bin', 'peak finder'

    @classmethod
    def of_peak(cls, peak, name, title, xlabel, target=None, values=None):
        """The distribution behind a histogram.PeakFit; with ``values`` (those the peak was
        measured on) shown in bins suited to the peak's width around it.

        :param peak: a histogram.PeakFit
        :param str name: plot file stem
        :param str title: plot title
        :param str xlabel: x axis label
        :param float target: where the peak should be (None: not drawn)
        :param values: the values the peak was measured on (None: show the fit's own histogram)
        :return: Distribution
        """
        counts, edges, below, above = peak.counts, peak.edges, 0.0, 0.0
        fit_width = float(peak.edges[1] - peak.edges[0])
        scale, fit_bin_width = 1.0, None
        if values is not None:
            finite = np.asarray(values, dtype=float)
            finite = finite[np.isfinite(finite)]
            sigma = peak.sigma if peak.sigma > 0 else fit_width  # a window-mean of one bin has no width
            shown = [peak.mean - DISPLAY_SIGMAS * sigma, peak.mean + DISPLAY_SIGMAS * sigma,
                     peak.window_low, peak.window_high] + ([target] if target is not None else [])
            counts, edges, below, above = display_histogram(finite, min(shown), max(shown), sigma)
            scale, fit_bin_width = float(edges[1] - edges[0]) / fit_width, fit_width
        gaussian = (peak.amplitude * scale, peak.mean, peak.sigma) if peak.method == "gaussian" else None
        return cls(name, title, xlabel, counts, edges, (peak.window_low, peak.window_high), gaussian, peak.mean,
                   target, below, above, peak.mean_error, peak.chi2, peak.ndf, fit_bin_width, peak.method)


def nice_width(width, at_least=False):
    """The nearest of 1, 2, 2.5, 5 x 10^k to ``width`` (the smallest not below it with
    ``at_least``): bin widths a reader can add up.

    :param float width: a positive width
    :param bool at_least: round up instead of down
    :return: float
    """
    power = 10.0 ** math.floor(math.log10(width) + 1e-9)
    steps = [power * step for step in (1.0, 2.0, 2.5, 5.0, 10.0)]
    if at_least:
        return next(step for step in steps if step >= width * (1 - 1e-9))
    return min(steps, key=lambda step: abs(math.log(step / width)))


def display_histogram(values, low, high, sigma):
    """Counts of ``values`` over [low, high] in bins of about a quarter of the peak width (wider
    with few entries, so that bins are not mostly empty; at most MAX_DISPLAY_BINS), and the
    entries below and above.

    :param values: finite values
    :param float low: lowest value to show
    :param float high: highest value to show
    :param float sigma: the peak's width (positive)
    :return: (counts, edges, entries below, entries above)
    """
    values = np.asarray(values, dtype=float)
    width = nice_width(sigma * max(0.25, 2.5 / max(values.size, 1) ** (1 / 3)))
    if (high - low) / width > MAX_DISPLAY_BINS:
        width = nice_width((high - low) / MAX_DISPLAY_BINS, at_least=True)
    first, last = math.floor(low / width), math.ceil(high / width)
    edges = np.arange(first, last + 1) * width
    counts, edges = np.histogram(values, bins=edges)
    return counts.astype(float), edges, float(np.sum(values < edges[0])), float(np.sum(values > edges[-1]))


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
class PdfComparison:
    """Signal and background distributions of one variable (the photon training's PDFs), each as
    a fraction of its events per bin; ``*_outside`` are the fractions in under- and overflow."""

    name: str
    title: str
    xlabel: str
    edges: np.ndarray
    signal: np.ndarray
    background: np.ndarray
    signal_outside: float = 0.0
    background_outside: float = 0.0
    signal_events: float = 0.0
    background_events: float = 0.0


@dataclass(frozen=True)
class PhaseOutcome:
    """The analysis of one step.

    ``constants``: the complete new constants; ``metrics``: flat name -> float or str;
    ``converged``: the phase's convergence verdict; ``plots``: Distribution/Scatter objects;
    ``artifacts``: name -> bytes produced by the step (e.g. 'photonLikelihood');
    ``uncertainties``: the statistical uncertainty (1 standard deviation) of each new constant the
    step measured, in the constant's shape (a list for a vector constant); ``statistics_note``: ''
    or why the phase is statistics-limited (phase_tools.statistics_verdict), in which case
    ``converged`` says only that the measured deviation is within the accuracy.
    """

    constants: dict
    metrics: dict
    converged: bool
    plots: tuple = ()
    artifacts: dict = field(default_factory=dict)
    uncertainties: dict = field(default_factory=dict)
    statistics_note: str = ""


_PLOT_KINDS = {kind.__name__: kind for kind in (Distribution, Scatter, PdfComparison)}


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
            # plots kept by an earlier version lack the fields added since: their defaults
            value = record.get(f.name, f.default) if f.default is not MISSING else record[f.name]
            if f.type is np.ndarray:
                value = np.asarray(value, dtype=float)
            elif isinstance(value, list):
                value = tuple(value)
            values[f.name] = value
        plots[name] = kind(**values)
    return plots
