"""PNG images of a step's plots (outcome.Distribution / Scatter / PdfComparison) and of a
calibration's convergence.

Why: a physicist judges a calibration by the peaks it fitted and by how the constants moved, and
reads plots in the conventions of the field: mplhep's ROOT style, data as points with √N errors,
μ ± δμ and χ²/ndf in the legend. Drawing uses matplotlib's object-oriented API on an Agg canvas
(no pyplot, no global figure or backend state); the style is matplotlib's one global, so drawings
in the threaded service take turns under a lock. The PNG carries no software version or time
stamp, so the same plot always gives the same bytes.
"""
import io
import math
import re
import threading
from collections.abc import Mapping
from contextlib import contextmanager

import matplotlib
import mplhep
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
from ILCDIRAC.CalibrationSystem.Procedure.outcome import FULLEST_BIN, PEAK_FINDER, Distribution, PdfComparison, Scatter
from ILCDIRAC.CalibrationSystem.Procedure.phases import PHASE_TABLE

DPI = 100
CONVERGENCE_DPI = 80
#: Colours of the PNG palette: anti-aliased text and lines need no more, and a palette image is a
#: third of the size of the RGBA one (a 13-panel convergence plot stays under 100 kB).
PALETTE_SIZE = 96
#: Above this many points a Scatter is drawn as a 2-D histogram: readable, and the PNG stays small.
MAX_MARKERS = 2000
DENSITY_BINS = 60
#: A Distribution's x axis spans a little more than the bins holding this fraction of the entries.
SHOWN_FRACTION = 0.999
#: Up to this many bins a histogram is drawn as points with error bars, above as a line.
MAX_ERRORBAR_BINS = 100
#: Units GeV values are shown in, largest first, with their factor from GeV.
ENERGY_UNITS = (("GeV", 1.0), ("MeV", 1e3), ("keV", 1e6))
#: mplhep's ROOT style (the look of the reference tools' plots), scaled to our figure sizes.
HEP_STYLE = {
    **mplhep.style.ROOT, "font.size": 11, "axes.linewidth": 1.0, "xtick.major.size": 6, "xtick.minor.size": 3,
    "ytick.major.size": 6, "ytick.minor.size": 3, "axes.titlesize": "medium", "legend.fontsize": "small",
}
#: The convergence plot's many small labels at a low resolution: a font whose 'i' keeps its dot.
CONVERGENCE_STYLE = {"font.sans-serif": ["DejaVu Sans"], "font.size": 10}
# matplotlib's rc parameters are global: drawings in the HEP style take turns.
_DRAWING = threading.Lock()
#: Height in inches of one line of the unchanged-constants table under the convergence panels.
FOOTER_LINE = 0.2
HISTORY_KEYS = ("Step", "Stage", "Phase", "Parameters")
#: Metrics named '<quantity>RelativeDeviation' are a converging phase's measured deviations.
DEVIATION_SUFFIX = "RelativeDeviation"
#: Colours and markers of the elements of a FloatVec, and of a phase's measured quantities.
ELEMENT_COLOURS = ("tab:blue", "tab:orange", "tab:purple")
MARKERS = ("o-", "s--", "^:")
_UNIT = re.compile(r"\[([^\]]+)\]\s*$")
#: Background colour of phase N in the convergence plot (light, so the points stay visible).
PHASE_COLOURS = ("#dbe9f6", "#fde0c5", "#d9f0d3", "#f2d4e8", "#e8e3f3", "#fff2b3")


@contextmanager
def _hep_style(changes=None):
    with _DRAWING, matplotlib.rc_context({**HEP_STYLE, **(changes or {})}):
        yield


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


def _with_unit(value, unit, digits=4):
    return f"{value:.{digits}g} {unit}".rstrip()


def _measured(value, error, unit):
    """'10.91 ± 0.03 GeV': the error to two significant digits and the value to the same decimal;
    four significant digits without an error."""
    if error is None or not (math.isfinite(error) and error > 0):
        return _with_unit(value, unit)
    decimals = max(0, 1 - math.floor(math.log10(error)))
    return f"{value:.{decimals}f} ± {error:.{decimals}f} {unit}".rstrip()


