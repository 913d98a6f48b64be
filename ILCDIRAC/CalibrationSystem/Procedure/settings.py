"""Calibration settings: schema, defaults, detector presets and validation (physics.md 4.1).

Settings are a plain dict of JSON-able values so that they can be stored with the calibration and
sent to workers unchanged. Grid-only options (steering LFN, output SE, software version, number
of jobs, ...) belong to the job backend, not to the procedure, and are not part of this schema.
"""

import copy
import difflib
import math

from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError

DEFAULT_SETTINGS = {
    'digitisationAccuracy': 0.05,
    'pandoraPFAAccuracy': 0.025,
    'startStage': 1,
    'startPhase': 0,
    # The last phase that runs: the full procedure ends with the hadronic scale of stage 3.
    'stopStage': 3,
    'stopPhase': 4,
    'fractionOfFinishedJobsNeededToStartNextStep': 0.9,
    'nMaxIterationsPerPhase': 30,
    'disableSoftwareCompensation': True,
    'DDPandoraPFANewProcessorName': 'MyDDMarlinPandora',
    'DDCaloDigiName': 'MyDDCaloDigi',
    'nEcalThinLayers': 40,
    'nEcalThickLayers': 0,
    'ecalResponseCorrectionForThickLayers': 1.0,
    'detectorModel': 'CLIC_o3_v14',
    'nHcalLayers': 60,
    'ecalBarrelCosThetaRange': [0.0, 0.65],
    'ecalEndcapCosThetaRange': [0.8, 0.92],
    'hcalBarrelCosThetaRange': [0.2, 0.6],
    'hcalEndcapCosThetaRange': [0.8, 0.9],
    # CalibrHCALOther (phase 2): absorber and scintillator thicknesses (mm) of the HCal endcap
    # and ring, and whether to keep the reference's extra T_K/mu_endcap factor (physics.md 2.3.5).
    'hcalEndcapAbsorberThickness': 20.0,
    'hcalEndcapScintillatorThickness': 3.0,
    'hcalRingAbsorberThickness': 20.0,
    'hcalRingScintillatorThickness': 3.0,
    'hcalOtherEndcapMeanCorrection': True,
}

#: Detector-specific values; ``create_settings`` lays them over DEFAULT_SETTINGS.
PRESETS = {
    'CLIC': {
        'detectorModel': 'CLIC_o3_v14',
        'nHcalLayers': 60,
        'DDCaloDigiName': 'MyDDCaloDigi',
        'DDPandoraPFANewProcessorName': 'MyDDMarlinPandora',
        'ecalBarrelCosThetaRange': [0.0, 0.65],
        'ecalEndcapCosThetaRange': [0.8, 0.92],
        'hcalBarrelCosThetaRange': [0.2, 0.6],
        'hcalEndcapCosThetaRange': [0.8, 0.9],
    },
    'CLD': {
        'detectorModel': 'FCCee_o1_v04',
        'nHcalLayers': 44,
        'DDCaloDigiName': 'MyDDCaloDigi_10ns',
        'DDPandoraPFANewProcessorName': 'MyDDMarlinPandora_10ns',
        'ecalBarrelCosThetaRange': [0.0, 0.643],
        'ecalEndcapCosThetaRange': [0.766, 0.94],
        'hcalBarrelCosThetaRange': [0.15, 0.485],
        'hcalEndcapCosThetaRange': [0.72, 0.94],
    },
}

#: Collections of the CLIC and CLD reconstructions (both presets use these names): what the
#: PfoAnalysis processor a calibration adds reads where the steering file does not say it
#: (pfoanalysis_processor). Sim hits per calorimeter in the order DDCaloDigi digitises them.
PRESET_COLLECTIONS = {
    'MCParticleCollection': 'MCParticle',
    'ECalSimCaloHits': ['ECalBarrelCollection', 'ECalEndcapCollection', 'ECalPlugCollection'],
    'HCalSimCaloHits': ['HCalBarrelCollection', 'HCalEndcapCollection', 'HCalRingCollection'],
    'ECalCaloHits': ['ECALBarrel', 'ECALEndcap', 'ECALOther'],
    'HCalCaloHits': ['HCALBarrel', 'HCALEndcap', 'HCALOther'],
    'MuonSimCaloHits': ['YokeBarrelCollection', 'YokeEndcapCollection'],
    'MuonCaloHits': ['MUON'],
}


def create_settings(preset='CLIC'):
    """Return a fresh, complete settings dict for a detector preset (a copy: safe to modify).

    :param str preset: 'CLIC' (default) or 'CLD'
    :return: dict of every setting; SettingsError for an unknown preset
    """
    if preset not in PRESETS:
        raise SettingsError(f"unknown settings preset {preset!r}: use one of {', '.join(sorted(PRESETS))}")
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    settings.update(copy.deepcopy(PRESETS[preset]))
    return settings


def _fail(key, value, allowed):
    raise SettingsError(f'setting {key!r} = {value!r} is not allowed: it must be {allowed}')


