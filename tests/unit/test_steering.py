"""Known answers for the constants table and the Marlin steering file reader/writer: Marlin's
rules (value attribute, text, comments, ${} constants, groups, <execute>), byte-for-byte writing,
and the refusals."""

import math
import pathlib
import re

import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure.constants import (
    CONSTANTS, constants_of_phase, format_value, get_spec, parse_value, processor_name, written_value)
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError, SettingsError, SteeringError
from ILCDIRAC.CalibrationSystem.Procedure.settings import create_settings
from ILCDIRAC.CalibrationSystem.Procedure.steering import (
    check_calibration_processors, global_parameter, parse_steering, processor_name_of_type, processor_parameter,
    read_constants, render_final_steering, render_steering)

UNIT = pathlib.Path(__file__).parent
TEMPLATE = (UNIT / 'calibration_steering.xml').read_bytes()
CLIC_LIKE = (UNIT / 'fixtures' / 'clic_like_steering.xml').read_bytes()
CLD_LIKE = (UNIT / 'fixtures' / 'cld_like_steering.xml').read_bytes()
CLIC = create_settings('CLIC')
CLD = create_settings('CLD')

TEMPLATE_CONSTANTS = {
    'CalibrECAL': [37.5, 37.5], 'ECALEndcapCorrectionFactor': 1.03,
    'CalibrHCALBarrel': 45.9, 'CalibrHCALEndcap': 46.0, 'CalibrHCALOther': 57.4,
    'ECalToMipCalibration': 175.439, 'HCalToMipCalibration': 45.6621, 'MuonToMipCalibration': 20703.9,
    'ECalToEMGeVCalibration': 1.01776, 'HCalToEMGeVCalibration': 1.01776,
    'ECalToHadGeVCalibrationBarrel': 1.1149, 'ECalToHadGeVCalibrationEndCap': 1.1149,
    'HCalToHadGeVCalibration': 1.00565,
}


def _without_line(content, needle):
    return b'\n'.join(line for line in content.split(b'\n') if needle not in line)


def _line(content, needle):
    """The one line of ``content`` holding ``needle``."""
    found = [line for line in content.split(b'\n') if needle in line]
    assert len(found) == 1, found
    return found[0]


def _changed_lines(before, after):
    """{line number: (before, after)} of two files with the same number of lines."""
    old, new = before.split(b'\n'), after.split(b'\n')
    assert len(old) == len(new)
    return {number: (a, b) for number, (a, b) in enumerate(zip(old, new)) if a != b}


# ---------------------------------------------------------------- constants table

def test_constants_table():
    vectors = {name for name, spec in CONSTANTS.items() if spec.marlin_type == 'FloatVec'}
    assert vectors == {'CalibrECAL', 'CalibrHCALBarrel', 'CalibrHCALEndcap', 'CalibrHCALOther'}   # as DDCaloDigi
    table = {name: (spec.role, spec.kind, spec.phase) for name, spec in CONSTANTS.items()}
    assert table == {
        'CalibrECAL': ('digi', 'floatvec', 0), 'ECALEndcapCorrectionFactor': ('digi', 'float', 0),
        'CalibrHCALBarrel': ('digi', 'float', 1), 'CalibrHCALEndcap': ('digi', 'float', 1),
        'CalibrHCALOther': ('digi', 'float', 2), 'ECalToMipCalibration': ('pandora', 'float', 2),
        'HCalToMipCalibration': ('pandora', 'float', 2), 'MuonToMipCalibration': ('pandora', 'float', 2),
        'ECalToEMGeVCalibration': ('pandora', 'float', 3), 'HCalToEMGeVCalibration': ('pandora', 'float', 3),
        'ECalToHadGeVCalibrationBarrel': ('pandora', 'float', 4),
        'ECalToHadGeVCalibrationEndCap': ('pandora', 'float', 4),
        'HCalToHadGeVCalibration': ('pandora', 'float', 4),
    }
    assert all(spec.name == name for name, spec in CONSTANTS.items())


def test_constants_of_phase():
    assert constants_of_phase(0) == ('CalibrECAL', 'ECALEndcapCorrectionFactor')
    assert constants_of_phase(1) == ('CalibrHCALBarrel', 'CalibrHCALEndcap')
    assert constants_of_phase(2) == ('CalibrHCALOther', 'ECalToMipCalibration', 'HCalToMipCalibration',
                                     'MuonToMipCalibration')
    assert constants_of_phase(3) == ('ECalToEMGeVCalibration', 'HCalToEMGeVCalibration')
    assert constants_of_phase(4) == ('ECalToHadGeVCalibrationBarrel', 'ECalToHadGeVCalibrationEndCap',
                                     'HCalToHadGeVCalibration')
    assert constants_of_phase(5) == ()


