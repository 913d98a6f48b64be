"""Known answers for the settings schema, presets and validation."""

import copy

import pytest

from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError
from ILCDIRAC.CalibrationSystem.Procedure.settings import (
    DEFAULT_SETTINGS, PRESETS, create_settings, validate_settings)


def test_defaults():
    assert DEFAULT_SETTINGS['digitisationAccuracy'] == 0.05
    assert DEFAULT_SETTINGS['pandoraPFAAccuracy'] == 0.025
    assert (DEFAULT_SETTINGS['startStage'], DEFAULT_SETTINGS['startPhase']) == (1, 0)
    assert (DEFAULT_SETTINGS['stopStage'], DEFAULT_SETTINGS['stopPhase']) == (3, 4)
    assert DEFAULT_SETTINGS['fractionOfFinishedJobsNeededToStartNextStep'] == 0.9
    assert DEFAULT_SETTINGS['nMaxIterationsPerPhase'] == 30
    assert DEFAULT_SETTINGS['disableSoftwareCompensation'] is True
    assert DEFAULT_SETTINGS['nEcalThinLayers'] == 40 and DEFAULT_SETTINGS['nEcalThickLayers'] == 0
    assert DEFAULT_SETTINGS['ecalResponseCorrectionForThickLayers'] == 1.0
    for grid_only in ('steeringFile', 'outputPath', 'outputSE', 'marlinVersion', 'nameOfTheConfigPackage',
                      'platform', 'numberOfJobs', 'startCalibrationFinished'):
        assert grid_only not in DEFAULT_SETTINGS


def test_defaults_are_the_clic_preset_and_valid():
    assert create_settings('CLIC') == DEFAULT_SETTINGS
    assert validate_settings({}) == DEFAULT_SETTINGS
    assert DEFAULT_SETTINGS['detectorModel'] == 'CLIC_o3_v14' and DEFAULT_SETTINGS['nHcalLayers'] == 60


def test_cld_preset():
    cld = create_settings('CLD')
    assert cld['detectorModel'] == 'FCCee_o1_v04'
    assert cld['nHcalLayers'] == 44
    assert cld['DDCaloDigiName'] == 'MyDDCaloDigi_10ns'
    assert cld['DDPandoraPFANewProcessorName'] == 'MyDDMarlinPandora_10ns'
    assert cld['ecalBarrelCosThetaRange'] == [0.0, 0.643]
    assert cld['ecalEndcapCosThetaRange'] == [0.766, 0.94]
    assert cld['hcalBarrelCosThetaRange'] == [0.15, 0.485]
    assert cld['hcalEndcapCosThetaRange'] == [0.72, 0.94]
    assert cld['digitisationAccuracy'] == 0.05          # the rest comes from the defaults
    assert validate_settings({}, base=cld) == cld
    assert validate_settings({}, base=PRESETS['CLD']) == cld   # a partial base is completed


def test_create_settings_returns_a_copy():
    first = create_settings()
    first['ecalBarrelCosThetaRange'].append(0.9)
    first['nHcalLayers'] = 1
    assert create_settings() == DEFAULT_SETTINGS
    assert DEFAULT_SETTINGS['ecalBarrelCosThetaRange'] == [0.0, 0.65]
    assert PRESETS['CLIC']['ecalBarrelCosThetaRange'] == [0.0, 0.65]


def test_unknown_preset():
    with pytest.raises(SettingsError, match="'ILD'.*CLD, CLIC"):
        create_settings('ILD')


def test_user_over_base_and_normalisation():
    user = {'digitisationAccuracy': 1, 'ecalBarrelCosThetaRange': (0, 0.5), 'nHcalLayers': 48,
            'ecalResponseCorrectionForThickLayers': 2}
    before = copy.deepcopy(user)
    base = create_settings('CLD')
    base_before = copy.deepcopy(base)
    result = validate_settings(user, base=base)
    assert user == before and base == base_before
    assert result['digitisationAccuracy'] == 1.0 and isinstance(result['digitisationAccuracy'], float)
    assert result['ecalBarrelCosThetaRange'] == [0.0, 0.5]
    assert all(isinstance(x, float) for x in result['ecalBarrelCosThetaRange'])
    assert result['ecalResponseCorrectionForThickLayers'] == 2.0
    assert result['nHcalLayers'] == 48
    assert result['DDCaloDigiName'] == 'MyDDCaloDigi_10ns'
    assert set(result) == set(DEFAULT_SETTINGS)


def test_result_does_not_share_lists():
    user = {'hcalBarrelCosThetaRange': [0.1, 0.2]}
    result = validate_settings(user)
    result['hcalBarrelCosThetaRange'][0] = 0.0
    assert user['hcalBarrelCosThetaRange'] == [0.1, 0.2]
    validate_settings({})['ecalEndcapCosThetaRange'][0] = 0.0
    assert DEFAULT_SETTINGS['ecalEndcapCosThetaRange'] == [0.8, 0.92]


