"""Sphinx directives that write the documentation's reference tables from the code.

The settings, presets, phases, samples and constants tables are read from the Procedure
modules, and each command's options from its own ``--help``, when the documentation is built:
a setting, phase or command added to the code without its description here fails the build
(``make docs`` turns warnings into errors).

Directives: ``calibration-settings``, ``calibration-presets``, ``calibration-phases``,
``calibration-samples``, ``calibration-constants`` and ``script-help NAME``.
"""
import configparser
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from ILCDIRAC.CalibrationSystem.Procedure import samples as samples_module
from ILCDIRAC.CalibrationSystem.Procedure.constants import CONSTANTS, PROCESSOR_SETTING
from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError
from ILCDIRAC.CalibrationSystem.Procedure.phases import PHASE_TABLE, PHASES
from ILCDIRAC.CalibrationSystem.Procedure.procedure import STAGES
from ILCDIRAC.CalibrationSystem.Procedure.settings import DEFAULT_SETTINGS, PRESETS, validate_settings
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import SAMPLE_DIRECTORIES

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[2]

#: What each setting means. Defaults and allowed values come from Procedure/settings.py.
SETTING_DESCRIPTIONS = {
    "digitisationAccuracy": "Relative accuracy of the digitisation phases (0 and 1): a phase has converged when "
    "every peak is within this fraction of its target energy. Also the histogram bin width, as a fraction of "
    "the sample's energy.",
    "pandoraPFAAccuracy": "The same for Pandora's energy scales (phases 3 and 4); also the bin width of phase 3 "
    "and the step of the coarse grid of the hadronic chi-square scan of phase 4 (the minimum is then refined "
    "below it, see :ref:`physics-phase4`).",
    "startStage": "Stage of the first phase that runs.",
    "startPhase": "The first phase that runs (with ``startStage``); see :ref:`stages-and-phases` for the pairs "
    "that exist.",
    "stopStage": "Stage of the last phase that runs.",
    "stopPhase": "The last phase that runs (with ``stopStage``): once it has converged, the calibration is "
    "Finished. The default runs the whole procedure.",
    "fractionOfFinishedJobsNeededToStartNextStep": "Share of ``numberOfJobs`` whose results a step needs before "
    "it is analysed. Results that arrive later for that step are not used.",
    "nMaxIterationsPerPhase": "Steps an iterative phase may take. A phase still not converged after them ends "
    "the calibration as Failed, with a status message saying so.",
    "disableSoftwareCompensation": "Write ``MaxClusterEnergyToApplySoftComp = 0`` into the DDMarlinPandora "
    "processor of every step (software compensation off while calibrating).",
    "DDPandoraPFANewProcessorName": "Name of the DDMarlinPandora processor of your steering file: its "
    "constants are calibrated.",
    "DDCaloDigiName": "Name of the DDCaloDigi processor of your steering file: its constants are calibrated.",
    "nEcalThinLayers": "Number of thin ECal layers.",
    "nEcalThickLayers": "Number of thick ECal layers. If not 0, ``ECALLayers`` is written into the DDCaloDigi "
    "processor as ``nEcalThinLayers nEcalThinLayers+nEcalThickLayers+1``.",
    "ecalResponseCorrectionForThickLayers": "Ratio of the thick-layer to the thin-layer ECal constant: the "
    "second value of ``CalibrECAL`` is the first times this.",
    "detectorModel": "Name of the DD4hep detector model, kept with the calibration's settings. The geometry "
    "the workers reconstruct with is the one your steering file names.",
    "nHcalLayers": "Number of HCal layers: in phase 4 a kaon must stay more than ceil(0.1 x nHcalLayers) "
    "layers away from the HCal edge.",
    "ecalBarrelCosThetaRange": "``|cos(theta)|`` range of the photons of phase 0 that calibrate the ECal barrel.",
    "ecalEndcapCosThetaRange": "``|cos(theta)|`` range of the photons of phase 0 that calibrate the ECal endcap.",
    "hcalBarrelCosThetaRange": "``|cos(theta)|`` range of the kaons of phase 1 that calibrate the HCal barrel.",
    "hcalEndcapCosThetaRange": "``|cos(theta)|`` range of the kaons of phase 1 that calibrate the HCal endcap.",
    "hcalEndcapAbsorberThickness": "Absorber thickness (mm) of the HCal endcap, for ``CalibrHCALOther`` "
    "(phase 2).",
    "hcalEndcapScintillatorThickness": "Scintillator thickness (mm) of the HCal endcap (phase 2).",
    "hcalRingAbsorberThickness": "Absorber thickness (mm) of the HCal ring (phase 2).",
    "hcalRingScintillatorThickness": "Scintillator thickness (mm) of the HCal ring (phase 2).",
    "hcalOtherEndcapMeanCorrection": "Multiply ``CalibrHCALOther`` by T_K/μ_EC, μ_EC being the HCal endcap peak "
    "the last phase-1 step measured before its update, as the reference procedure did (phase 2, "
    "see :ref:`physics-phase2`). Off: PandoraAnalysis' documented formula, without this factor.",
}