def test_processor_name():
    assert processor_name(get_spec('CalibrECAL'), CLIC) == 'MyDDCaloDigi'
    assert processor_name(get_spec('ECalToMipCalibration'), CLIC) == 'MyDDMarlinPandora'
    assert processor_name(get_spec('CalibrECAL'), CLD) == 'MyDDCaloDigi_10ns'
    assert processor_name(get_spec('HCalToHadGeVCalibration'), CLD) == 'MyDDMarlinPandora_10ns'
    with pytest.raises(SettingsError, match='DDPandoraPFANewProcessorName'):
        processor_name(get_spec('HCalToHadGeVCalibration'), {'DDCaloDigiName': 'x'})


def test_unknown_constant():
    with pytest.raises(ProcedureError, match="'RootFile' is not a calibration constant"):
        get_spec('RootFile')


def test_format_value():
    assert format_value(get_spec('ECALEndcapCorrectionFactor'), 1.03) == '1.03'
    assert format_value(get_spec('ECALEndcapCorrectionFactor'), 2) == '2.0'
    assert format_value(get_spec('ECALEndcapCorrectionFactor'), np.float64(0.1)) == '0.1'
    assert format_value(get_spec('MuonToMipCalibration'), 1e-05) == '1e-05'
    assert format_value(get_spec('CalibrECAL'), [37.5, 40]) == '37.5 40.0'
    # seven significant digits (a float's), never the 17 of a double's repr
    assert format_value(get_spec('ECalToMipCalibration'), 175.43859649122805) == '175.4386'
    assert format_value(get_spec('CalibrECAL'), [38.27704802473115, 76.5540960494623]) == '38.27705 76.5541'
    assert format_value(get_spec('MuonToMipCalibration'), 20000.000000000004) == '20000.0'
    assert format_value(get_spec('MuonToMipCalibration'), 123456789.0) == '1.234568e+08'
    assert written_value([38.27704802473115, 1.0]) == [38.27705, 1.0]
    assert written_value(1.1925356123456789) == 1.192536 and written_value("x") == "x"
    assert format_value(get_spec('CalibrECAL'), (np.float32(0.5),)) == '0.5'


@pytest.mark.parametrize('name, value', [
    ('ECALEndcapCorrectionFactor', math.nan), ('ECALEndcapCorrectionFactor', math.inf),
    ('ECALEndcapCorrectionFactor', True), ('ECALEndcapCorrectionFactor', '1.0'),
    ('ECALEndcapCorrectionFactor', [1.0]), ('ECALEndcapCorrectionFactor', None),
    ('CalibrECAL', []), ('CalibrECAL', 37.5), ('CalibrECAL', '37.5 37.5'), ('CalibrECAL', [37.5, math.nan]),
])
def test_format_value_refuses(name, value):
    with pytest.raises(SteeringError, match=name):
        format_value(get_spec(name), value)


def test_parse_value():
    assert parse_value(get_spec('ECALEndcapCorrectionFactor'), ' 1.03 ') == 1.03
    assert parse_value(get_spec('ECALEndcapCorrectionFactor'), '10000000.') == 1e7
    assert parse_value(get_spec('ECALEndcapCorrectionFactor'), '.5') == 0.5
    assert parse_value(get_spec('ECALEndcapCorrectionFactor'), '-1E-3') == -0.001
    assert parse_value(get_spec('CalibrECAL'), '37.5\n 40') == [37.5, 40.0]
    assert parse_value(get_spec('CalibrECAL'), '37.5') == [37.5]


@pytest.mark.parametrize('name, text, message', [
    ('ECALEndcapCorrectionFactor', '1 2', 'expected one number'),
    ('ECALEndcapCorrectionFactor', '', 'expected one number'),
    ('CalibrECAL', '  ', 'space-separated numbers'),
    ('ECALEndcapCorrectionFactor', 'abc', "'abc' is not a finite number"),
    ('ECALEndcapCorrectionFactor', 'nan', "'nan'"),
    ('ECALEndcapCorrectionFactor', '1e400', "'1e400'"),
    ('ECALEndcapCorrectionFactor', '1_0', "'1_0'"),
    ('CalibrECAL', '37.5 x', "'x'"),
    ('CalibrECAL', None, 'space-separated numbers'),
])
def test_parse_value_refuses(name, text, message):
    with pytest.raises(SteeringError, match=message):
        parse_value(get_spec(name), text)


def test_format_parse_round_trip():
    """What is read back is the written value (calibration.json's), within 5e-7 of the constant."""
    rng = np.random.default_rng(7)
    for value in rng.lognormal(0.0, 5.0, 200):
        read = parse_value(get_spec('HCalToMipCalibration'), format_value(get_spec('HCalToMipCalibration'), value))
        assert read == written_value(value) and read == pytest.approx(value, rel=5e-7)
    pair = [float(x) for x in rng.normal(40.0, 3.0, 2)]
    assert parse_value(get_spec('CalibrECAL'), format_value(get_spec('CalibrECAL'), pair)) == written_value(pair)



# ---------------------------------------------------------------- reading: Marlin's value rules

def test_read_all_constants_of_the_template():
    assert read_constants(TEMPLATE, CONSTANTS, CLIC) == TEMPLATE_CONSTANTS