def test_unknown_key_suggests_the_closest():
    with pytest.raises(SettingsError, match="unknown setting 'digitisationAcuracy'.*'digitisationAccuracy'"):
        validate_settings({'digitisationAcuracy': 0.1})
    with pytest.raises(SettingsError, match="'numberOfJobs'"):
        validate_settings({'numberOfJobs': 100})
    with pytest.raises(SettingsError, match="'zzz'.*known settings: DDCaloDigiName"):
        validate_settings({'zzz': 1})
    with pytest.raises(SettingsError, match='unknown setting'):
        validate_settings({}, base={'outputSE': 'CERN-DST'})


@pytest.mark.parametrize('key, value, allowed', [
    ('digitisationAccuracy', 0.0, r'\(0, 1\]'),
    ('digitisationAccuracy', 1.5, r'\(0, 1\]'),
    ('digitisationAccuracy', True, 'finite number'),
    ('digitisationAccuracy', '0.05', 'finite number'),
    ('digitisationAccuracy', float('nan'), 'finite number'),
    ('pandoraPFAAccuracy', -0.01, r'\(0, 1\]'),
    ('fractionOfFinishedJobsNeededToStartNextStep', 0, r'\(0, 1\]'),
    ('ecalResponseCorrectionForThickLayers', 0.0, '> 0'),
    ('startStage', 0, r'\[1, 3\]'),
    ('startStage', 4, r'\[1, 3\]'),
    ('startStage', 1.0, 'integer'),
    ('stopStage', True, 'integer'),
    ('startPhase', 6, r'\[0, 5\]'),
    ('stopPhase', -1, r'\[0, 5\]'),
    ('nMaxIterationsPerPhase', 0, '>= 1'),
    ('nMaxIterationsPerPhase', 2.5, '>= 1'),
    ('nEcalThinLayers', -1, '>= 0'),
    ('nEcalThickLayers', '2', '>= 0'),
    ('nHcalLayers', 0, '>= 1'),
    ('disableSoftwareCompensation', 1, 'true or false'),
    ('disableSoftwareCompensation', 'yes', 'true or false'),
    ('DDCaloDigiName', '', 'without whitespace'),
    ('DDCaloDigiName', 'My DDCaloDigi', 'without whitespace'),
    ('DDPandoraPFANewProcessorName', None, 'without whitespace'),
    ('detectorModel', 3, 'without whitespace'),
    ('ecalBarrelCosThetaRange', [0.5, 0.2], 'low < high'),
    ('ecalBarrelCosThetaRange', [0.5, 0.5], 'low < high'),
    ('ecalEndcapCosThetaRange', [0.8, 1.2], 'low < high'),
    ('hcalBarrelCosThetaRange', [-0.1, 0.5], 'low < high'),
    ('hcalEndcapCosThetaRange', [0.8], 'two numbers'),
    ('hcalEndcapCosThetaRange', [0.1, 0.2, 0.3], 'two numbers'),
    ('hcalEndcapCosThetaRange', [False, True], 'two numbers'),
    ('hcalEndcapCosThetaRange', '0.1 0.2', 'two numbers'),
])
def test_bad_values_are_refused_with_key_value_and_rule(key, value, allowed):
    with pytest.raises(SettingsError, match=allowed) as caught:
        validate_settings({key: value})
    assert repr(key) in str(caught.value) and repr(value) in str(caught.value)


def test_boundaries_accepted():
    result = validate_settings({'digitisationAccuracy': 1.0, 'startStage': 3, 'startPhase': 5, 'stopStage': 3,
                                'stopPhase': 5, 'nMaxIterationsPerPhase': 1, 'nEcalThickLayers': 0,
                                'hcalBarrelCosThetaRange': [0, 1], 'disableSoftwareCompensation': False})
    assert result['hcalBarrelCosThetaRange'] == [0.0, 1.0]
    assert result['disableSoftwareCompensation'] is False


def test_start_after_stop_is_refused():
    with pytest.raises(SettingsError, match=r'\(1, 1\).*\(1, 0\)'):
        validate_settings({'startPhase': 1, 'stopPhase': 0, 'stopStage': 1})
    assert validate_settings({'startPhase': 1})['startPhase'] == 1
    with pytest.raises(SettingsError, match='comes after stop'):
        validate_settings({'startStage': 3, 'stopStage': 2, 'stopPhase': 5})


def test_none_means_no_user_settings():
    assert validate_settings(None) == DEFAULT_SETTINGS


@pytest.mark.parametrize('user', [[], 'digitisationAccuracy=0.1'])
def test_non_dict_refused(user):
    with pytest.raises(SettingsError, match='must be a dict'):
        validate_settings(user)
    with pytest.raises(SettingsError, match='must be a dict'):
        validate_settings({}, base=user)


def test_non_string_key_refused():
    with pytest.raises(SettingsError, match='must be strings'):
        validate_settings({1: 2})