def _display_unit(unit, magnitude):
    """(unit, factor) to show GeV values of about ``magnitude`` in: MeV below 0.1 GeV, keV below
    0.1 MeV, so that a MIP peak reads '57 keV', not '5.7e-05 GeV'."""
    if unit != "GeV" or not magnitude > 0:
        return unit, 1.0
    for name, factor in ENERGY_UNITS:
        if magnitude * factor >= 0.1:
            return name, factor
    return ENERGY_UNITS[-1]


def _shown_range(counts, edges):
    """x range that leaves out long, nearly empty tails (e.g. a MIP peak in a histogram booked from
    0 up to 40 MIPs): from where 0.1 % of the entries are reached to where 99.9 % are, plus a
    margin; and how many entries lie entirely below and above it."""
    total = counts.sum()
    if total <= 0:
        return edges[0], edges[-1], 0.0, 0.0
    cumulative = np.cumsum(counts)
    first = int(np.searchsorted(cumulative, (1 - SHOWN_FRACTION) * total, side="right"))
    last = int(np.searchsorted(cumulative, SHOWN_FRACTION * total))
    margin = 0.1 * (edges[last + 1] - edges[first])
    low, high = max(edges[0], edges[first] - margin), min(edges[-1], edges[last + 1] + margin)
    return low, high, float(counts[edges[1:] <= low].sum()), float(counts[edges[:-1] >= high].sum())


def _outside(below, above):
    parts = [f"{count:.0f} {where}" for count, where in ((below, "below"), (above, "above")) if count]
    return f" ({', '.join(parts)} the axis)" if parts else ""


def _fit_label(plot, unit, factor):
    """Legend text of the peak: the fit's μ ± δμ, σ and χ²/ndf, or how the peak was found without one."""
    mean = _measured(plot.peak * factor, None if plot.mean_error is None else plot.mean_error * factor, unit)
    if plot.gaussian is not None:
        text = f"Gaussian fit: μ = {mean}, σ = {_with_unit(plot.gaussian[2] * factor, unit, 3)}"
        if plot.chi2 is not None and plot.ndf:
            text += f"\nχ²/ndf = {plot.chi2:.1f}/{plot.ndf}"
        if plot.fit_bin_width is not None:
            text += f", in {_with_unit(plot.fit_bin_width * factor, unit, 3)} bins"
        return text
    if plot.method == "window-mean":
        return f"mean of the fit window (fit rejected): {mean}"
    if plot.method in (FULLEST_BIN, PEAK_FINDER):
        return f"peak ({plot.method}, no fit): {mean}"
    return f"peak {mean}"