def test_read_from_str_and_parsed_file():
    text = TEMPLATE.decode('ascii')        # carries an encoding declaration
    assert read_constants(text, ['CalibrECAL'], CLIC) == {'CalibrECAL': [37.5, 37.5]}
    parsed = parse_steering(TEMPLATE)
    assert parse_steering(parsed) is parsed
    assert read_constants(parsed, ['ECALEndcapCorrectionFactor'], CLIC) == {'ECALEndcapCorrectionFactor': 1.03}


def test_read_the_real_structures():
    assert read_constants(CLIC_LIKE, ['CalibrECAL', 'ECalToMipCalibration'], CLIC) == {
        'CalibrECAL': [35.8411424188, 35.8411424188], 'ECalToMipCalibration': 181.818}
    assert read_constants(CLD_LIKE, ['CalibrHCALOther', 'MuonToMipCalibration'], CLD) == {
        'CalibrHCALOther': 57.4588011802, 'MuonToMipCalibration': 20703.9}


def test_read_missing_processor():
    with pytest.raises(SteeringError, match='no <processor name="MyDDCaloDigi_10ns">.*DDCaloDigiName'):
        read_constants(TEMPLATE, ['CalibrECAL'], CLD)


def test_read_missing_parameter():
    content = _without_line(TEMPLATE, b'"CalibrHCALOther"')
    with pytest.raises(SteeringError, match='processor MyDDCaloDigi has no parameter CalibrHCALOther: add '
                                            '<parameter name="CalibrHCALOther" type="FloatVec">'):
        read_constants(content, ['CalibrHCALOther'], CLIC)
    assert read_constants(content, ['CalibrHCALBarrel'], CLIC) == {'CalibrHCALBarrel': 45.9}


def test_read_unparsable_or_empty_value():
    content = TEMPLATE.replace(b'>45.6621<', b'>forty<')
    with pytest.raises(SteeringError, match="HCalToMipCalibration = 'forty'"):
        read_constants(content, ['HCalToMipCalibration'], CLIC)
    content = TEMPLATE.replace(b'value="1.03"', b'value=""')
    with pytest.raises(SteeringError, match='ECALEndcapCorrectionFactor'):
        read_constants(content, ['ECALEndcapCorrectionFactor'], CLIC)


def test_value_attribute_wins_even_empty():
    different = TEMPLATE.replace(b'value="1.03"/>', b'value="1.03">1.10</parameter>')
    assert read_constants(different, ['ECALEndcapCorrectionFactor'], CLIC) == {'ECALEndcapCorrectionFactor': 1.03}
    empty = TEMPLATE.replace(b'value="1.03"/>', b'value="">1.10</parameter>')
    with pytest.raises(SteeringError, match="ECALEndcapCorrectionFactor = '' cannot be read"):
        read_constants(empty, ['ECALEndcapCorrectionFactor'], CLIC)


def test_text_children_are_joined_without_comments():
    content = TEMPLATE.replace(b'>37.5 37.5</parameter>',
                               b'>\n      37.5 <!-- thin -- layers -->\n      40 <!--thick--></parameter>')
    assert read_constants(content, ['CalibrECAL'], CLIC) == {'CalibrECAL': [37.5, 40.0]}
    assert processor_parameter(content, 'MyDDCaloDigi', 'CalibrECAL') == '37.5 40'


def test_a_scalar_takes_its_first_value():
    content = TEMPLATE.replace(b'>45.6621<', b'>45.6621 99<')
    assert read_constants(content, ['HCalToMipCalibration'], CLIC) == {'HCalToMipCalibration': 45.6621}
    vector = TEMPLATE.replace(b'>45.9<', b'>45.9 99<')      # a FloatVec the calibration sets to one value
    with pytest.raises(SteeringError, match="CalibrHCALBarrel = '45.9 99' cannot be read: expected one number"):
        read_constants(vector, ['CalibrHCALBarrel'], CLIC)


def test_values_split_at_spaces_only_as_marlin_does():
    tab = TEMPLATE.replace(b'value="1.03"', b'value="1.03\t"')
    with pytest.raises(SteeringError, match=r"'1.03\\t' holds a tab or line break, which Marlin does not split at"):
        read_constants(tab, ['ECALEndcapCorrectionFactor'], CLIC)


def test_constants_are_substituted():
    content = TEMPLATE.replace(b'<execute>', b'<constants>\n    <constant name="Scale" value="45.6621"/>\n'
                               b'    <constant name="Pair">${Scale} 37</constant>\n  </constants>\n  <execute>')
    content = content.replace(b'>45.6621<', b'>${Scale}<').replace(b'>37.5 37.5<', b'>${Pair}<')
    assert read_constants(content, ['HCalToMipCalibration', 'CalibrECAL'], CLIC) == {
        'HCalToMipCalibration': 45.6621, 'CalibrECAL': [45.6621, 37.0]}
    rendered = render_final_steering(content, {'HCalToMipCalibration': 50.0}, CLIC)
    assert b'>50.0<' in rendered and b'${Pair}' in rendered      # only the written value loses its reference