#: Values that validate_settings refuses for almost every setting: its message says what is allowed.
_PROBES = (-1, "", object())
_ALLOWED_MARKER = "it must be "


def _allowed(name):
    """What ``validate_settings`` accepts for a setting, in its own words."""
    for probe in _PROBES:
        try:
            validate_settings({name: probe})
        except SettingsError as error:
            message = str(error)
            if _ALLOWED_MARKER in message:
                return message.split(_ALLOWED_MARKER, 1)[1]
            logger.warning(f"calibration-settings: cannot read what {name} allows from {message!r}")
            return "?"
    return "any value"


def _literal(value):
    return f"``{value!r}``"


def _list_table(header, rows, widths=None):
    """The reStructuredText of a list-table."""
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {' '.join(str(w) for w in widths)}")
    lines.append("")
    for row in [header, *rows]:
        first, *others = row
        lines.append(f"   * - {first}")
        lines.extend(f"     - {cell}" for cell in others)
    return "\n".join(lines)


class _TableDirective(SphinxDirective):
    """A directive whose subclass's ``table()`` returns the reStructuredText of its table."""

    has_content = False

    def run(self):
        return self.parse_text_to_nodes(self.table())


class SettingsTable(_TableDirective):
    """Every calibration setting: default, allowed values, meaning."""

    def table(self):
        missing = [name for name in DEFAULT_SETTINGS if name not in SETTING_DESCRIPTIONS]
        unknown = [name for name in SETTING_DESCRIPTIONS if name not in DEFAULT_SETTINGS]
        for name in missing:
            logger.warning(f"calibration-settings: setting {name} has no description in {__file__}",
                           location=self.get_location())
        for name in unknown:
            logger.warning(f"calibration-settings: {name} is described but is not a setting",
                           location=self.get_location())
        rows = [
            (f"``{name}``", _literal(default), _allowed(name), SETTING_DESCRIPTIONS.get(name, ""))
            for name, default in DEFAULT_SETTINGS.items()
        ]
        return _list_table(("Setting", "Default", "Allowed", "Meaning"), rows, (25, 12, 19, 44))


class PresetsTable(_TableDirective):
    """The values the detector presets lay over the defaults."""

    def table(self):
        presets = sorted(PRESETS)
        names = [name for name in DEFAULT_SETTINGS if any(name in PRESETS[p] for p in presets)]
        rows = [(f"``{name}``", *(_literal(PRESETS[p].get(name, DEFAULT_SETTINGS[name])) for p in presets))
                for name in names]
        return _list_table(("Setting", *presets), rows)


def _stages_of(phase_id):
    return ", ".join(str(stage) for stage, phases in STAGES.items() if phase_id in phases)


class PhasesTable(_TableDirective):
    """The phases: where they run, whether they iterate, their samples and constants."""

    def table(self):
        rows = []
        for phase_id, spec in PHASE_TABLE.items():
            phase = PHASES[phase_id]
            changed = [name for name, constant in CONSTANTS.items() if constant.phase == phase_id]
            rows.append((
                str(phase_id),
                spec.name,
                _stages_of(phase_id),
                "until converged" if spec.iterative else "one step",
                ", ".join(phase.samples),
                ", ".join(f"``{name}``" for name in changed) or "none: merges the photon likelihood",
            ))
        return _list_table(("Phase", "Name", "Stages", "Runs", "Samples", "Constants it sets"), rows,
                           (7, 18, 8, 12, 12, 43))


class SamplesTable(_TableDirective):
    """The samples: energy, how a path names them, the phases that need them."""

    def table(self):
        rows = []
        for sample in samples_module.SAMPLE_TYPES:
            names = sorted(alias for alias, kind in samples_module._ALIASES.items() if kind == sample)
            phases = [str(phase_id) for phase_id, phase in PHASES.items() if sample in phase.samples]
            particle, energy, _ = SAMPLE_DIRECTORIES[sample]
            rows.append((
                f"``{sample}``",
                f"{samples_module.NOMINAL_ENERGY[sample]:g} GeV",
                ", ".join(f"``{name}``" for name in names),
                ", ".join(phases),
                f"``{particle}/{energy}``",
            ))
        return _list_table(
            ("Sample", "Energy", "Path names recognised", "Phases", "Synthetic directory"), rows, (10, 10, 45, 10, 25)
        )


class ConstantsTable(_TableDirective):
    """The calibration constants: processor, kind, Marlin type, the phase that sets them."""

    def table(self):
        rows = [
            (f"``{name}``", f"``{PROCESSOR_SETTING[spec.role]}``", "list of floats" if spec.kind == "floatvec" else
             "float", f"``{spec.marlin_type}``", f"{spec.phase} ({PHASE_TABLE[spec.phase].name})")
            for name, spec in CONSTANTS.items()
        ]
        return _list_table(("Constant", "Processor (setting naming it)", "Value", "Marlin type", "Set by phase"), rows,
                           (27, 29, 10, 11, 23))


