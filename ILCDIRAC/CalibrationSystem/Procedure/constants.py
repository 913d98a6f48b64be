"""The calibration constants the phases change (physics.md 2.6), and their text form in a steering file.

Constants live in the DDCaloDigi ('digi') or DDMarlinPandora ('pandora') processor, whose names
depend on the detector (settings 'DDCaloDigiName' / 'DDPandoraPFANewProcessorName'). A constant
is one float or a FloatVec (space-separated floats, e.g. CalibrECAL = "thin thick").

Its Marlin type is the one the processor registers (DDMarlinPandora's src/DDCaloDigi.cc and
src/DDPandoraPFANewProcessor.cc): the CalibrHCAL* constants are FloatVec for Marlin although the
calibration sets one value (an analogue HCal), which decides how Marlin combines a value given
both on a processor and on its <group> (see steering.py).
"""

import math
import numbers
import re
from typing import NamedTuple

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError, SettingsError, SteeringError


class ConstantSpec(NamedTuple):
    """Where a constant lives, how it is written, and which phase changes it."""

    role: str    # 'digi' or 'pandora'
    kind: str    # 'float' or 'floatvec': how many values the calibration sets
    phase: int   # id of the phase that changes it
    name: str    # the Marlin parameter name
    marlin_type: str  # the type the processor registers: 'float' or 'FloatVec'


def _spec(name, role, kind, phase, marlin_type=None):
    return name, ConstantSpec(role, kind, phase, name, marlin_type or MARLIN_TYPE[kind])


#: Marlin type of a constant of each kind, unless the processor registers another.
MARLIN_TYPE = {'float': 'float', 'floatvec': 'FloatVec'}

CONSTANTS = dict([
    _spec('CalibrECAL', 'digi', 'floatvec', 0),
    _spec('ECALEndcapCorrectionFactor', 'digi', 'float', 0),
    _spec('CalibrHCALBarrel', 'digi', 'float', 1, 'FloatVec'),
    _spec('CalibrHCALEndcap', 'digi', 'float', 1, 'FloatVec'),
    _spec('CalibrHCALOther', 'digi', 'float', 2, 'FloatVec'),
    _spec('ECalToMipCalibration', 'pandora', 'float', 2),
    _spec('HCalToMipCalibration', 'pandora', 'float', 2),
    _spec('MuonToMipCalibration', 'pandora', 'float', 2),
    _spec('ECalToEMGeVCalibration', 'pandora', 'float', 3),
    _spec('HCalToEMGeVCalibration', 'pandora', 'float', 3),
    _spec('ECalToHadGeVCalibrationBarrel', 'pandora', 'float', 4),
    _spec('ECalToHadGeVCalibrationEndCap', 'pandora', 'float', 4),
    _spec('HCalToHadGeVCalibration', 'pandora', 'float', 4),
])

#: Settings key holding the processor name of each role.
PROCESSOR_SETTING = {'digi': 'DDCaloDigiName', 'pandora': 'DDPandoraPFANewProcessorName'}

#: Significant digits a constant is written with: what the float Marlin reads it into holds, a
#: relative rounding of at most 5e-7, far below any accuracy a phase reaches (0.1 % at best),
#: and readable ('175.4386', not '175.43859649122805').
SIGNIFICANT_DIGITS = 7

# A decimal number as C++ stream extraction reads it (no Python-only forms such as '1_0' or 'nan').
_NUMBER = re.compile(r'[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?')


def get_spec(name):
    """The ConstantSpec of ``name``; ProcedureError if it is not a calibration constant.

    :param str name: a constant name
    :return: ConstantSpec
    """
    try:
        return CONSTANTS[name]
    except (KeyError, TypeError):
        raise ProcedureError(f"{name!r} is not a calibration constant: use one of {', '.join(CONSTANTS)}") from None


def constants_of_phase(phase_id):
    """Names of the constants that phase ``phase_id`` changes, in table order (empty if none).

    :param int phase_id: a phase
    :return: tuple of constant names
    """
    return tuple(name for name, spec in CONSTANTS.items() if spec.phase == phase_id)


def processor_name(spec, settings):
    """Name of the processor holding the constant, taken from the settings of this detector.

    :param ConstantSpec spec: the constant
    :param dict settings: the calibration settings
    :return: the processor name
    """
    return role_processor_name(spec.role, settings)


def role_processor_name(role, settings):
    """Name of the 'digi' or 'pandora' processor in the settings of this detector.

    :param str role: 'digi' or 'pandora'
    :param dict settings: the calibration settings
    :return: the processor name; SettingsError if the settings lack it
    """
    key = PROCESSOR_SETTING[role]
    if not isinstance(settings, dict) or key not in settings:
        raise SettingsError(f'settings lack {key!r}: pass the settings returned by validate_settings')
    return settings[key]


def _number_text(spec, number):
    if isinstance(number, bool) or not isinstance(number, numbers.Real) or not math.isfinite(number):
        raise SteeringError(f'constant {spec.name}: {number!r} is not a finite number; '
                            'the analysis that produced it must be fixed before the value is written')
    text = f'{float(number):.{SIGNIFICANT_DIGITS}g}'
    return text if any(mark in text for mark in '.en') else text + '.0'  # a float reads as one: '50.0'


def written_value(value):
    """A constant (float or list of floats) as the steering file holds it: rounded to
    SIGNIFICANT_DIGITS, so that calibration.json says exactly what the steering file says.

    :param value: float, or list of floats for a FloatVec
    :return: float or list of floats; other values unchanged
    """
    if isinstance(value, (list, tuple)):
        return [written_value(item) for item in value]
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return value
    return float(f'{float(value):.{SIGNIFICANT_DIGITS}g}')


def format_value(spec, value):
    """Text of a constant as written into the steering file (SIGNIFICANT_DIGITS significant digits).

    :param ConstantSpec spec: the constant
    :param value: float, or list of floats for a FloatVec
    :return: str; SteeringError for a value the constant cannot take
    """
    if spec.kind == 'float':
        return _number_text(spec, value)
    if not isinstance(value, (list, tuple)) or not value:
        raise SteeringError(f'constant {spec.name} is a FloatVec: give a non-empty list of numbers, got {value!r}')
    return ' '.join(_number_text(spec, item) for item in value)


def parse_value(spec, text):
    """Value of a constant from its steering-file text: a float, or a list of floats for a FloatVec.

    :param ConstantSpec spec: the constant
    :param str text: its text in the steering file
    :return: float or list of floats; SteeringError if the text is not such a number
    """
    tokens = text.split() if isinstance(text, str) else []
    if not tokens or (spec.kind == 'float' and len(tokens) != 1):
        expected = 'one number' if spec.kind == 'float' else 'space-separated numbers'
        raise SteeringError(f'constant {spec.name} = {text!r} cannot be read: expected {expected}')
    bad = [token for token in tokens if not _NUMBER.fullmatch(token) or not math.isfinite(float(token))]
    if bad:
        raise SteeringError(f'constant {spec.name} = {text!r} cannot be read: {bad[0]!r} is not a finite number')
    values = [float(token) for token in tokens]
    return values[0] if spec.kind == 'float' else values
