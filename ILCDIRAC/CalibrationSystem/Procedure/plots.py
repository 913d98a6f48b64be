"""PNG images of a step's plots (outcome.Distribution / outcome.Scatter) and of a calibration's convergence.

Why: a physicist judges a calibration by the peaks it fitted and by how the constants moved.
Drawing uses matplotlib's object-oriented API on an Agg canvas (no pyplot, no global figure or
backend state), so the threaded service can render concurrently; the PNG carries no software
version or time stamp, so the same plot always gives the same bytes.
"""
import io
import math
import re
from collections.abc import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from PIL import Image

from ILCDIRAC.CalibrationSystem.Procedure.constants import CONSTANTS
from ILCDIRAC.CalibrationSystem.Procedure.outcome import Distribution, Scatter
from ILCDIRAC.CalibrationSystem.Procedure.phases import PHASE_TABLE

DPI = 100
CONVERGENCE_DPI = 80
#: Colours of the PNG palette: anti-aliased text and lines need no more, and a palette image is a
#: third of the size of the RGBA one (a 13-panel convergence plot stays under 100 kB).
PALETTE_SIZE = 96
#: Above this many points a Scatter is drawn as a 2-D histogram: readable, and the PNG stays small.
MAX_MARKERS = 2000
DENSITY_BINS = 60
#: A Distribution's x axis ends a little beyond the bin where this fraction of the entries is reached.
SHOWN_FRACTION = 0.999
#: Height in inches of one line of the unchanged-constants table under the convergence panels.
FOOTER_LINE = 0.2
HISTORY_KEYS = ("Step", "Stage", "Phase", "Parameters")
_UNIT = re.compile(r"\[([^\]]+)\]\s*$")
#: Background colour of phase N in the convergence plot (light, so the points stay visible).
PHASE_COLOURS = ("#dbe9f6", "#fde0c5", "#d9f0d3", "#f2d4e8", "#e8e3f3", "#fff2b3")


def _png(figure, dpi=DPI):
    """The figure as a palette PNG. Pillow writes no time stamp or software version, so equal
    figures give equal bytes; quantising without dithering is deterministic."""
    figure.set_dpi(dpi)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    image.convert("RGB").quantize(PALETTE_SIZE, dither=Image.Dither.NONE).save(buffer, format="png")
    return buffer.getvalue()