@pytest.mark.parametrize('replacement, message', [
    (b'>${Nope}<', r'uses the constant \$\{Nope\}, which <constants> does not define'),
    (b'>${Scale<', r"has a '\$\{' without '\}'"),
])
def test_unknown_constants_are_refused(replacement, message):
    content = TEMPLATE.replace(b'>45.6621<', replacement)
    with pytest.raises(SteeringError, match=message):
        read_constants(content, ['HCalToMipCalibration'], CLIC)


def test_constants_defined_twice_are_refused():
    content = TEMPLATE.replace(b'<execute>', b'<constants><constant name="A">1</constant>'
                               b'<constant name="A">2</constant></constants><execute>')
    with pytest.raises(SteeringError, match='constant A is defined twice'):
        parse_steering(content)


def test_duplicates_refused():
    twice = TEMPLATE.replace(b'<group name="Output">', b'<processor name="MyDDCaloDigi" type="DDCaloDigi"/>'
                             b'<group name="Output">')
    with pytest.raises(SteeringError, match='defines <processor name="MyDDCaloDigi"> 2 times'):
        read_constants(twice, ['CalibrECAL'], CLIC)
    content = TEMPLATE.replace(b'<parameter name="CalibrHCALOther"', b'<parameter name="CalibrHCALEndcap">1'
                               b'</parameter><parameter name="CalibrHCALOther"')
    with pytest.raises(SteeringError, match=r'processor MyDDCaloDigi sets parameter CalibrHCALEndcap 2 times '
                                            r'\(line 44, column 5, line 45, column 5\)'):
        read_constants(content, ['CalibrHCALEndcap'], CLIC)


def test_processor_in_a_group_and_cld_names():
    content = b'''<marlin><execute><processor name="MyDDCaloDigi_10ns"/></execute>
      <group name="Calo"><processor name="MyDDCaloDigi_10ns" type="DDCaloDigi">
        <parameter name="CalibrECAL" type="FloatVec">40 80</parameter></processor></group></marlin>'''
    assert read_constants(content, ['CalibrECAL'], CLD) == {'CalibrECAL': [40.0, 80.0]}


def test_groups_before_execute_are_not_expanded():
    content = b'''<marlin><group name="Calo"><processor name="MyDDCaloDigi_10ns" type="DDCaloDigi">
        <parameter name="CalibrECAL" type="FloatVec">40 80</parameter></processor></group>
        <execute><processor name="MyDDCaloDigi_10ns"/></execute></marlin>'''
    with pytest.raises(SteeringError, match='inside a <group> placed before <execute>, which Marlin does not expand'):
        read_constants(content, ['CalibrECAL'], CLD)


def test_execute_references_are_not_definitions():
    only_reference = b'<marlin><execute><processor name="MyDDCaloDigi"/></execute></marlin>'
    with pytest.raises(SteeringError, match='no <processor name="MyDDCaloDigi">'):
        read_constants(only_reference, ['CalibrECAL'], CLIC)


def test_global_parameter():
    assert global_parameter(TEMPLATE, 'LCIOInputFiles') == 'gamma_10GeV_0001.slcio gamma_10GeV_0002.slcio'
    assert global_parameter(TEMPLATE, 'MaxRecordNumber') == '0'
    assert global_parameter(TEMPLATE, 'Verbosity') == 'WARNING'
    assert global_parameter(TEMPLATE, 'GearXMLFile') is None
    assert global_parameter(b'<marlin/>', 'SkipNEvents') is None


# ---------------------------------------------------------------- groups

def test_group_parameters_are_given_to_each_processor_of_the_group():
    for processor in ('MyDDMarlinPandora_10ns', 'MyDDMarlinPandora_400ns'):
        assert processor_parameter(CLD_LIKE, processor, 'MaxClusterEnergyToApplySoftComp') == '200.'
        assert processor_parameter(CLD_LIKE, processor, 'PFOCollectionName') == 'PandoraPFOs'
    assert processor_parameter(CLD_LIKE, 'MyDDCaloDigi_10ns', 'ECALLayers') == '41 100'
    assert processor_parameter(CLD_LIKE, 'MyDDSimpleMuonDigi', 'ECALLayers') is None


def test_a_scalar_on_processor_and_group_takes_the_processors():
    both = CLD_LIKE.replace(b'<parameter name="FinalEnergyDensityBin"',
                            b'<parameter name="HCalToMipCalibration" type="float">1.5</parameter>\n'
                            b'    <parameter name="FinalEnergyDensityBin"')
    assert read_constants(both, ['HCalToMipCalibration'], CLD) == {'HCalToMipCalibration': 45.6621}
    assert processor_parameter(both, 'MyDDMarlinPandora_10ns', 'HCalToMipCalibration') == '45.6621 1.5'
    rendered = render_final_steering(both, {'HCalToMipCalibration': 44.0}, CLD)
    assert _changed_lines(both, rendered) == {
        both.split(b'\n').index(_line(both, b'>45.6621<')): (_line(both, b'>45.6621<'), _line(rendered, b'>44.0<'))}
    empty = both.replace(b'>45.6621<', b'><')      # the processor's own definition gives no value: the group's counts
    assert read_constants(empty, ['HCalToMipCalibration'], CLD) == {'HCalToMipCalibration': 1.5}
    rendered = render_final_steering(empty, {'HCalToMipCalibration': 44.0}, CLD)
    assert b'type="float">44.0</parameter>\n    <parameter name="FinalEnergyDensityBin"' in rendered


