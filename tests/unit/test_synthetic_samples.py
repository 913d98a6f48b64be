"""Synthetic event files, the generated sample directory, the built-in reconstruction and its script."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pandora_photon_reader import read_photon_settings

from ILCDIRAC.CalibrationSystem.Procedure.constants import CONSTANTS
from ILCDIRAC.CalibrationSystem.Procedure.errors import SteeringError
from ILCDIRAC.CalibrationSystem.Procedure.samples import sample_type_of_path
from ILCDIRAC.CalibrationSystem.Procedure.settings import create_settings
from ILCDIRAC.CalibrationSystem.Procedure.steering import (
    global_parameter, parse_steering, processor_parameter, read_constants, render_steering)
from ILCDIRAC.CalibrationSystem.Procedure.pandora_settings import check_training_settings
from ILCDIRAC.CalibrationSystem.Procedure.photon_likelihood import parse_likelihood
from ILCDIRAC.CalibrationSystem.Simulation.builtin_reconstruction import reconstruct, reconstruction_stage
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import DetectorTruth, generate, simulate
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import fixed_point, phase_fixed_points
from ILCDIRAC.CalibrationSystem.Worker.pandora_settings import write_calibration_settings, write_training_settings
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import (
    FORMAT, EventFile, is_synthetic_file, read_event_file, write_samples)

SETTINGS = create_settings('CLIC')
TRUTH = DetectorTruth(seed=11)


@pytest.fixture
def samples(tmp_path):
    return write_samples(tmp_path / 'samples', events_per_file=7, files_per_sample=4, truth=TRUTH, offset=0.1)


def _write(path, content):
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def _valid(**changes):
    data = {'format': FORMAT, 'sample': 'gamma', 'energy': 10.0, 'firstEvent': 14, 'events': 7,
            'truth': TRUTH.to_dict()}
    data.update(changes)
    return data


def test_event_file_round_trip(samples):
    path = samples['inputFiles']['kaon'][2]
    assert is_synthetic_file(path)
    assert read_event_file(path) == EventFile(path, 'kaon', 50.0, 14, 7, TRUTH)


def test_is_synthetic_file():
    assert is_synthetic_file('/a/gamma_10GeV_003.synthetic.json')
    assert not is_synthetic_file('/a/gamma_10GeV_003.slcio')
    assert not is_synthetic_file('/a/gamma.synthetic.json/x.slcio')
    assert not is_synthetic_file(None)


@pytest.mark.parametrize('content, message', [
    ('{"format": ', 'not valid JSON'),
    ([1, 2], 'exactly the keys'),
    (_valid(extra=1), 'exactly the keys'),
    ({k: v for k, v in _valid().items() if k != 'truth'}, 'exactly the keys'),
    (_valid(format='other/1'), 'format'),
    (_valid(sample='electron'), 'sample'),
    (_valid(energy=20.0), 'energy'),
    (_valid(energy='10'), 'energy'),
    (_valid(firstEvent=-1), 'firstEvent'),
    (_valid(events=0), 'firstEvent'),
    (_valid(events=True), 'firstEvent'),
    (_valid(events=2.0), 'firstEvent'),
    (_valid(firstEvent=2**31 - 5), 'firstEvent'),
    (_valid(truth=dict(TRUTH.to_dict(), bogus=1)), 'Unknown detector truth keys'),
    (_valid(truth=dict(TRUTH.to_dict(), calibr_ecal=-3)), 'calibr_ecal'),
    (_valid(truth=None), 'truth'),
])
def test_invalid_event_files_are_refused(tmp_path, content, message):
    path = _write(tmp_path / 'x.synthetic.json', content)
    with pytest.raises(ValueError, match=message):
        read_event_file(path)


def test_oversized_missing_and_directory_files_are_refused(tmp_path):
    big = tmp_path / 'big.synthetic.json'
    big.write_bytes(b' ' * (1024 * 1024 + 1))
    with pytest.raises(ValueError, match='limit'):
        read_event_file(str(big))
    with pytest.raises(ValueError, match='Cannot read'):
        read_event_file(str(tmp_path / 'missing.synthetic.json'))
    with pytest.raises(ValueError, match='Cannot read'):
        read_event_file(str(tmp_path))


def test_write_samples_layout(samples):
    base = os.path.dirname(samples['steeringFile'])
    expected_dirs = {'gamma': 'gamma/10', 'muon': 'mu-/10', 'kaon': 'kaon0L/50', 'zuds': 'zuds/91'}
    for sample, relative in expected_dirs.items():
        directory = os.path.join(base, relative)
        assert samples['directories'][sample] == directory
        files = samples['inputFiles'][sample]
        assert sorted(os.listdir(directory)) == [os.path.basename(f) for f in files]
        assert [read_event_file(f).first_event for f in files] == [0, 7, 14, 21]
        assert all(read_event_file(f).sample == sample and sample_type_of_path(f) == sample for f in files)
    assert os.path.basename(samples['inputFiles']['gamma'][3]) == 'gamma_10GeV_003.synthetic.json'
    assert samples['numberOfEventsPerFile'] == {'gamma': 7, 'muon': 7, 'kaon': 7, 'zuds': 7}
    truth = json.loads(open(samples['truthFile']).read())
    assert DetectorTruth.from_dict(truth['truth']) == TRUTH
    assert truth['fixedPoints'] == {sample: fixed_point(TRUTH, sample) for sample in ('gamma', 'muon', 'kaon')}


def test_samples_hold_the_pandora_settings_of_the_steering_file_and_of_the_training(samples):
    """The steering file names the default settings by their absolute path (a worker runs elsewhere);
    the training settings lie where createCalibration looks for them; Pandora reads both."""
    directory = os.path.dirname(samples['steeringFile'])
    default, training = samples['pandoraSettingsFile'], samples['photonTrainingSettingsFile']
    assert default == os.path.join(directory, 'PandoraSettings', 'PandoraSettingsDefault.xml')
    assert training == os.path.join(directory, 'CalibrationPandoraSettings', 'PandoraSettingsPhotonTraining.xml')
    steering = open(samples['steeringFile'], 'rb').read()
    assert processor_parameter(steering, 'MyDDMarlinPandora', 'PandoraSettingsXmlFile') == default
    for path in (default, training):
        assert open(path, 'rb').read().startswith(b'<!-- ')
    assert read_photon_settings(open(default, 'rb').read()) == [
        {'histogram_file': 'PandoraSettings/PandoraLikelihoodData9EBin.xml', 'make_pdf_histograms': False}]
    algorithm, = read_photon_settings(open(training, 'rb').read())
    assert (algorithm['make_pdf_histograms'], algorithm['n_energy_bins']) == (True, 9)
    check_training_settings(open(training, 'rb').read())
    assert reconstruction_stage(steering, SETTINGS) == 1


def test_truth_file_lists_the_fixed_points_of_every_phase(samples):
    truth = json.loads(open(samples['truthFile']).read())
    expected = phase_fixed_points(TRUTH)
    assert truth['phaseFixedPoints'] == {str(stage): {str(phase): values for phase, values in phases.items()}
                                         for stage, phases in expected.items()}
    final = truth['finalConstants']
    assert sorted(final) == sorted(CONSTANTS)
    assert final['ECalToEMGeVCalibration'] == expected[3][3]['ECalToEMGeVCalibration']  # stage-3 response
    assert final['ECalToEMGeVCalibration'] != expected[1][3]['ECalToEMGeVCalibration']
    assert final['CalibrHCALOther'] == pytest.approx(truth['fixedPoints']['muon']['CalibrHCALOther'], rel=1e-8)
    assert truth['calibrHcalRingTrue'] == pytest.approx(TRUTH.calibr_hcal_ring)
    assert truth['directionCorrectionMeans']['EndCap'] == pytest.approx(0.88, abs=0.002)
    assert truth['hcalSimMipMpvs']['Other'] == pytest.approx(0.0219 / 46.9 / 0.9)
    assert sorted(truth['initialConstants']) == sorted(CONSTANTS)


def test_steering_file_has_processors_and_offset_constants(samples):
    """As the real CLIC and CLD reconstruction files: no PfoAnalysis processor (creation adds it)."""
    content = open(samples['steeringFile'], 'rb').read()
    steering = parse_steering(content)
    types = {name: processor.type for name, processor in steering.processors.items()}
    assert types == {'InitDD4hep': 'InitializeDD4hep', 'MyDDCaloDigi': 'DDCaloDigi',
                     'MyDDMarlinPandora': 'DDPandoraPFANewProcessor'}
    assert list(steering.executed) == list(types)
    constants = read_constants(content, CONSTANTS, SETTINGS)
    gamma = fixed_point(TRUTH, 'gamma')
    assert constants['CalibrECAL'] == pytest.approx([v * 1.1 for v in gamma['CalibrECAL']])
    assert constants['ECALEndcapCorrectionFactor'] == pytest.approx(gamma['ECALEndcapCorrectionFactor'] * 0.95)
    assert constants['ECalToEMGeVCalibration'] == pytest.approx(gamma['ECalToEMGeVCalibration'] * 0.9)
    kaon = fixed_point(TRUTH, 'kaon')
    assert constants['CalibrHCALBarrel'] == pytest.approx(kaon['CalibrHCALBarrel'] * 1.1)
    assert constants['CalibrHCALEndcap'] == pytest.approx(kaon['CalibrHCALEndcap'] * 0.9)
    assert constants['ECalToHadGeVCalibrationEndCap'] == pytest.approx(0.9 * kaon['ECalToHadGeVCalibrationEndCap'])
    assert constants['HCalToHadGeVCalibration'] == pytest.approx(1.1 * kaon['HCalToHadGeVCalibration'])
    muon = fixed_point(TRUTH, 'muon')
    assert constants['CalibrHCALOther'] == pytest.approx(muon['CalibrHCALOther'] * 1.1)
    assert constants['ECalToMipCalibration'] == pytest.approx(1.1 / 0.0057)
    assert constants['HCalToMipCalibration'] == pytest.approx(0.9 * muon['HCalToMipCalibration'])
    assert constants['MuonToMipCalibration'] == pytest.approx(1.1 / 5e-5)
    assert global_parameter(content, 'LCIOInputFiles').split() == samples['inputFiles']['gamma']
    for name in ('SkipNEvents', 'MaxRecordNumber'):
        assert global_parameter(content, name) == '0'
    for name in ('ECALBarrelTimeWindowMax', 'ECALEndcapTimeWindowMax', 'HCALBarrelTimeWindowMax',
                 'HCALEndcapTimeWindowMax'):
        assert processor_parameter(steering, 'MyDDCaloDigi', name) is not None
    for name in ('MaxHCalHitHadronicEnergy', 'PandoraSettingsXmlFile'):
        assert processor_parameter(steering, 'MyDDMarlinPandora', name) is not None


def test_write_samples_refuses_overwrite_and_bad_arguments(tmp_path, samples):
    with pytest.raises(ValueError, match='overwrite'):
        write_samples(os.path.dirname(samples['steeringFile']))
    for bad in ({'events_per_file': 0}, {'files_per_sample': 1.5}, {'offset': 0.7}, {'offset': -0.1},
                {'truth': {}}, {'events_per_file': True}):
        with pytest.raises(ValueError):
            write_samples(tmp_path / 'other', **bad)
    assert not (tmp_path / 'other').exists()
    in_the_way = tmp_path / 'file'
    in_the_way.write_text('x')
    with pytest.raises(OSError):
        write_samples(in_the_way / 'sub')


def _slice_steering(samples, files, skip, n_events, constants=None, pandora_settings=None):
    template = open(samples['steeringFile'], 'rb').read()
    processors = {} if pandora_settings is None else {('MyDDMarlinPandora', 'PandoraSettingsXmlFile'): pandora_settings}
    return render_steering(template, constants or {}, SETTINGS,
                           {'LCIOInputFiles': ' '.join(files), 'SkipNEvents': skip, 'MaxRecordNumber': n_events},
                           processors)


def test_reconstruct_selects_events_across_file_boundaries(samples):
    gamma = samples['inputFiles']['gamma']
    steering = _slice_steering(samples, gamma[1:4], 5, 12)
    columns = reconstruct(steering, SETTINGS).columns
    assert list(columns['event']) == list(range(12, 24))
    constants = read_constants(steering, ('CalibrECAL', 'ECALEndcapCorrectionFactor', 'ECalToEMGeVCalibration',
                                          'HCalToEMGeVCalibration'), SETTINGS)
    expected = simulate('gamma', 12, 12, constants, TRUTH)
    for name, array in expected.items():
        assert np.array_equal(columns[name], array), name


def test_reconstruct_kaon_slice_reads_the_hadronic_constants(samples):
    steering = _slice_steering(samples, samples['inputFiles']['kaon'][2:], 6, 3)
    columns = reconstruct(steering, SETTINGS).columns
    assert list(columns['event']) == [20, 21, 22]
    constants = read_constants(steering, CONSTANTS, SETTINGS)
    expected = simulate('kaon', 20, 3, constants, TRUTH)
    assert all(np.array_equal(columns[name], expected[name]) for name in expected)


def test_reconstruct_defaults_and_constants(samples):
    gamma = samples['inputFiles']['gamma']
    everything = reconstruct(open(samples['steeringFile'], 'rb').read(), SETTINGS).columns
    assert list(everything['event']) == list(range(28))
    start = read_constants(open(samples['steeringFile'], 'rb').read(), ('CalibrECAL',), SETTINGS)['CalibrECAL']
    doubled = _slice_steering(samples, gamma, 0, 0, {'CalibrECAL': [2 * value for value in start]})
    doubled = reconstruct(doubled, SETTINGS).columns
    # The model's ECal response is non-linear: (C/C_true)**γ_E.
    np.testing.assert_allclose(doubled['ECalTotalCaloHitEnergy'],
                               2 ** TRUTH.ecal_nonlinearity * everything['ECalTotalCaloHitEnergy'], rtol=1e-6)
    empty = reconstruct(_slice_steering(samples, gamma[:1], 7, 0), SETTINGS).columns
    assert empty['event'].shape == (0,)


def _likelihood(tmp_path, events=50):
    path = tmp_path / 'newPhotonLikelihood.xml'
    path.write_bytes(generate('zuds', np.arange(events), {}, TRUTH, stage=2).likelihood)
    return path


def _stage3_settings(samples, directory, likelihood):
    return write_calibration_settings(directory, likelihood, samples['pandoraSettingsFile'])


def _training_settings(samples, directory):
    return write_training_settings(directory, open(samples['photonTrainingSettingsFile'], 'rb').read())


def test_stage_follows_the_pandora_settings(samples, tmp_path, monkeypatch):
    gamma = samples['inputFiles']['gamma']
    likelihood = _likelihood(tmp_path)
    stage3_settings = _stage3_settings(samples, str(tmp_path / 'stage3'), str(likelihood))
    training_settings = _training_settings(samples, str(tmp_path / 'stage2'))
    no_algorithm = tmp_path / 'plain.xml'
    no_algorithm.write_text('<pandora><algorithm type="ClusteringParent"/></pandora>')
    missing_likelihood = _stage3_settings(samples, str(tmp_path / 'missing'), str(tmp_path / 'absent.xml'))
    cases = [
        (None, 1),  # the samples' default settings name a likelihood file that does not exist here
        (stage3_settings, 3),
        (training_settings, 2),
        ('/nowhere/CalibrationPandoraSettings/PandoraSettingsPhotonTraining.xml', 2),  # the name decides
        (str(no_algorithm), 1),
        (missing_likelihood, 1),
        (str(tmp_path / 'absent_settings.xml'), 1),
    ]
    for pandora_settings, stage in cases:
        steering = _slice_steering(samples, gamma[:1], 0, 0, pandora_settings=pandora_settings)
        assert reconstruction_stage(steering, SETTINGS) == stage, pandora_settings
    # Relative paths are resolved from the working directory, as Marlin does.
    relative = tmp_path / 'relative'
    relative.mkdir()
    (relative / 'settings.xml').write_text('<pandora><algorithm type="PhotonReconstruction">'
                                           '<HistogramFile>like.xml</HistogramFile></algorithm></pandora>')
    (relative / 'like.xml').write_bytes(likelihood.read_bytes())
    steering = _slice_steering(samples, gamma[:1], 0, 0, pandora_settings='settings.xml')
    assert reconstruction_stage(steering, SETTINGS) == 1
    monkeypatch.chdir(relative)
    assert reconstruction_stage(steering, SETTINGS) == 3


def test_stage_3_response_and_invalid_pandora_inputs(samples, tmp_path):
    gamma, kaon = samples['inputFiles']['gamma'], samples['inputFiles']['kaon']
    stage3_settings = _stage3_settings(samples, str(tmp_path / 'stage3'), str(_likelihood(tmp_path)))
    for files, column, ratio in ((gamma, 'pfoECalToEmEnergy', 0.99 / 0.95), (kaon, 'pfoEnergyTotal', 0.99 / 0.96)):
        stage1 = reconstruct(_slice_steering(samples, files, 0, 0), SETTINGS).columns
        stage3 = reconstruct(_slice_steering(samples, files, 0, 0, pandora_settings=stage3_settings), SETTINGS).columns
        used = stage1[column] > 0
        assert used.sum() > 10
        np.testing.assert_allclose(stage3[column][used] / stage1[column][used], ratio, rtol=1e-5)
    corrupt = tmp_path / 'corrupt.xml'
    corrupt.write_bytes(b'<NSignalEvents>1 2</NSignalEvents>')
    broken_settings = tmp_path / 'broken.xml'
    broken_settings.write_text('<pandora><algorithm')
    for pandora_settings, message in ((_stage3_settings(samples, str(tmp_path / 'c'), str(corrupt)), 'invalid'),
                                      (str(broken_settings), 'is not closed')):
        with pytest.raises(ValueError, match=message):
            reconstruct(_slice_steering(samples, gamma[:1], 0, 0, pandora_settings=pandora_settings), SETTINGS)


def test_reconstruct_photon_training_and_muons(samples, tmp_path):
    zuds, muon = samples['inputFiles']['zuds'], samples['inputFiles']['muon']
    training = _training_settings(samples, str(tmp_path))
    output = reconstruct(_slice_steering(samples, zuds[1:3], 2, 9, pandora_settings=training), SETTINGS)
    assert output.likelihood == generate('zuds', np.arange(9, 18), {}, TRUTH, stage=2).likelihood
    assert parse_likelihood(output.likelihood).n_signal.sum() > 0
    steering = _slice_steering(samples, muon[1:], 3, 10)
    output = reconstruct(steering, SETTINGS)
    expected = generate('muon', np.arange(10, 20), read_constants(steering, CONSTANTS, SETTINGS), TRUTH)
    for name, column in expected.columns.items():
        np.testing.assert_array_equal(output.columns[name], column, err_msg=name)
    for name, histogram in expected.histograms.items():
        np.testing.assert_array_equal(output.histograms[name].counts, histogram.counts, err_msg=name)
        assert output.histograms[name].sumwx == histogram.sumwx
    assert output.histograms['HCalDirectionCorrectedCaloHitEnergy'].sumw == 600


def test_reconstruct_refusals(samples, tmp_path):
    gamma, muon = samples['inputFiles']['gamma'], samples['inputFiles']['muon']
    other_truth = _write(tmp_path / 'g.synthetic.json', _valid(truth=DetectorTruth(seed=12).to_dict()))
    cases = [
        (_slice_steering(samples, [gamma[0], muon[1]], 0, 3), 'differ in sample'),
        (_slice_steering(samples, [gamma[0], other_truth], 0, 3), 'differ in sample'),
        (_slice_steering(samples, gamma[:2], 10, 5), 'hold only 14'),
        (_slice_steering(samples, gamma[:2], 15, 0), 'hold only 14'),
        (_slice_steering(samples, [gamma[0], '/data/gamma_001.slcio'], 0, 3), 'need Marlin'),
        (_slice_steering(samples, gamma[:1], -1, 3), 'negative'),
        (_slice_steering(samples, gamma[:1], 'abc', 3), 'not an integer'),
        (_slice_steering(samples, samples['inputFiles']['zuds'][:1], 0, 3), 'zuds'),
    ]
    for steering, message in cases:
        with pytest.raises(ValueError, match=message):
            reconstruct(steering, SETTINGS)
    with pytest.raises(ValueError, match='LCIOInputFiles'):
        reconstruct(_slice_steering(samples, [], 0, 3), SETTINGS)
    with pytest.raises(SteeringError):
        reconstruct(_slice_steering(samples, gamma[:1], 0, 3), dict(SETTINGS, DDCaloDigiName='Other'))


def _run_script(*arguments):
    command = [sys.executable, '-m', 'ILCDIRAC.CalibrationSystem.scripts.dirac_calibration_generate_samples',
               *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_script_generates_samples_without_dirac_configuration(tmp_path):
    result = _run_script('--output', str(tmp_path / 'out'), '--events-per-file', '3', '--files-per-sample', '2',
                         '--seed', '5', '--robust', '--offset', '0.2')
    assert result.returncode == 0, result.stdout + result.stderr
    paths = json.loads(result.stdout)
    event_file = read_event_file(paths['inputFiles']['gamma'][1])
    assert (event_file.first_event, event_file.events) == (3, 3)
    assert event_file.truth == DetectorTruth(seed=5, robustness=True)


@pytest.mark.parametrize('arguments', [
    (), ('--output',), ('--bogus',), ('--output', 'x', '--offset', '2'),
])
def test_script_refuses_bad_arguments(tmp_path, arguments):
    result = _run_script(*[str(tmp_path / a) if a == 'x' else a for a in arguments])
    assert result.returncode == 1, result.stdout + result.stderr
    assert not (tmp_path / 'x').exists()