def _array(values, name):
    """A finite 1-D float array, ValueError naming the field otherwise."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be a 1-D array of finite numbers, got shape {array.shape}")
    return array


def _unit(label):
    """'GeV' from 'ECal hit energy [GeV]'; '' without a unit in brackets."""
    match = _UNIT.search(label or "")
    return match.group(1) if match else ""


def _with_unit(value, unit):
    return f"{value:.4g} {unit}".rstrip()


def _shown_range(counts, edges):
    """x range that leaves out a long, nearly empty tail (e.g. a MIP peak in a histogram booked up
    to 40 MIPs): up to where 99.9 % of the entries are, plus a margin; and how many are cut off."""
    total = counts.sum()
    if total <= 0:
        return edges[0], edges[-1], 0.0
    last = int(np.searchsorted(np.cumsum(counts), SHOWN_FRACTION * total))
    high = min(edges[-1], edges[last + 1] + 0.1 * (edges[last + 1] - edges[0]))
    return edges[0], high, float(counts[edges[1:] > high].sum())


def _draw_distribution(plot, figure):
    counts = _array(plot.counts, f"Distribution {plot.name!r} counts")
    edges = _array(plot.edges, f"Distribution {plot.name!r} edges")
    if edges.size != counts.size + 1 or counts.size == 0 or np.any(np.diff(edges) <= 0):
        raise ValueError(
            f"Distribution {plot.name!r} needs increasing edges, one more than its {counts.size} counts;"
            f" got {edges.size} edges"
        )
    unit = _unit(plot.xlabel)
    ax = figure.add_subplot()
    low, high, hidden = _shown_range(counts, edges)
    beyond = f", {hidden:.0f} beyond the axis" if hidden else ""
    ax.stairs(counts, edges, color="tab:blue", linewidth=1.2, label=f"data ({counts.sum():.0f} entries{beyond})")
    if plot.window is not None:
        w_low, w_high = (float(v) for v in plot.window)
        ax.axvspan(w_low, w_high, color="tab:orange", alpha=0.2, linewidth=0,
                   label=f"fit window {w_low:.4g}–{_with_unit(w_high, unit)}")
        low, high = min(low, w_low), max(high, w_high)
    if plot.gaussian is not None:
        amplitude, mean, sigma = (float(v) for v in plot.gaussian)
        x_low, x_high = plot.window if plot.window is not None else (low, high)
        x = np.linspace(float(x_low), float(x_high), 200)
        ax.plot(x, amplitude * np.exp(-0.5 * ((x - mean) / sigma) ** 2), color="tab:red", linewidth=1.5,
                label=f"Gaussian fit: μ = {_with_unit(mean, unit)}, σ = {_with_unit(sigma, unit)}")
    if plot.peak is not None:
        ax.axvline(float(plot.peak), color="tab:red", linestyle=":", linewidth=1.5,
                   label=f"peak {_with_unit(float(plot.peak), unit)}")
        low, high = min(low, float(plot.peak)), max(high, float(plot.peak))
    if plot.target is not None:
        ax.axvline(float(plot.target), color="black", linestyle="--", linewidth=1.2,
                   label=f"target {_with_unit(float(plot.target), unit)}")
        low, high = min(low, float(plot.target)), max(high, float(plot.target))
    ax.set_xlim(low, high)
    ax.set_ylim(0, max(float(counts.max()), 1.0) * 1.25)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useMathText=True)
    widths = np.diff(edges)
    uniform = np.allclose(widths, widths[0], rtol=1e-6)
    ax.set_ylabel(f"Entries / {_with_unit(widths[0], unit)}" if uniform else "Entries per bin")
    ax.set_xlabel(plot.xlabel)
    ax.set_title(plot.title, y=1.0)
    ax.legend(loc="best", fontsize="small", frameon=False)


def _draw_scatter(plot, figure):
    x = _array(plot.x, f"Scatter {plot.name!r} x")
    y = _array(plot.y, f"Scatter {plot.name!r} y")
    if x.size != y.size:
        raise ValueError(f"Scatter {plot.name!r} has {x.size} x values but {y.size} y values")
    ax = figure.add_subplot()
    reach = [float(x.max()) if x.size else 1.0, float(y.max()) if y.size else 1.0]
    if plot.line is not None:
        reach += [float(v) for v in plot.line]
    if plot.target is not None:
        reach.append(float(plot.target))
    top = max(reach) * 1.05 if max(reach) > 0 else 1.0
    if x.size > MAX_MARKERS:
        counts, x_edges, y_edges = np.histogram2d(x, y, bins=DENSITY_BINS, range=((0, top), (0, top)))
        masked = np.ma.masked_equal(counts.T, 0)
        # Logarithmic colours: the sparse edges of the band stay visible next to a dense core.
        mesh = ax.pcolormesh(x_edges, y_edges, masked, cmap="Blues", norm=LogNorm(vmin=1, vmax=max(counts.max(), 2)))
        figure.subplots_adjust(right=0.84)
        colour_axes = figure.add_axes((0.86, 0.11, 0.025, 0.81))
        figure.colorbar(mesh, cax=colour_axes, label="Events per cell")
        ax.plot([], [], "s", color="tab:blue", label=f"{x.size} events")
    else:
        ax.plot(x, y, ".", color="tab:blue", markersize=3, alpha=0.5, label=f"{x.size} events")
    if plot.line is not None:
        x_intercept, y_intercept = (float(v) for v in plot.line)
        ax.plot([0, x_intercept], [y_intercept, 0], color="tab:red", linewidth=1.8,
                label=f"fit: x/{x_intercept:.4g} + y/{y_intercept:.4g} = 1")
    if plot.target is not None:
        target = float(plot.target)
        ax.plot([0, target], [target, 0], color="black", linestyle="--", linewidth=1.2,
                label=f"ideal: both intercepts {_with_unit(target, _unit(plot.xlabel))}")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel)
    ax.set_title(plot.title, y=1.0)
    ax.legend(loc="upper right", fontsize="small", frameon=False)


def render_plot(plot):
    """PNG bytes of an outcome.Distribution (histogram, shaded fit window, Gaussian, peak and target
    lines) or an outcome.Scatter (points, fitted line, ideal line).

    :param plot: outcome.Distribution or outcome.Scatter
    :return: bytes (PNG)
    """
    figure = Figure(figsize=(6.4, 4.6))
    figure.subplots_adjust(left=0.12, right=0.96, bottom=0.11, top=0.92)
    if isinstance(plot, Distribution):
        _draw_distribution(plot, figure)
    elif isinstance(plot, Scatter):
        _draw_scatter(plot, figure)
    else:
        raise TypeError(f"render_plot draws an outcome.Distribution or outcome.Scatter, got {type(plot).__name__}")
    return _png(figure)


def render_plots(plots):
    """PNG bytes of a step's plots; a plot whose data cannot be drawn is reported, not raised, so
    that it never stops the others (nor the calibration).

    :param dict plots: {file name: outcome.Distribution or outcome.Scatter}
    :return: ({file name: PNG bytes}, {file name: why it could not be drawn})
    """
    files, failures = {}, {}
    for name, plot in plots.items():
        try:
            files[name] = render_plot(plot)
        except (TypeError, ValueError) as error:
            failures[name] = str(error)
    return files, failures


def _first_value(value, step, name):
    """A constant's plotted value: the number, or element 0 of a FloatVec; NaN when absent."""
    if value is None:
        return math.nan
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) == 0:
            raise ValueError(f"Step {step}: constant {name} is an empty list; a FloatVec needs at least one value")
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Step {step}: constant {name} must be a number or a list of numbers, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"Step {step}: constant {name} is {number}; only finite values can be plotted")
    return number