def test_a_vector_on_processor_and_group_is_refused():
    both = CLD_LIKE.replace(b'<parameter name="FinalEnergyDensityBin"', b'<parameter name="ECALLayers">1</parameter>'
                            b'<parameter name="FinalEnergyDensityBin"')
    assert read_constants(both, ['CalibrECAL'], CLD)      # other constants stay readable
    ecal_layers = CLD_LIKE.replace(b'<parameter name="CalibrECAL" type="FloatVec">37.5227197175',
                                   b'<parameter name="ECALLayers" type="IntVec">20 41</parameter>\n'
                                   b'      <parameter name="CalibrECAL" type="FloatVec">37.5227197175')
    thick = dict(CLD, nEcalThickLayers=10, nEcalThinLayers=20)
    message = (r'parameter ECALLayers of processor MyDDCaloDigi_10ns is set both on the processor '
               r'\(line 66, column 7\) '
               r'and on its group MyDDCaloDigi \(line 58, column 5\): Marlin would concatenate')
    with pytest.raises(SteeringError, match=message):
        render_final_steering(ecal_layers, {}, thick)
    group_vector = CLD_LIKE.replace(b'<parameter name="ECALLayers"', b'<parameter name="CalibrHCALBarrel">1</parameter>'
                                    b'<parameter name="ECALLayers"')
    with pytest.raises(SteeringError, match='parameter CalibrHCALBarrel of processor MyDDCaloDigi_10ns is set both'):
        read_constants(group_vector, ['CalibrHCALBarrel'], CLD)


def test_derived_parameters_are_written_on_the_group_that_sets_them():
    thick = dict(CLD, nEcalThickLayers=10, nEcalThinLayers=20)
    step = render_steering(CLD_LIKE, {}, thick)
    changed = _changed_lines(CLD_LIKE, step)
    assert [new for _, new in changed.values()] == [
        b'    <parameter name="ECALLayers" type="IntVec">20 31  </parameter>',
        b'    <parameter name="MaxClusterEnergyToApplySoftComp" type="float">0</parameter>']
    assert processor_parameter(step, 'MyDDCaloDigi_10ns', 'ECALLayers') == '20 31'     # not '20 31 41 100'
    assert processor_parameter(step, 'MyDDCaloDigi_400ns', 'ECALLayers') == '20 31'    # the group is shared
    final = render_final_steering(CLD_LIKE, {}, thick)
    assert [new for _, new in _changed_lines(CLD_LIKE, final).values()] == [
        b'    <parameter name="ECALLayers" type="IntVec">20 31  </parameter>']


# ---------------------------------------------------------------- <execute>

def test_executed_processors_follow_marlin():
    steering = parse_steering(CLD_LIKE)
    assert list(steering.executed) == ['InitDD4hep', 'MyConformalTracking', 'MyDDCaloDigi_10ns', 'MyDDSimpleMuonDigi',
                                       'MyDDMarlinPandora_10ns', 'Output_REC']
    clic = parse_steering(CLIC_LIKE)
    assert list(clic.executed)[-3:] == ['MyDDMarlinPandora', 'BeamCalReco3TeV', 'MergeRP']   # ${BCReco}, a group
    assert clic.processors['MergeRP'].group.get('name') == 'MergeCollections'
    assert 'MyHitResiduals' not in clic.executed


def test_calibration_processors_must_run():
    check_calibration_processors(CLD_LIKE, CLD)
    check_calibration_processors(CLIC_LIKE, CLIC)
    with pytest.raises(SteeringError, match="DDCaloDigiName is 'MyDDCaloDigi_400ns' but the steering file does not "
                                            "run it in <execute>: .*<execute> runs MyDDCaloDigi_10ns$"):
        check_calibration_processors(CLD_LIKE, dict(CLD, DDCaloDigiName='MyDDCaloDigi_400ns'))
    with pytest.raises(SteeringError, match="DDCaloDigiName is 'MyDDCaloDigi' but the steering file defines no such "
                                            "processor"):
        check_calibration_processors(CLD_LIKE, CLIC)
    with pytest.raises(SteeringError, match="'MyDDSimpleMuonDigi', a processor of type DDSimpleMuonDigi, not "
                                            "DDPandoraPFANewProcessor"):
        check_calibration_processors(CLIC_LIKE, dict(CLIC, DDPandoraPFANewProcessorName='MyDDSimpleMuonDigi'))
    with pytest.raises(SteeringError, match='no <execute> section'):
        check_calibration_processors(b'<marlin/>', CLIC)


def test_a_processor_run_twice_is_refused():
    content = CLD_LIKE.replace(b'<processor name="Output_REC"/>', b'<processor name="MyDDCaloDigi_10ns"/>')
    message = r'line 25, column 5\): <execute> runs MyDDCaloDigi_10ns twice, which Marlin refuses'
    with pytest.raises(SteeringError, match=message):
        parse_steering(content)