def _draw_distribution(plot, figure):
    counts = _array(plot.counts, f"Distribution {plot.name!r} counts")
    edges = _array(plot.edges, f"Distribution {plot.name!r} edges")
    if edges.size != counts.size + 1 or counts.size == 0 or np.any(np.diff(edges) <= 0):
        raise ValueError(
            f"Distribution {plot.name!r} needs increasing edges, one more than its {counts.size} counts;"
            f" got {edges.size} edges"
        )
    unit, factor = _display_unit(_unit(plot.xlabel), abs(plot.peak) if plot.peak is not None else edges[-1])
    edges = edges * factor
    ax = figure.add_subplot()
    low, high, below, above = _shown_range(counts, edges)
    entries = counts.sum() + plot.below + plot.above
    label = f"data: {entries:.0f} entries{_outside(plot.below + below, plot.above + above)}"
    if counts.size <= MAX_ERRORBAR_BINS:
        mplhep.histplot(counts, edges, yerr=np.sqrt(counts), histtype="errorbar", color="black", markersize=3,
                        flow=None, label=label, ax=ax)
    else:
        mplhep.histplot(counts, edges, histtype="step", color="black", flow=None, label=label, ax=ax)
    if plot.window is not None:
        w_low, w_high = (float(v) * factor for v in plot.window)
        ax.axvspan(w_low, w_high, color="tab:orange", alpha=0.15, linewidth=0,
                   label=f"fit window {w_low:.3g}–{_with_unit(w_high, unit, 3)}")
        low, high = min(low, w_low), max(high, w_high)
    if plot.peak is not None:
        peak = float(plot.peak) * factor
        if plot.gaussian is not None:
            amplitude, mean, sigma = (float(v) for v in plot.gaussian)
            mean, sigma = mean * factor, sigma * factor
            x = np.linspace(low, high, 400)
            y = amplitude * np.exp(-0.5 * ((x - mean) / sigma) ** 2)
            fitted = (x >= plot.window[0] * factor) & (x <= plot.window[1] * factor) if plot.window else True
            ax.plot(x, np.where(fitted, y, np.nan), color="tab:red", linewidth=1.8, label=_fit_label(plot, unit, factor))
            ax.plot(x, np.where(fitted, np.nan, y), color="tab:red", linewidth=1.0, linestyle="--")
        elif plot.method in (FULLEST_BIN, PEAK_FINDER):
            index = int(np.clip(np.searchsorted(edges, peak) - 1, 0, counts.size - 1))
            ax.axvspan(edges[index], edges[index + 1], color="tab:red", alpha=0.35, linewidth=0, zorder=0,
                       label=_fit_label(plot, unit, factor))
        else:
            ax.axvline(peak, color="tab:red", linestyle=":", linewidth=1.5, label=_fit_label(plot, unit, factor))
        low, high = min(low, peak), max(high, peak)
    if plot.target is not None:
        target = float(plot.target) * factor
        ax.axvline(target, color="tab:blue", linestyle="--", linewidth=1.2, label=f"target {_with_unit(target, unit)}")
        low, high = min(low, target), max(high, target)
    ax.set_xlim(low, high)
    ax.set_ylim(0, max(float(counts.max()), 1.0) * 1.6)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    widths = np.diff(edges)
    uniform = np.allclose(widths, widths[0], rtol=1e-6)
    ax.set_ylabel(f"Entries / {_with_unit(widths[0], unit)}" if uniform else "Entries per bin")
    ax.set_xlabel(_UNIT.sub(f"[{unit}]", plot.xlabel) if unit else plot.xlabel)
    ax.set_title(plot.title, y=1.0)
    _legend_data_first(ax, label)


def _legend_data_first(ax, data_label):
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda index: labels[index] != data_label)
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper left", frameon=False)


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


def _draw_pdfs(plot, figure):
    edges = _array(plot.edges, f"PdfComparison {plot.name!r} edges")
    ax = figure.add_subplot()
    for values, outside, events, colour, what in (
        (plot.signal, plot.signal_outside, plot.signal_events, "tab:blue", "photons (signal)"),
        (plot.background, plot.background_outside, plot.background_events, "tab:red", "background"),
    ):
        values = _array(values, f"PdfComparison {plot.name!r} {what}")
        if values.size + 1 != edges.size:
            raise ValueError(f"PdfComparison {plot.name!r}: {values.size} {what} values for {edges.size} edges")
        beyond = f", {outside:.1%} outside the axis" if outside else ""
        mplhep.histplot(values, edges, histtype="step", color=colour, flow=None, ax=ax,
                        label=f"{what}: {events:.0f} events{beyond}")
    ax.set_ylim(0, max(float(np.max(plot.signal, initial=0)), float(np.max(plot.background, initial=0)), 1e-3) * 1.4)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel("Fraction of events per bin")
    ax.set_title(plot.title, y=1.0)
    ax.legend(loc="upper right", frameon=False)


def render_plot(plot):
    """PNG bytes of an outcome.Distribution (histogram, shaded fit window, Gaussian, peak and target
    lines) or an outcome.Scatter (points, fitted line, ideal line).

    :param plot: outcome.Distribution, Scatter or PdfComparison
    :return: bytes (PNG)
    """
    draw = {Distribution: _draw_distribution, Scatter: _draw_scatter, PdfComparison: _draw_pdfs}.get(type(plot))
    if draw is None:
        raise TypeError(
            f"render_plot draws an outcome.Distribution, Scatter or PdfComparison, got {type(plot).__name__}")
    with _hep_style():
        figure = Figure(figsize=(6.4, 4.6))
        figure.subplots_adjust(left=0.12, right=0.96, bottom=0.11, top=0.92)
        draw(plot, figure)
        return _png(figure)


