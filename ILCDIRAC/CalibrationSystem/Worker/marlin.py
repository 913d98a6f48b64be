"""The real reconstruction of a worker: iLCSoft's Marlin run on the step's steering file.

Why this is strict (physics.md §6, bug 16): the reference ignored Marlin's exit code and kept the
previous step's output, so a crashed step silently re-uploaded stale data. Here the outputs
named in the steering file are deleted before the run, both Marlin invocations must exit 0, and
the output must then exist: being created after its deletion, it is this run's. Anything else is
a ProcedureError carrying the end of Marlin's log, which stays in the work directory.

The iLCSoft environment comes from the release's init_ilcsoft.sh, given explicitly (for CLIC
builds on CVMFS: /cvmfs/clicdp.cern.ch/iLCSoft/builds/{version}/<platform>/init_ilcsoft.sh, with
'{version}' replaced by the software version). Without one, Marlin must be on PATH.
"""
import os
import shutil
import subprocess

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError, SettingsError, SteeringError
from ILCDIRAC.CalibrationSystem.Procedure.steering import (
    parse_steering, processor_name_of_type, processor_parameter)
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import ReconstructionOutput
from ILCDIRAC.CalibrationSystem.Worker.pandora_settings import TRAINING_LIKELIHOOD, TRAINING_SETTINGS
from ILCDIRAC.CalibrationSystem.Worker.pfoanalysis_file import read_pfoanalysis

LOG_TAIL_LINES = 30
# Source the init script with no positional parameters (a sourced script sees the caller's),
# then replace the shell by Marlin with the remaining arguments.
_WITH_ENVIRONMENT = 'init=$1; shift; command=("$@"); set --; source "$init" && exec "${command[@]}"'


def is_photon_training(tree, settings):
    """True if DDMarlinPandora runs with the photon-training PandoraSettings (stage 2): the same
    rule as the built-in reconstruction, on the basename of PandoraSettingsXmlFile.

    :param tree: the step's steering file, parsed (``Procedure.steering.parse_steering``)
    :param dict settings: the calibration settings (DDPandoraPFANewProcessorName)
    :return: bool
    """
    try:
        pandora = settings['DDPandoraPFANewProcessorName']
    except (KeyError, TypeError):
        raise SettingsError('settings lack DDPandoraPFANewProcessorName: pass the settings returned by '
                            'validate_settings') from None
    pandora_settings = processor_parameter(tree, pandora, 'PandoraSettingsXmlFile') or ''
    return os.path.basename(pandora_settings) == TRAINING_SETTINGS


class MarlinReconstruction:
    """callable(steering bytes, settings) -> ReconstructionOutput, running Marlin in ``work_directory``."""

    def __init__(self, software_version, work_directory, init_script=None, marlin='Marlin'):
        """
        :param str software_version: the iLCSoft release, replacing '{version}' in ``init_script``
        :param str work_directory: where Marlin runs and writes its outputs and log
        :param str init_script: path (or template) of the release's init_ilcsoft.sh; None: use the
            Marlin found on PATH
        :param str marlin: the Marlin executable (name looked up on PATH, or a path)
        """
        if not isinstance(software_version, str) or not software_version.strip() \
                or '/' in software_version or software_version in ('.', '..'):
            raise SettingsError(f'software version {software_version!r} is not a release name such as '
                                '"ILCSoft-2019-02-20_gcc62"')
        self.software_version = software_version
        self.work_directory = os.path.abspath(work_directory)
        self.init_script = None if init_script is None else init_script.replace('{version}', software_version)
        self.marlin = marlin
        self.runs = 0

    def __call__(self, steering, settings):
        tree = parse_steering(steering)
        training = is_photon_training(tree, settings)
        root_file = self._root_file(tree)
        likelihood = os.path.join(self.work_directory, TRAINING_LIKELIHOOD)
        command = self._command()
        os.makedirs(self.work_directory, exist_ok=True)
        self.runs += 1
        stem = os.path.join(self.work_directory, f'marlin_{self.runs:03d}')
        steering_path, log_path = f'{stem}.xml', f'{stem}.log'
        with open(steering_path, 'wb') as stream:
            stream.write(steering if isinstance(steering, bytes) else steering.encode('utf-8'))
        for stale in (root_file, likelihood):
            _remove(stale)
        with open(log_path, 'wb') as log:
            for arguments in (['-c', steering_path], [steering_path]):
                self._run(command, arguments, log, log_path)
        output = likelihood if training else root_file
        if not os.path.isfile(output):
            raise ProcedureError(f'Marlin ({self.software_version}) ended without error but wrote no {output}: '
                                 f'check the steering file {steering_path}. {_tail(log_path)}')
        if training:
            with open(output, 'rb') as stream:
                return ReconstructionOutput(likelihood=stream.read())
        try:
            return read_pfoanalysis(output)
        except ValueError as error:
            raise ProcedureError(f'{error}. {_tail(log_path)}') from None

    def _root_file(self, tree):
        processor = processor_name_of_type(tree, 'PfoAnalysis')
        root_file = processor_parameter(tree, processor, 'RootFile')
        if not root_file:
            raise SteeringError(f'PfoAnalysis processor {processor} sets no RootFile: name the ROOT file it writes')
        return os.path.join(self.work_directory, root_file)  # Marlin runs in the work directory

    def _command(self):
        """The command prefix running Marlin, in the release's environment if one is given."""
        if self.init_script is None:
            marlin = shutil.which(self.marlin)
            if marlin is None:
                raise ProcedureError(f'Marlin executable {self.marlin!r} is not on PATH: give the init_ilcsoft.sh '
                                     f'of release {self.software_version}, or set up iLCSoft before the worker')
            return [marlin]
        if not os.path.isfile(self.init_script):
            raise ProcedureError(f'iLCSoft init script {self.init_script} of release {self.software_version} does '
                                 'not exist: check the software version and that CVMFS is mounted')
        bash = shutil.which('bash')
        if bash is None:
            raise ProcedureError('bash is not on PATH, so the iLCSoft init script cannot be sourced')
        return [bash, '-c', _WITH_ENVIRONMENT, 'marlin-environment', self.init_script, self.marlin]

    def _run(self, command, arguments, log, log_path):
        log.write(f'=== {" ".join(command + arguments)}\n'.encode())
        log.flush()
        try:
            code = subprocess.run(command + arguments, cwd=self.work_directory, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, check=False).returncode
        except OSError as error:
            raise ProcedureError(f'cannot start Marlin ({command[0]}): {error}') from None
        if code != 0:
            meaning = (f'killed by signal {-code}' if code < 0 else
                       'Marlin or the init script was not found' if code == 127 else
                       f'killed by signal {code - 128}' if code > 128 else 'failed')
            raise ProcedureError(f'Marlin {" ".join(arguments)} exited with code {code} ({meaning}). '
                                 f'{_tail(log_path)}')


def _remove(path):
    """Delete a previous step's output, so that it can never be taken for this step's."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise ProcedureError(f'cannot delete the previous output {path}: {error}') from None


def _tail(log_path):
    with open(log_path, 'rb') as stream:
        lines = stream.read().decode('utf-8', errors='replace').splitlines()
    return f'End of the log {log_path}:\n' + '\n'.join(lines[-LOG_TAIL_LINES:])