def test_processor_name_of_type():
    assert processor_name_of_type(TEMPLATE, 'PfoAnalysis') == 'MyPfoAnalysis'
    assert processor_name_of_type(CLD_LIKE, 'DDSimpleMuonDigi') == 'MyDDSimpleMuonDigi'
    with pytest.raises(SteeringError, match='2 processors of type DDCaloDigi'):
        processor_name_of_type(CLD_LIKE, 'DDCaloDigi')
    with pytest.raises(SteeringError, match='0 processors of type Marlin'):
        processor_name_of_type(TEMPLATE, 'Marlin')


# ---------------------------------------------------------------- rendering, byte for byte

NEW_CONSTANTS = {
    'CalibrECAL': [38.25, 76.5], 'ECALEndcapCorrectionFactor': 1.0875,
    'ECalToMipCalibration': 160.0, 'HCalToHadGeVCalibration': 0.9876543,
}


def _all_changed(constants):
    return {name: [v + 0.5 for v in value] if isinstance(value, list) else value * 1.25
            for name, value in constants.items()}


@pytest.mark.parametrize('content, settings', [(CLIC_LIKE, CLIC), (CLD_LIKE, CLD), (TEMPLATE, CLIC)])
def test_only_the_constants_values_change(content, settings):
    initial = read_constants(content, CONSTANTS, settings)
    new = _all_changed(initial)
    rendered = render_final_steering(content, new, settings)
    assert read_constants(rendered, CONSTANTS, settings) == {name: written_value(value) for name, value in new.items()}
    changed = _changed_lines(content, rendered)
    assert len(changed) == len(CONSTANTS)
    for old, line in changed.values():       # the same line but for the value, written where it stood
        name = re.search(rb'name="(\w+)"', old).group(1).decode()
        value = format_value(get_spec(name), new[name]).encode()
        assert re.sub(rb'(value="|>)[^"<]*?( ?["<])', lambda m: m.group(1) + value + m.group(2), old, count=1) == line


def test_whitespace_around_values_and_value_attributes_are_kept():
    rendered = render_final_steering(CLIC_LIKE, {'ECalToMipCalibration': 150.0}, CLIC)
    assert _line(rendered, b'ECalToMipCalibration') == \
        b'    <parameter name="ECalToMipCalibration" type="float">150.0 </parameter>'
    rendered = render_final_steering(TEMPLATE, {'ECALEndcapCorrectionFactor': 1.5}, CLIC)
    assert _line(rendered, b'ECALEndcapCorrectionFactor') == \
        b'    <parameter name="ECALEndcapCorrectionFactor" type="float" value="1.5"/>'


def test_crlf_line_endings_and_the_declaration_are_kept():
    crlf = CLIC_LIKE.replace(b'\n', b'\r\n')
    rendered = render_steering(crlf, {'CalibrECAL': [40.0, 41.0]}, dict(CLIC, nEcalThickLayers=2),
                               {'SkipNEvents': 7, 'NewGlobal': 'x'})
    assert rendered.startswith(b'<?xml version="1.0" encoding="us-ascii"?>\r\n')
    assert rendered.count(b'\n') == rendered.count(b'\r\n') == crlf.count(b'\r\n') + 1
    assert b'    <parameter name="NewGlobal">x</parameter>\r\n  </global>' in rendered


def test_render_step_parameters():
    rendered = render_steering(CLIC_LIKE, {}, CLIC, {'LCIOInputFiles': '/w/k_1.slcio /w/k_2.slcio',
                                                     'SkipNEvents': '250', 'MaxRecordNumber': 125},
                               {('MyDDMarlinPandora', 'PandoraSettingsXmlFile'): '/w/PandoraSettings.xml'})
    assert [new for _, new in _changed_lines(CLIC_LIKE, rendered).values()] == [
        b'      /w/k_1.slcio /w/k_2.slcio',
        b'    <parameter name="MaxRecordNumber" value="125" />',
        b'    <parameter name="SkipNEvents" value="250" />',
        b'    <parameter name="PandoraSettingsXmlFile" type="String"> /w/PandoraSettings.xml </parameter>',
        b'    <parameter name="MaxClusterEnergyToApplySoftComp" type="float">0</parameter>']
    assert global_parameter(rendered, 'LCIOInputFiles') == '/w/k_1.slcio /w/k_2.slcio'


def test_the_final_file_keeps_the_users_software_compensation():
    final = render_final_steering(CLIC_LIKE, {}, CLIC)
    assert final == CLIC_LIKE
    assert processor_parameter(render_steering(CLIC_LIKE, {}, CLIC), 'MyDDMarlinPandora',
                               'MaxClusterEnergyToApplySoftComp') == '0'
    kept = dict(CLIC, disableSoftwareCompensation=False)
    assert render_steering(CLIC_LIKE, {}, kept) == CLIC_LIKE


