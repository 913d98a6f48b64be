"""Which reconstruction a worker runs: iLCSoft's Marlin, or the built-in detector model.

The built-in model reads only synthetic event files, Marlin only real ones; 'auto' looks at the
worker's input files and takes the one that can read them.
"""
from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError
from ILCDIRAC.CalibrationSystem.Simulation.builtin_reconstruction import reconstruct as builtin_reconstruct
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import is_synthetic_file

MODES = ("auto", "builtin", "marlin")


def choose_reconstruction(mode, setup, input_data, work_directory, init_script=None):
    """The reconstruct callable for a worker.

    :param str mode: 'auto', 'builtin' or 'marlin'
    :param dict setup: the calibration setup from the service (softwareVersion, settings, ...)
    :param dict input_data: {sample: [files, skip, events]} of this worker
    :param str work_directory: where Marlin runs
    :param str init_script: the iLCSoft init script (template with '{version}') for Marlin
    :return: callable(steering bytes, settings) -> ReconstructionOutput: the built-in detector
        model ('builtin', or 'auto' when every input file is synthetic) or a MarlinReconstruction
    """
    if mode not in MODES:
        raise SettingsError(f"Unknown reconstruction {mode!r}: use one of {', '.join(MODES)}")
    files = [name for sample_files, _, _ in input_data.values() for name in sample_files]
    if mode == "auto":
        mode = "builtin" if files and all(is_synthetic_file(name) for name in files) else "marlin"
    if mode == "builtin":
        return builtin_reconstruct
    # imported here: Marlin's output reader (uproot, awkward) would add a quarter of a second to the
    # start of every worker of the built-in model, which local jobs sharing a few cores all pay
    from ILCDIRAC.CalibrationSystem.Worker.marlin import MarlinReconstruction

    return MarlinReconstruction(setup["softwareVersion"], work_directory, init_script)