# ---------------------------------------------------------------------------------------- commands

#: Variables that would make a command read another configuration or credentials.
_FOREIGN_VARIABLES = ("DIRAC_ROOT_PATH", "DIRACSYSCONFIG", "X509_USER_PROXY", "GRID_PROXY_FILE")
_HELP_TIMEOUT = 60
_help = {}


def console_scripts():
    """Names of the commands setup.cfg installs."""
    parser = configparser.ConfigParser()
    parser.read(REPOSITORY / "setup.cfg")
    entries = parser.get("options.entry_points", "console_scripts", fallback="")
    return [line.split("=", 1)[0].strip() for line in entries.splitlines() if "=" in line]


def _help_texts(names, directory):
    """{name: (exit code, output)} of every command's ``--help``, run side by side.

    Plain processes, no threads, and all done before Sphinx reads a document: nothing is left
    running when a parallel build forks its readers.
    """
    environment = {key: value for key, value in os.environ.items() if key not in _FOREIGN_VARIABLES}
    environment["COLUMNS"] = "100"  # argparse wraps its help at the terminal width
    processes, texts = {}, {}
    for name in names:
        executable = Path(sys.executable).parent / name
        if not executable.exists():
            texts[name] = (None, f"{executable} does not exist: install the package first (make bootstrap)")
            continue
        processes[name] = subprocess.Popen([str(executable), "--help"], cwd=directory, env=environment,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + _HELP_TIMEOUT
    for name, process in processes.items():
        try:
            output, _ = process.communicate(timeout=max(0.0, deadline - time.monotonic()))
            texts[name] = (process.returncode, output)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            texts[name] = (None, f"{name} --help did not end within {_HELP_TIMEOUT} s")
    return texts


def _collect_help(app):
    """At builder-inited: the help of every command, for the script-help directives."""
    with tempfile.TemporaryDirectory(prefix="calibration-docs-") as directory:
        _help.update(_help_texts(console_scripts(), directory))


def _without_general_options(text):
    """The help without DIRAC's general options block, which is the same for every command, and
    without repeated blank lines."""
    lines, kept, skipping = text.strip("\n").splitlines(), [], False
    for line in lines:
        if line.strip() == "General options:":
            skipping = True
        elif skipping and not line.strip():
            skipping = False
            continue
        if not skipping and (line.strip() or (kept and kept[-1])):
            kept.append(line.rstrip())
    return "\n".join(kept).strip("\n")


def help_problem(name, code, output):
    """What is wrong with a command's ``--help`` (None if nothing): a failure, or a help that
    exits 0 without printing its usage (e.g. a log level raised before the command line is parsed).

    :param str name: the command
    :param code: its exit code (None if it could not run)
    :param str output: what it printed
    :return: str or None
    """
    if code != 0:
        return f"{name} --help failed: {output}"
    if "usage:" not in output.lower():
        return f"{name} --help printed no usage (output: {output.strip()[:200]!r})"
    return None


class ScriptHelp(SphinxDirective):
    """The ``--help`` of a command, as the installed command prints it."""

    required_arguments = 1

    def run(self):
        name = self.arguments[0]
        if name not in _help:
            logger.warning(f"script-help: {name} is not a console script of setup.cfg", location=self.get_location())
            return []
        code, output = _help[name]
        problem = help_problem(name, code, output)
        if problem:
            logger.warning(f"script-help: {problem}", location=self.get_location())
            return []
        self.env.calibration_documented_scripts = getattr(self.env, "calibration_documented_scripts", {})
        self.env.calibration_documented_scripts.setdefault(self.env.docname, set()).add(name)
        block = nodes.literal_block(text=_without_general_options(output), classes=["command-help"])
        block["language"] = "text"
        return [block]


def _purge(app, env, docname):
    getattr(env, "calibration_documented_scripts", {}).pop(docname, None)


def _merge(app, env, docnames, other):
    documented = getattr(env, "calibration_documented_scripts", {})
    documented.update(getattr(other, "calibration_documented_scripts", {}))
    env.calibration_documented_scripts = documented


def _check_every_script_documented(app, env):
    documented = set().union(*getattr(env, "calibration_documented_scripts", {}).values())
    for name in console_scripts():
        if name not in documented:
            logger.warning(f"command {name} (setup.cfg) is not documented: add a '.. script-help:: {name}'")


def setup(app):
    app.add_directive("calibration-settings", SettingsTable)
    app.add_directive("calibration-presets", PresetsTable)
    app.add_directive("calibration-phases", PhasesTable)
    app.add_directive("calibration-samples", SamplesTable)
    app.add_directive("calibration-constants", ConstantsTable)
    app.add_directive("script-help", ScriptHelp)
    app.connect("builder-inited", _collect_help)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("env-check-consistency", _check_every_script_documented)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