def test_render_is_idempotent():
    once = render_steering(TEMPLATE, NEW_CONSTANTS, CLIC, {'SkipNEvents': '5'})
    assert render_steering(once, NEW_CONSTANTS, CLIC, {'SkipNEvents': '5'}) == once


def test_render_creates_global_section():
    template = b'<marlin>\n  <execute/>\n  <processor name="MyDDCaloDigi" type="DDCaloDigi"/>\n' \
               b'  <processor name="MyDDMarlinPandora" type="DDPandoraPFANewProcessor"/>\n</marlin>\n'
    rendered = render_steering(template, {'CalibrECAL': [40.0, 40.0]}, CLIC, {'SkipNEvents': '3'})
    assert rendered == b'<marlin>\n  <execute/>\n  <global>\n    <parameter name="SkipNEvents">3</parameter>\n' \
        b'  </global>\n  <processor name="MyDDCaloDigi" type="DDCaloDigi">\n' \
        b'    <parameter name="CalibrECAL" type="FloatVec">40.0 40.0</parameter>\n  </processor>\n' \
        b'  <processor name="MyDDMarlinPandora" type="DDPandoraPFANewProcessor">\n' \
        b'    <parameter name="MaxClusterEnergyToApplySoftComp" type="float">0</parameter>\n  </processor>\n</marlin>\n'


def test_render_appends_missing_parameters_with_type():
    template = _without_line(_without_line(TEMPLATE, b'"HCalToHadGeVCalibration"'), b'"CalibrECAL"')
    rendered = render_steering(template, NEW_CONSTANTS, CLIC)
    assert read_constants(rendered, NEW_CONSTANTS, CLIC) == NEW_CONSTANTS
    assert b'    <parameter name="HCALEndcapTimeWindowMax" type="float">10</parameter>\n' \
           b'    <parameter name="CalibrECAL" type="FloatVec">38.25 76.5</parameter>\n  </processor>' in rendered
    assert b'    <parameter name="HCalToHadGeVCalibration" type="float">0.9876543</parameter>\n  </processor>' \
        in rendered


def test_render_empty_and_self_closing_parameters():
    content = CLIC_LIKE.replace(b'"CalibrHCALOther" type="FloatVec">62.2125698179</parameter>',
                                b'"CalibrHCALOther" type="FloatVec" />')
    content = content.replace(b'>53.6263377733<', b'><')
    rendered = render_final_steering(content, {'CalibrHCALOther': 60.0, 'CalibrHCALEndcap': 50.0}, CLIC)
    assert b'<parameter name="CalibrHCALOther" type="FloatVec">60.0</parameter>' in rendered
    assert b'<parameter name="CalibrHCALEndcap" type="FloatVec">50.0</parameter>' in rendered


def test_render_for_cld_processor_names():
    template = TEMPLATE.replace(b'"MyDDCaloDigi"', b'"MyDDCaloDigi_10ns"').replace(
        b'"MyDDMarlinPandora"', b'"MyDDMarlinPandora_10ns"')
    rendered = render_steering(template, NEW_CONSTANTS, CLD)
    assert read_constants(rendered, NEW_CONSTANTS, CLD) == NEW_CONSTANTS
    with pytest.raises(SteeringError, match='no <processor name="MyDDCaloDigi">'):
        render_steering(template, NEW_CONSTANTS, CLIC)


@pytest.mark.parametrize('constants, globals_, error, message', [
    ({'RootFile': 'x.root'}, None, ProcedureError, "'RootFile' is not a calibration constant"),
    ({'CalibrECAL': 40.0}, None, SteeringError, 'CalibrECAL is a FloatVec'),
    ({'CalibrHCALBarrel': math.nan}, None, SteeringError, 'CalibrHCALBarrel'),
    ([('CalibrHCALBarrel', 1.0)], None, SteeringError, 'constants must be a dict'),
    ({}, {'SkipNEvents': True}, SteeringError, "'SkipNEvents' = True"),
    ({}, {'SkipNEvents': None}, SteeringError, "'SkipNEvents' = None"),
    ({}, ['SkipNEvents'], SteeringError, 'global parameters must be a dict'),
    ({}, {'LCIOInputFiles': 'a<b'}, SteeringError, 'cannot be written as XML data'),
])
def test_render_refuses(constants, globals_, error, message):
    with pytest.raises(error, match=message):
        render_steering(TEMPLATE, constants, CLIC, globals_)


def test_render_needs_processor_names_in_settings():
    with pytest.raises(SettingsError, match='DDCaloDigiName'):
        render_steering(TEMPLATE, {'CalibrECAL': [1.0, 1.0]}, {})


def test_processor_parameters_are_set_and_read_back():
    rendered = render_steering(TEMPLATE, {}, CLIC, processor_parameters={
        ('MyPfoAnalysis', 'RootFile'): '/work/pfoAnalysis.root',
        ('MyDDMarlinPandora', 'PandoraSettingsXmlFile'): '/work/PandoraSettings/Training.xml',
    })
    assert processor_parameter(rendered, 'MyPfoAnalysis', 'RootFile') == '/work/pfoAnalysis.root'
    assert processor_parameter(rendered, 'MyDDMarlinPandora', 'PandoraSettingsXmlFile') == \
        '/work/PandoraSettings/Training.xml'
    assert processor_parameter(rendered, 'MyPfoAnalysis', 'NoSuchParameter') is None
    with pytest.raises(SteeringError, match='no <processor name="Nope">'):
        render_steering(TEMPLATE, {}, CLIC, processor_parameters={('Nope', 'RootFile'): 'x'})


