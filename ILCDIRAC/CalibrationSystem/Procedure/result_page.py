"""One self-contained HTML page of a calibration's result: its constants, convergence and fits.

Why: a result should be looked at and shared without tools. The page holds everything itself:
the plots are embedded as data URIs, the style is inline, and it loads nothing (no script, font,
style sheet or image from anywhere else), so it opens the same from a mail, a disk or an archive.
"""
import base64
import html
import math
import numbers
import re

from ILCDIRAC.CalibrationSystem.Procedure.constants import CONSTANTS, written_value
from ILCDIRAC.CalibrationSystem.Procedure.plots import phase_label

#: The file name of a step's plot (advance.plot_file_name): step, stage, phase and plot name.
STEP_PLOT = re.compile(r"step(\d+)_stage(\d+)_phase(\d+)_(.+)\.png$")
CONVERGENCE_PLOT = "convergence.png"
_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;max-width:1400px;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.25em .6em}"
    "td.n{text-align:right;font-family:monospace}th{background:#eee}"
    "figure{display:inline-block;margin:.4em;vertical-align:top;width:46%;min-width:320px;max-width:640px}"
    "figure.wide{width:auto;max-width:100%}img{width:100%}"
    "figcaption{font-size:small;color:#555}"
)


def _number(value, digits=None):
    """A constant or uncertainty as text: the written value's digits, or ``digits`` significant."""
    if isinstance(value, (list, tuple)):
        return " ".join(_number(item, digits) for item in value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return "–" if value is None else str(value)
    return f"{value:.{digits}g}" if digits else f"{written_value(value):.7g}"


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) and value else value


def _relative(value, error):
    """The uncertainty in % of the value (first element of a FloatVec); '' when not a number."""
    value, error = _first(value), _first(error)
    if any(isinstance(x, bool) or not isinstance(x, numbers.Real) for x in (value, error)) or not value:
        return ""
    return f"{100.0 * error / abs(value):.2g} %"


def _image(name, content, caption, wide=False):
    data = base64.b64encode(content).decode("ascii")
    kind = ' class="wide"' if wide else ""
    return (f'<figure{kind}><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _constants_table(result):
    history = result.get("history") or []
    initial = history[0].get("Parameters", {}) if history else {}
    uncertainties = result.get("uncertainties") or {}
    parameters = result["parameters"]
    names = [name for name in CONSTANTS if name in parameters] + sorted(set(parameters) - set(CONSTANTS))
    rows = [
        "<tr><th>Constant</th><th>Initial</th><th>Final (steering file)</th><th>Uncertainty</th><th>Relative</th></tr>"
    ]
    for name in names:
        value, error = parameters[name], uncertainties.get(name)
        cells = (_number(initial.get(name)), _number(value), _number(error, 2), _relative(value, error))
        rows.append(f"<tr><td>{html.escape(name)}</td>"
                    + "".join(f'<td class="n">{html.escape(cell)}</td>' for cell in cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def summary_page(result, files):
    """The result's summary page: status, the table of constants (initial, final as written to the
    steering file, uncertainty where the result has one), the convergence plot and every step's
    plots under their step, all embedded.

    :param dict result: 'calibrationID', 'status', 'statusMessage', 'parameters', 'history' and,
        if known, 'uncertainties' ({constant: uncertainty}) and 'statisticsLimited' (the notes of the
        phases whose events could not reach their accuracy), as ``getResult`` gives them
    :param dict files: {file name: bytes} of the result directory; its PNG files are embedded
    :return: bytes, the page (UTF-8 HTML)
    """
    title = f"Calibration {result['calibrationID']}: {result['status']}"
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(str(result.get('statusMessage') or ''))}</p>",
             "<h2>Constants</h2>", _constants_table(result)]
    limited = result.get("statisticsLimited") or []
    if limited:
        parts += ["<h2>Statistics-limited phases</h2>",
                  "<ul>" + "".join(f"<li>{html.escape(note)}</li>" for note in limited) + "</ul>"]
    if CONVERGENCE_PLOT in files:
        parts += ["<h2>Convergence</h2>", _image(CONVERGENCE_PLOT, files[CONVERGENCE_PLOT],
                                                 "deviation from target per phase; constants per step", True)]
    steps, others = {}, []
    for name in sorted(files):
        match = STEP_PLOT.match(name)
        if match:
            step, stage, phase = (int(group) for group in match.groups()[:3])
            steps.setdefault((step, stage, phase), []).append((name, match.group(4)))
        elif name.endswith(".png") and name != CONVERGENCE_PLOT:
            others.append(name)
    if steps:
        parts.append("<h2>Fits of each step</h2>")
    for (step, stage, phase), plots in sorted(steps.items()):
        parts.append(f"<h3>Step {step}: stage {stage}, {html.escape(phase_label(phase))}</h3>")
        parts += [_image(name, files[name], plot) for name, plot in plots]
    if others:
        parts += ["<h2>Other plots</h2>"] + [_image(name, files[name], name) for name in others]
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    return page.encode("utf-8")