def render_plots(plots):
    """PNG bytes of a step's plots; a plot whose data cannot be drawn is reported, not raised, so
    that it never stops the others (nor the calibration).

    :param dict plots: {file name: outcome.Distribution, Scatter or PdfComparison}
    :return: ({file name: PNG bytes}, {file name: why it could not be drawn})
    """
    files, failures = {}, {}
    for name, plot in plots.items():
        try:
            files[name] = render_plot(plot)
        except (TypeError, ValueError) as error:
            failures[name] = str(error)
    return files, failures


def _elements(value, step, name):
    """A constant's plotted values: [the number], or every element of a FloatVec; [NaN] when absent."""
    if value is None:
        return [math.nan]
    items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if not items:
        raise ValueError(f"Step {step}: constant {name} is an empty list; a FloatVec needs at least one value")
    numbers = []
    for item in items:
        try:
            number = float(item)
        except (TypeError, ValueError):
            raise ValueError(
                f"Step {step}: constant {name} must be a number or a list of numbers, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"Step {step}: constant {name} is {number}; only finite values can be plotted")
        numbers.append(number)
    return numbers


def _series(rows):
    """steps x elements array of per-step element lists, NaN where a step has fewer elements."""
    width = max(len(row) for row in rows)
    return np.array([row + [math.nan] * (width - len(row)) for row in rows])


def _history_table(history):
    """Steps (sorted), their (stage, phase), name -> steps x elements values, and the metrics."""
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
        metrics = entry.get("Metrics")
        entries.append((key, entry["Parameters"], metrics if isinstance(metrics, Mapping) else {}))
    entries.sort(key=lambda item: item[0][0])
    steps = [key[0] for key, _, _ in entries]
    if len(set(steps)) != len(steps):
        raise ValueError(f"History has repeated step numbers {sorted(steps)}; give one entry per step")
    names = {name for _, parameters, _ in entries for name in parameters}
    if not names:
        raise ValueError("The history has no constants to plot: every 'Parameters' dict is empty")
    ordered = [name for name in CONSTANTS if name in names] + sorted(names - set(CONSTANTS))
    values = {
        name: _series([_elements(parameters.get(name), key[0], name) for key, parameters, _ in entries])
        for name in ordered
    }
    return np.array(steps), [key[1:] for key, _, _ in entries], values, [metrics for _, _, metrics in entries]


def _deviations(steps, positions, metrics):
    """phase -> (accuracy, {measured quantity: (deviation, its uncertainty) per step in %, NaN in
    other phases' steps}) from the metrics '<quantity>RelativeDeviation', its 'Uncertainty' (NaN,
    no error bar, where a step has none) and 'accuracy' of the phases that converge."""
    phases = {}
    for index, ((_, phase), step_metrics) in enumerate(zip(positions, metrics)):
        accuracy = step_metrics.get("accuracy")
        if not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool):
            continue
        _, quantities = phases.setdefault(phase, (float(accuracy), {}))
        for key, value in step_metrics.items():
            if key.endswith(DEVIATION_SUFFIX) and key != "max" + DEVIATION_SUFFIX and isinstance(value, (int, float)):
                quantity = key[: -len(DEVIATION_SUFFIX)]
                series = quantities.setdefault(quantity, np.full((2, len(steps)), math.nan))
                series[0, index] = 100.0 * float(value)
                error = step_metrics.get(key + "Uncertainty")
                if isinstance(error, (int, float)) and not isinstance(error, bool):
                    series[1, index] = 100.0 * float(error)
    return {phase: entry for phase, entry in sorted(phases.items()) if entry[1]}


def _segments(steps, positions):
    """(first index, last index, stage, phase) of each run of consecutive steps at one position."""
    runs = []
    for index, position in enumerate(positions):
        if runs and runs[-1][2:] == position:
            runs[-1] = (runs[-1][0], index, *position)
        else:
            runs.append((index, index, *position))
    return runs


def phase_label(phase):
    """'phase 0 (ECalDigi)': a phase as the plots and the summary page name it.

    :param int phase: a phase id
    :return: str
    """
    return f"phase {phase} ({PHASE_TABLE[phase].name})" if phase in PHASE_TABLE else f"phase {phase}"