# ---------------------------------------------------------------- what Marlin's TinyXML would read otherwise

def test_double_hyphen_comments_are_accepted():
    assert parse_steering(CLD_LIKE).constants == {'CalorimeterIntegrationTimeWindow': '10'}


@pytest.mark.parametrize('content, message', [
    (b'<marlin><global></marlin>', r'steering file \(line 1, column 17\): expected </global>'),
    (b'', 'has no root element'),
    (b'<steering><global/></steering>', 'root element <steering>, not <marlin>'),
    (12, 'must be bytes or str'),
    (None, 'must be bytes or str'),
    (b'<marlin>\xff</marlin>'.decode(errors='surrogateescape'), 'undecodable characters'),
])
def test_unusable_files(content, message):
    with pytest.raises(SteeringError, match=message):
        parse_steering(content)


def test_size_limit():
    filler = b'<!--' + b'x' * (5 * 1024 * 1024) + b'-->'
    with pytest.raises(SteeringError, match='more than the limit of 5242880'):
        parse_steering(b'<marlin>' + filler + b'</marlin>')
    assert parse_steering(b'<marlin><!--' + b'x' * (5 * 1024 * 1024 - 40) + b'--></marlin>').document.root.name == \
        'marlin'


BILLION_LAUGHS = b'''<?xml version="1.0"?>
<!DOCTYPE marlin [
 <!ENTITY lol "lol">
''' + b''.join(b' <!ENTITY lol%d "%s">\n' % (i, (b'&lol%d;' % (i - 1) if i > 1 else b'&lol;') * 10)
               for i in range(1, 10)) + b''']>
<marlin><global><parameter name="LCIOInputFiles">&lol9;</parameter></global></marlin>'''


@pytest.mark.parametrize('content, message', [
    (BILLION_LAUGHS, r'line 2, column 1\): has a <!DOCTYPE ...> declaration, which is refused'),
    (b'<!DOCTYPE marlin SYSTEM "http://example.org/evil.dtd"><marlin/>', 'has a <!DOCTYPE'),
    (b'<!DOCTYPE marlin [<!ELEMENT marlin ANY>]><marlin><global/></marlin>', 'has a <!DOCTYPE'),
    (b'<marlin>\n<!ENTITY secret SYSTEM "file:///etc/passwd">\n</marlin>', r'line 2, column 1\): has a <!ENTITY'),
    (b'<marlin xmlns:xi="http://www.w3.org/2001/XInclude"><global>\n<xi:include href="globals.xml"/></global></marlin>',
     'uses XInclude'),
    (b'<marlin><processor name="P" type="T">\n  <xi:include href="p.xml"/></processor></marlin>',
     r'line 2, column 3\): uses XInclude'),
    (b'<marlin>\n  <include ref="processors.xml"/>\n</marlin>',
     r'line 2, column 3\): has <include ref="processors.xml">, which Marlin replaces by the content of that file; '
     r'.* replace the <include> by the content of the file it names'),
    (b'<marlin><constants><include ref="c.xml"/></constants></marlin>', 'has <include ref="c.xml">'),
])
def test_declarations_and_includes_are_refused(content, message):
    with pytest.raises(SteeringError, match=message):
        parse_steering(content)


def test_entities_are_not_expanded_before_the_refusal(tmp_path):
    secret = tmp_path / 'secret.txt'
    secret.write_text('TOP-SECRET-MARKER')
    content = (b'<?xml version="1.0"?>\n<!DOCTYPE marlin [<!ENTITY secret SYSTEM "%s">]>\n'
               b'<marlin><global><parameter name="LCIOInputFiles">&secret;</parameter></global></marlin>'
               % secret.as_uri().encode())
    with pytest.raises(SteeringError, match='has a <!DOCTYPE') as caught:
        render_steering(content, {}, CLIC, {'SkipNEvents': '0'})
    assert 'TOP-SECRET-MARKER' not in str(caught.value)


def test_entity_references_are_read_as_marlin_reads_them():
    content = TEMPLATE.replace(b'>WARNING<', b'>&lol9;&amp;&#65;<')
    assert global_parameter(content, 'Verbosity') == '&lol9;&amp;A'   # Marlin's TinyXML reads '&' literally


def test_utf16_is_refused():
    utf16 = TEMPLATE.decode('ascii').replace('encoding="us-ascii"', 'encoding="UTF-16"').encode('utf-16')
    with pytest.raises(SteeringError, match='steering file is encoded in UTF-16, which TinyXML .* cannot read: save '
                                            'it as UTF-8'):
        read_constants(utf16, ['CalibrECAL'], CLIC)