def _history_table(history):
    """Steps (sorted), their (stage, phase) and name -> values, checking every entry."""
    if not isinstance(history, (list, tuple)) or not history:
        raise ValueError("convergence_plot needs a non-empty list of history entries (one per step)")
    entries = []
    for index, entry in enumerate(history):
        if not isinstance(entry, Mapping) or any(key not in entry for key in HISTORY_KEYS):
            raise ValueError(f"History entry {index} must be a dict with the keys {list(HISTORY_KEYS)}, got {entry!r}")
        if not isinstance(entry["Parameters"], Mapping):
            raise ValueError(f"History entry {index}: 'Parameters' must be a dict of constants")
        try:
            key = (int(entry["Step"]), int(entry["Stage"]), int(entry["Phase"]))
        except (TypeError, ValueError):
            raise ValueError(f"History entry {index}: Step, Stage and Phase must be integers") from None
        entries.append((key, entry["Parameters"]))
    entries.sort(key=lambda item: item[0][0])
    steps = [key[0] for key, _ in entries]
    if len(set(steps)) != len(steps):
        raise ValueError(f"History has repeated step numbers {sorted(steps)}; give one entry per step")
    names = {name for _, parameters in entries for name in parameters}
    if not names:
        raise ValueError("The history has no constants to plot: every 'Parameters' dict is empty")
    ordered = [name for name in CONSTANTS if name in names] + sorted(names - set(CONSTANTS))
    values = {
        name: np.array([_first_value(parameters.get(name), key[0], name) for key, parameters in entries])
        for name in ordered
    }
    return np.array(steps), [key[1:] for key, _ in entries], values


def _segments(steps, positions):
    """(first index, last index, stage, phase) of each run of consecutive steps at one position."""
    runs = []
    for index, position in enumerate(positions):
        if runs and runs[-1][2:] == position:
            runs[-1] = (runs[-1][0], index, *position)
        else:
            runs.append((index, index, *position))
    return runs


def _constant_label(name):
    """The constant's name, with '[0]' for a FloatVec of which only the first element is plotted."""
    return name + " [0]" if name in CONSTANTS and CONSTANTS[name].kind == "floatvec" else name


def _phase_label(phase):
    return f"phase {phase} ({PHASE_TABLE[phase].name})" if phase in PHASE_TABLE else f"phase {phase}"


def _changed(series):
    present = series[np.isfinite(series)]
    return present.size > 1 and bool(np.any(present != present[0]))


def _stage_spans(bounds, segments):
    """(left, right, stage) of each run of segments in one stage."""
    spans = []
    for (left, right), (*_, stage, _) in zip(bounds, segments):
        if spans and spans[-1][2] == stage:
            spans[-1] = (spans[-1][0], right, stage)
        else:
            spans.append((left, right, stage))
    return spans