def _changed(series):
    present = series[np.isfinite(series)]
    return present.size > 1 and bool(np.any(present != present.flat[0]))


def _stage_spans(bounds, segments):
    """(left, right, stage) of each run of segments in one stage."""
    spans = []
    for (left, right), (*_, stage, _) in zip(bounds, segments):
        if spans and spans[-1][2] == stage:
            spans[-1] = (spans[-1][0], right, stage)
        else:
            spans.append((left, right, stage))
    return spans


def _value_text(values):
    return ", ".join(f"{value:.5g}" for value in values)


def _unchanged_table(figure, names, values, columns, width, height):
    """The constants without a panel and their value, in the panels' columns under the panels."""
    figure.text(0.1 / width, (0.15 + FOOTER_LINE * math.ceil(len(names) / columns)) / height,
                "Constants that do not change:", fontsize="small", va="bottom", weight="bold")
    for number, name in enumerate(names):
        row, column = divmod(number, columns)
        finite = values[name][np.all(np.isfinite(values[name]), axis=1)]
        text = f"{name} = {_value_text(finite[-1])}" if finite.size else f"{name}: not set"
        x = (0.1 + column * (width - 0.2) / columns) / width
        y = (0.15 + FOOTER_LINE * (math.ceil(len(names) / columns) - 1 - row)) / height
        figure.text(x, y, text, fontsize="small", va="bottom")


def _shade(ax, bounds, segments, stages, colours, label_stages):
    """The phase backgrounds and the stage lines: one collection each, as single patches per step and
    panel would cost most of the rendering time."""
    shading = [((left, 0), (left, 1), (right, 1), (right, 0)) for left, right in bounds]
    ax.add_collection(PolyCollection(shading, facecolors=[colours[s[3]] for s in segments], linewidths=0,
                                     transform=ax.get_xaxis_transform(), zorder=0), autolim=False)
    ax.vlines([left for left, _, _ in stages[1:]], 0, 1, colors="black", linewidth=1.0,
              transform=ax.get_xaxis_transform())
    if label_stages:
        for left, right, stage in stages:
            ax.text((left + right) / 2, 1.02, f"S{stage}", transform=ax.get_xaxis_transform(),
                    fontsize="x-small", ha="center", va="bottom")


def _deviation_panel(ax, steps, phase, accuracy, quantities):
    limit = 100.0 * accuracy
    ax.axhspan(-limit, limit, color="tab:green", alpha=0.25, linewidth=0, zorder=1)
    ax.axhline(0.0, color="black", linewidth=0.6, zorder=1)
    reach = limit
    for number, (quantity, (series, errors)) in enumerate(quantities.items()):
        # NaN outside the phase's steps: lines join the steps of one run of the phase only
        ax.errorbar(steps, series, yerr=np.nan_to_num(errors), fmt=MARKERS[number % len(MARKERS)],
                    color=ELEMENT_COLOURS[number % 3], markersize=4, elinewidth=1.0, capsize=2, label=quantity)
        measured = np.isfinite(series)
        reach = max(reach, float(np.max(np.abs(series[measured]) + np.nan_to_num(errors[measured]), initial=0.0)))
    ax.set_ylim(-1.15 * reach, 1.15 * reach)
    ax.set_ylabel("peak/target − 1 [%]", fontsize="small")
    ax.set_title(f"{phase_label(phase)}, ±{limit:.3g} %", fontsize="medium", y=1.0, pad=12)
    ax.legend(loc="lower right", fontsize="x-small", ncols=len(quantities), frameon=False, handletextpad=0.2)


def _constant_panel(ax, name, steps, series, final, final_step):
    elements = series.shape[1]
    for element in range(elements):
        label = f"[{element}]" if elements > 1 else None
        ax.plot(steps, series[:, element], "o-", color=ELEMENT_COLOURS[element % 3], markersize=3, linewidth=1.2,
                label=label)
    if final is not None:
        ax.plot([final_step] * len(final), final, "*", color="black", markersize=9, zorder=3)
    if elements > 1:
        ax.legend(loc="best", fontsize="x-small", frameon=False, ncols=elements)
    ax.set_title(name, fontsize="medium", y=1.0, pad=4)
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.yaxis.set_major_locator(MaxNLocator(3))