def _real(key, value):
    """A finite float; ints are accepted (JSON writes 1.0 as 1), bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(key, value, 'a finite number')
    return float(value)


def _fraction(key, value):
    number = _real(key, value)
    if not 0.0 < number <= 1.0:
        _fail(key, value, 'a number in (0, 1]')
    return number


def _positive(key, value):
    number = _real(key, value)
    if number <= 0.0:
        _fail(key, value, 'a number > 0')
    return number


def _integer_in(low, high=None):
    allowed = f'an integer in [{low}, {high}]' if high is not None else f'an integer >= {low}'

    def check(key, value):
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(key, value, allowed)
        if value < low or (high is not None and value > high):
            _fail(key, value, allowed)
        return value
    return check


def _boolean(key, value):
    if not isinstance(value, bool):
        _fail(key, value, 'true or false')
    return value


def _name(key, value):
    """Processor and detector names end up in XPath lookups and file names: one plain word."""
    if not isinstance(value, str) or not value or any(char.isspace() for char in value):
        _fail(key, value, 'a non-empty string without whitespace')
    return value


def _cos_range(key, value):
    allowed = 'a list of two numbers [low, high] with 0 <= low < high <= 1'
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        _fail(key, value, allowed)
    if any(isinstance(item, bool) or not isinstance(item, (int, float)) for item in value):
        _fail(key, value, allowed)
    low, high = (float(item) for item in value)
    if not 0.0 <= low < high <= 1.0:
        _fail(key, value, allowed)
    return [low, high]


_CHECKS = {
    'digitisationAccuracy': _fraction,
    'pandoraPFAAccuracy': _fraction,
    'startStage': _integer_in(1, 3),
    'startPhase': _integer_in(0, 5),
    'stopStage': _integer_in(1, 3),
    'stopPhase': _integer_in(0, 5),
    'fractionOfFinishedJobsNeededToStartNextStep': _fraction,
    'nMaxIterationsPerPhase': _integer_in(1),
    'disableSoftwareCompensation': _boolean,
    'DDPandoraPFANewProcessorName': _name,
    'DDCaloDigiName': _name,
    'nEcalThinLayers': _integer_in(0),
    'nEcalThickLayers': _integer_in(0),
    'ecalResponseCorrectionForThickLayers': _positive,
    'detectorModel': _name,
    'nHcalLayers': _integer_in(1),
    'ecalBarrelCosThetaRange': _cos_range,
    'ecalEndcapCosThetaRange': _cos_range,
    'hcalBarrelCosThetaRange': _cos_range,
    'hcalEndcapCosThetaRange': _cos_range,
    'hcalEndcapAbsorberThickness': _positive,
    'hcalEndcapScintillatorThickness': _positive,
    'hcalRingAbsorberThickness': _positive,
    'hcalRingScintillatorThickness': _positive,
    'hcalOtherEndcapMeanCorrection': _boolean,
}


#: Names the reference system (ILCDIRAC's original CalibrationSystem) uses for what is called otherwise here.
RENAMED_KEYS = {'marlinVersion': 'softwareVersion'}


def check_setting_names(keys, job_keys=()):
    """SettingsError for the first name that is neither a setting nor one of ``job_keys``.

    The message says what the name is called here if the reference system used it, the closest
    known name if there is one, or else every known setting and job key.

    :param keys: the names given (e.g. the keys of a settings dict)
    :param job_keys: names that describe the jobs rather than the procedure, also accepted
    """
    known = [*_CHECKS, *job_keys]
    for key in keys:
        if key in known:
            continue
        if not isinstance(key, str):
            raise SettingsError(f'setting names must be strings, got {key!r}')
        if key in RENAMED_KEYS:
            raise SettingsError(f'unknown setting {key!r}: it is called {RENAMED_KEYS[key]!r} here, rename it')
        close = difflib.get_close_matches(key, known, n=1)
        if close:
            raise SettingsError(f'unknown setting {key!r}: did you mean {close[0]!r}?')
        listed = f"known settings: {', '.join(sorted(_CHECKS))}"
        if job_keys:
            listed += f"; job keys: {', '.join(job_keys)}"
        raise SettingsError(f'unknown setting {key!r}: {listed}')


def validate_settings(user, base=None):
    """Return the complete, normalised settings: ``user`` laid over ``base`` over the defaults.

    ``base`` may be a complete settings dict (e.g. from ``create_settings``) or a partial one
    (e.g. a ``PRESETS`` entry). Neither argument is modified. Raises SettingsError naming the key,
    the value and what is allowed, for an unknown key, a wrong type, a value out of range, or a
    start position after the stop position. Whether a stage/phase pair exists is checked by the
    procedure, which knows the phase sequence.

    :param dict user: the settings given by the user (any subset)
    :param dict base: settings to start from instead of the bare defaults (None: the defaults)
    :return: dict of every setting, checked and normalised (e.g. ints of float settings as floats)
    """
    for what, given in (('settings', user), ('base settings', base)):
        if given is not None and not isinstance(given, dict):
            raise SettingsError(f'{what} must be a dict of setting name -> value, got {type(given).__name__}')
    merged = copy.deepcopy(DEFAULT_SETTINGS)
    for layer in (base or {}, user or {}):
        check_setting_names(layer)
        merged.update(copy.deepcopy(layer))
    result = {key: check(key, merged[key]) for key, check in _CHECKS.items()}
    start = (result['startStage'], result['startPhase'])
    stop = (result['stopStage'], result['stopPhase'])
    if start > stop:
        raise SettingsError(f'start (startStage, startPhase) = {start} comes after stop (stopStage, stopPhase) = '
                            f'{stop}: set the stop position at or after the start position')
    return result