def _unchanged_table(figure, names, values, columns, width, height):
    """The constants without a panel and their value, in the panels' columns under the panels."""
    figure.text(0.1 / width, (0.15 + FOOTER_LINE * math.ceil(len(names) / columns)) / height,
                "Constants that do not change:", fontsize="small", va="bottom", weight="bold")
    for number, name in enumerate(names):
        row, column = divmod(number, columns)
        finite = values[name][np.isfinite(values[name])]
        text = f"{_constant_label(name)} = {finite[0]:.6g}" if finite.size else f"{_constant_label(name)}: not set"
        x = (0.1 + column * (width - 0.2) / columns) / width
        y = (0.15 + FOOTER_LINE * (math.ceil(len(names) / columns) - 1 - row)) / height
        figure.text(x, y, text, fontsize="small", va="bottom")


def convergence_plot(history):
    """PNG bytes: one panel per constant against the step (element 0 for FloatVec constants); the
    background colour says which phase each step ran, black lines mark where a new stage starts.

    Constants that never change get no panel but are listed with their value underneath (unless
    none changes), which keeps a full calibration's plot readable, small and fast to draw.
    ``history``: list of {'Step', 'Stage', 'Phase', 'Parameters': {name: float | list}}.

    :param list history: the calibration's steps, as ``CalibrationDB.getSteps`` returns them
    :return: bytes (PNG)
    """
    steps, positions, values = _history_table(history)
    panels = {name: series for name, series in values.items() if _changed(series)} or values
    fixed = [name for name in values if name not in panels]
    n_panels = len(panels)
    columns = 1 if n_panels == 1 else 2 if n_panels <= 4 else 3
    rows = math.ceil(n_panels / columns)
    segments = _segments(steps, positions)
    phases = sorted({phase for *_, phase in segments})
    legend_rows = math.ceil((len(phases) + 1) / 3)
    header = 0.45 + FOOTER_LINE * legend_rows
    footer = FOOTER_LINE * (math.ceil(len(fixed) / columns) + 1) if fixed else 0.0
    width, height = 3.3 * columns + 0.5, 1.75 * rows + 0.35 + header + footer
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(left=0.75 / width, right=1 - 0.15 / width, bottom=(0.5 + footer) / height,
                           top=1 - header / height, wspace=0.32, hspace=0.45)
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True)
    spacing = float(np.min(np.diff(steps))) if steps.size > 1 else 1.0
    bounds = [(steps[first] - spacing / 2, steps[last] + spacing / 2) for first, last, *_ in segments]
    colours = {phase: PHASE_COLOURS[phase % len(PHASE_COLOURS)] for phase in phases}
    stages = _stage_spans(bounds, segments)
    for index, (name, series) in enumerate(panels.items()):
        ax = axes.flat[index]
        # One collection each for the phase backgrounds and the stage lines: single patches per
        # step and panel would cost most of the rendering time.
        shading = [((left, 0), (left, 1), (right, 1), (right, 0)) for left, right in bounds]
        ax.add_collection(PolyCollection(shading, facecolors=[colours[s[3]] for s in segments], linewidths=0,
                                         transform=ax.get_xaxis_transform(), zorder=0), autolim=False)
        ax.vlines([left for left, _, _ in stages[1:]], 0, 1, colors="black", linewidth=1.0,
                  transform=ax.get_xaxis_transform())
        if index < columns:
            for left, right, stage in stages:
                ax.text((left + right) / 2, 1.02, f"S{stage}", transform=ax.get_xaxis_transform(),
                        fontsize="x-small", ha="center", va="bottom")
        ax.plot(steps, series, "o-", color="tab:blue", markersize=3, linewidth=1.2)
        # An explicit y skips matplotlib's costly search for tick labels above the axes.
        ax.set_title(_constant_label(name), fontsize="medium", y=1.0, pad=12 if index < columns else 4)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.tick_params(labelsize="small")
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(3))
        ax.set_xlim(bounds[0][0], bounds[-1][1])
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    for ax in axes.flat[max(n_panels - columns, 0): n_panels]:  # the lowest panel of each column
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel("step")
    handles = [Patch(color=colours[phase], label=_phase_label(phase)) for phase in phases]
    handles.append(Line2D([], [], color="black", linewidth=1.0, label="new stage (S1, S2, ... above the panels)"))
    figure.legend(handles=handles, loc="upper center", ncols=3, fontsize="small", frameon=False)
    if fixed:
        _unchanged_table(figure, fixed, values, columns, width, height)
    return _png(figure, CONVERGENCE_DPI)
