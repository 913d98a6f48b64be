"""MarlinReconstruction against the fake Marlin of tests/fake_marlin: outputs, failures, stale files."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError, SettingsError, SteeringError
from ILCDIRAC.CalibrationSystem.Procedure.settings import create_settings
from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_processor import prepare_pfoanalysis
from ILCDIRAC.CalibrationSystem.Procedure.steering import render_steering
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import ReconstructionOutput
from ILCDIRAC.CalibrationSystem.Simulation.builtin_reconstruction import reconstruct
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import DetectorTruth
from ILCDIRAC.CalibrationSystem.Worker.marlin import MarlinReconstruction, is_photon_training
from ILCDIRAC.CalibrationSystem.Worker.pandora_settings import TRAINING_LIKELIHOOD, write_training_settings
from ILCDIRAC.CalibrationSystem.Worker.pfoanalysis_file import read_pfoanalysis, write_pfoanalysis
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import write_samples

FAKE_MARLIN = Path(__file__).parents[1] / 'fake_marlin' / 'Marlin'
SETTINGS = create_settings('CLIC')


@pytest.fixture(scope='module')
def samples(tmp_path_factory):
    return write_samples(tmp_path_factory.mktemp('samples'), events_per_file=30, files_per_sample=2,
                         truth=DetectorTruth(seed=3))


@pytest.fixture
def bin_directory(tmp_path):
    """A directory with a 'Marlin' running the fake with this interpreter (which has the package)."""
    directory = tmp_path / 'bin'
    directory.mkdir()
    wrapper = directory / 'Marlin'
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_MARLIN}" "$@"\n')
    wrapper.chmod(0o755)
    return directory


@pytest.fixture
def on_path(bin_directory, monkeypatch):
    monkeypatch.setenv('PATH', f'{bin_directory}{os.pathsep}{os.environ["PATH"]}')
    monkeypatch.delenv('FAKE_MARLIN_FAIL', raising=False)
    return bin_directory


def _steering(samples, sample='kaon', pandora_settings=None):
    """A step's steering file, made as a worker makes it from the calibration's stored file."""
    with open(samples['steeringFile'], 'rb') as stream:
        template = prepare_pfoanalysis(stream.read(), SETTINGS).steering_file
    processor_parameters = {('MyPfoAnalysis', 'RootFile'): 'pfoAnalysis.root'}
    if pandora_settings:
        processor_parameters[('MyDDMarlinPandora', 'PandoraSettingsXmlFile')] = pandora_settings
    files = ' '.join(samples['inputFiles'][sample])
    return render_steering(template, {}, SETTINGS, {'LCIOInputFiles': files, 'SkipNEvents': '4',
                                                    'MaxRecordNumber': '40'}, processor_parameters)


def _assert_same(got, expected):
    assert set(got.columns) == set(expected.columns)
    for name, values in expected.columns.items():
        np.testing.assert_array_equal(got.columns[name], values, err_msg=name)
    assert set(got.histograms) == set(expected.histograms)
    for name, histogram in expected.histograms.items():
        np.testing.assert_array_equal(got.histograms[name].counts, histogram.counts, err_msg=name)
        assert got.histograms[name][2:] == histogram[2:]    # stored sumw, sumwx


def test_fake_marlin_run_gives_the_builtin_reconstruction(samples, on_path, tmp_path):
    work = tmp_path / 'work'
    steering = _steering(samples)
    output = MarlinReconstruction('v02-02', work)(steering, SETTINGS)
    _assert_same(output, reconstruct(steering, SETTINGS))
    assert any(histogram.sumw > 0 for histogram in output.histograms.values())   # kaon direction corrections
    assert output.columns['event'].tolist() == list(range(4, 44))
    assert (work / 'marlin_001.xml').read_bytes() == steering
    log = (work / 'marlin_001.log').read_text()
    assert f'-c {work / "marlin_001.xml"}' in log and 'is a valid steering file' in log
    assert 'wrote pfoAnalysis.root' in log     # relative to the work directory, where Marlin runs


def test_init_script_template_sets_up_the_environment(samples, tmp_path, monkeypatch):
    """The release's init script is sourced in bash and puts its Marlin on PATH; this Marlin
    copies a prepared ROOT file to the RootFile (the fake's reconstruction is tested above)."""
    prepared = tmp_path / 'prepared.root'
    steering = _steering(samples, 'gamma')
    expected = reconstruct(steering, SETTINGS)
    write_pfoanalysis(prepared, expected)
    release = tmp_path / 'releases' / 'v02-02'
    (release / 'bin').mkdir(parents=True)
    (release / 'bin' / 'Marlin').write_text(f'#!/bin/sh\n[ "$1" = -c ] || cp "{prepared}" pfoAnalysis.root\n')
    (release / 'bin' / 'Marlin').chmod(0o755)
    # a sourced script sees the caller's positional parameters unless they are cleared
    (release / 'init_ilcsoft.sh').write_text(f'[ $# -eq 0 ] || return 1\nexport PATH="{release / "bin"}:$PATH"\n')
    monkeypatch.setenv('PATH', os.defpath)
    template = str(tmp_path / 'releases' / '{version}' / 'init_ilcsoft.sh')
    output = MarlinReconstruction('v02-02', tmp_path / 'work', init_script=template)(steering, SETTINGS)
    _assert_same(output, expected)


def test_photon_training_returns_the_likelihood_file(samples, on_path, tmp_path):
    work = tmp_path / 'work'
    training = write_training_settings(work, open(samples['photonTrainingSettingsFile'], 'rb').read())
    steering = _steering(samples, 'zuds', training)
    assert is_photon_training(steering, SETTINGS)
    output = MarlinReconstruction('v02-02', work)(steering, SETTINGS)
    expected = reconstruct(steering, SETTINGS).likelihood
    assert expected and output == ReconstructionOutput(likelihood=expected)
    assert (work / TRAINING_LIKELIHOOD).read_bytes() == expected


@pytest.mark.parametrize('failure, message', [
    ('check', r'Marlin -c \S+marlin_001.xml exited with code 1 \(failed\)'),
    ('exit', r'Marlin \S+marlin_001.xml exited with code 1 \(failed\)[^$]*fake failure'),
    ('crash', r'exited with code 139 \(killed by signal 11\)[^$]*segmentation violation'),
    ('nooutput', r'ended without error but wrote no \S+pfoAnalysis.root'),
])
def test_failures_are_errors_with_the_log(samples, on_path, tmp_path, monkeypatch, failure, message):
    monkeypatch.setenv('FAKE_MARLIN_FAIL', failure)
    with pytest.raises(ProcedureError, match=message) as raised:
        MarlinReconstruction('v02-02', tmp_path / 'work')(_steering(samples), SETTINGS)
    assert f'End of the log {tmp_path / "work" / "marlin_001.log"}' in str(raised.value)


def test_stale_output_of_a_previous_step_is_not_reused(samples, on_path, tmp_path, monkeypatch):
    """Physics.md bug 16: a step whose Marlin wrote nothing must not report the last step's file."""
    work = tmp_path / 'work'
    work.mkdir()
    stale = work / 'pfoAnalysis.root'
    steering = _steering(samples)
    write_pfoanalysis(stale, reconstruct(steering, SETTINGS))
    assert read_pfoanalysis(stale).columns    # a perfectly readable file of the "previous step"
    (work / TRAINING_LIKELIHOOD).write_bytes(b'<stale/>')
    monkeypatch.setenv('FAKE_MARLIN_FAIL', 'nooutput')
    marlin = MarlinReconstruction('v02-02', work)
    with pytest.raises(ProcedureError, match='wrote no'):
        marlin(steering, SETTINGS)
    assert not stale.exists() and not (work / TRAINING_LIKELIHOOD).exists()
    with pytest.raises(ProcedureError, match='marlin_002.log'):   # each run keeps its steering file and log
        marlin(steering, SETTINGS)
    assert sorted(os.listdir(work)) == ['marlin_001.log', 'marlin_001.xml', 'marlin_002.log', 'marlin_002.xml']


def test_truncated_output_is_an_error_naming_the_file(samples, on_path, tmp_path):
    """Marlin exits 0 but its RootFile is unreadable: the reader's message and the log tail."""
    work = tmp_path / 'work'
    wrapper = on_path / 'Marlin'
    # exits 0 after writing half a ROOT header, whatever the arguments
    wrapper.write_text(f'#!/bin/sh\n[ "$1" = -c ] || printf root > "{work}/pfoAnalysis.root"\n')
    with pytest.raises(ProcedureError, match=r'pfoAnalysis.root is not a readable ROOT file.*End of the log'):
        MarlinReconstruction('v02-02', work)(_steering(samples), SETTINGS)


def test_missing_marlin_or_init_script(samples, tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path / 'nothing'))
    with pytest.raises(ProcedureError, match="Marlin executable 'Marlin' is not on PATH"):
        MarlinReconstruction('v02-02', tmp_path / 'work')(_steering(samples), SETTINGS)
    with pytest.raises(ProcedureError, match=r'init script \S+/v02-02/init.sh of release v02-02 does not exist'):
        MarlinReconstruction('v02-02', tmp_path / 'work', init_script=str(tmp_path / '{version}' / 'init.sh'))(
            _steering(samples), SETTINGS)
    monkeypatch.setenv('PATH', os.defpath)
    empty_release = tmp_path / 'init.sh'
    empty_release.write_text('true\n')   # an environment without Marlin
    with pytest.raises(ProcedureError, match=r'exited with code 127 \(Marlin or the init script was not found\)'):
        MarlinReconstruction('v02-02', tmp_path / 'work', init_script=str(empty_release),
                             marlin='Marlin-not-installed')(_steering(samples), SETTINGS)


def test_unusable_arguments_are_refused(samples, on_path, tmp_path):
    for version in ('', '../v1', None):
        with pytest.raises(SettingsError, match='is not a release name'):
            MarlinReconstruction(version, tmp_path)
    marlin = MarlinReconstruction('v02-02', tmp_path / 'work')
    with pytest.raises(SettingsError, match='DDPandoraPFANewProcessorName'):
        marlin(_steering(samples), {})
    no_root_file = _steering(samples).replace(b'pfoAnalysis.root', b'')
    with pytest.raises(SteeringError, match='PfoAnalysis processor MyPfoAnalysis sets no RootFile'):
        marlin(no_root_file, SETTINGS)
    assert not (tmp_path / 'work').exists()   # refused before anything ran