def convergence_plot(history, final=None):
    """PNG bytes: first, for each phase that converges, the deviation of its measured peaks from
    their targets in % against the ±accuracy band it had to reach; then one panel per constant
    against the step (every element of a FloatVec), with the value written to the steering file
    (``final``: the calibration's constants after its last step's update) as a star after the last
    step. The background colour says which phase each step ran, black lines mark a new stage.

    Constants that never change get no panel but are listed with their value underneath (unless
    none changes), which keeps a full calibration's plot readable, small and fast to draw.
    ``history``: list of {'Step', 'Stage', 'Phase', 'Parameters': {name: float | list}, 'Metrics'
    (optional): {name: value}}; a step's Parameters are the constants it ran with.

    :param list history: the calibration's steps, as ``CalibrationDB.getSteps`` returns them
    :param dict final: the constants written to the steering file (None: not drawn)
    :return: bytes (PNG)
    """
    steps, positions, values, metrics = _history_table(history)
    written = {name: _elements(value, "final", name) for name, value in (final or {}).items() if name in values}
    changing = {name for name, series in values.items()
                if _changed(series) or (name in written and _changed(np.vstack([series, _series([written[name]])])))}
    panels = [name for name in values if name in changing] or list(values)
    fixed = [name for name in values if name not in panels]
    deviations = _deviations(steps, positions, metrics)
    n_panels = len(deviations) + len(panels)
    columns = 1 if n_panels == 1 else 2 if n_panels <= 4 else 3
    rows = math.ceil(n_panels / columns)
    segments = _segments(steps, positions)
    phases = sorted({phase for *_, phase in segments})
    legend_rows = math.ceil((len(phases) + 2) / 3)
    header = 0.45 + FOOTER_LINE * legend_rows
    footer = FOOTER_LINE * (math.ceil(len(fixed) / columns) + 1) if fixed else 0.0
    width, height = 3.3 * columns + 0.5, 1.85 * rows + 0.35 + header + footer
    with _hep_style(CONVERGENCE_STYLE):
        figure = Figure(figsize=(width, height))
        figure.subplots_adjust(left=0.75 / width, right=1 - 0.15 / width, bottom=(0.5 + footer) / height,
                               top=1 - header / height, wspace=0.32, hspace=0.55)
        axes = figure.subplots(rows, columns, squeeze=False, sharex=True)
        spacing = float(np.min(np.diff(steps))) if steps.size > 1 else 1.0
        bounds = [(steps[first] - spacing / 2, steps[last] + spacing / 2) for first, last, *_ in segments]
        colours = {phase: PHASE_COLOURS[phase % len(PHASE_COLOURS)] for phase in phases}
        stages = _stage_spans(bounds, segments)
        final_step = steps[-1] + spacing
        for index, ax in enumerate(axes.flat[:n_panels]):
            _shade(ax, bounds, segments, stages, colours, index < columns)
            if index < len(deviations):
                phase = list(deviations)[index]
                _deviation_panel(ax, steps, phase, *deviations[phase])
            else:
                name = panels[index - len(deviations)]
                _constant_panel(ax, name, steps, values[name], written.get(name), final_step)
            ax.tick_params(labelsize="small")
            ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
            ax.set_xlim(bounds[0][0], final_step + spacing / 2 if written else bounds[-1][1])
        for ax in axes.flat[n_panels:]:
            ax.set_visible(False)
        for ax in axes.flat[max(n_panels - columns, 0): n_panels]:  # the lowest panel of each column
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("step")
        handles = [Patch(color=colours[phase], label=phase_label(phase)) for phase in phases]
        handles.append(Line2D([], [], color="black", linewidth=1.0, label="new stage (S1, S2, ... above the panels)"))
        if written:
            handles.append(Line2D([], [], color="black", marker="*", linestyle="", markersize=9,
                                  label="value written to the steering file"))
        figure.legend(handles=handles, loc="upper center", ncols=3, fontsize="small", frameon=False)
        if fixed:
            _unchanged_table(figure, fixed, {name: _series([written[name]]) if name in written else values[name]
                                             for name in fixed}, columns, width, height)
        return _png(figure, CONVERGENCE_DPI)
