"""Known answers for the constants table and the Marlin steering file reader/writer."""

import math
import pathlib

import numpy as np
import pytest
from lxml import etree

from ILCDIRAC.CalibrationSystem.Procedure import steering
from ILCDIRAC.CalibrationSystem.Procedure.constants import (
    CONSTANTS, constants_of_phase, format_value, get_spec, parse_value, processor_name)
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError, SettingsError, SteeringError
from ILCDIRAC.CalibrationSystem.Procedure.settings import create_settings
from ILCDIRAC.CalibrationSystem.Procedure.steering import (
    global_parameter, parse_steering, read_constants, render_steering)

TEMPLATE = (pathlib.Path(__file__).parent / 'calibration_steering.xml').read_bytes()
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


def _parameter(content, processor, name):
    found = etree.fromstring(content).xpath(f'processor[@name="{processor}"]/parameter[@name="{name}"]')
    assert len(found) == 1
    return found[0]


def _without_line(content, needle):
    return b'\n'.join(line for line in content.split(b'\n') if needle not in line)


# ---------------------------------------------------------------- constants table

def test_constants_table():
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
    rng = np.random.default_rng(7)
    for value in rng.lognormal(0.0, 5.0, 200):
        assert parse_value(get_spec('HCalToMipCalibration'), format_value(get_spec('HCalToMipCalibration'), value)) \
            == float(value)
    pair = [float(x) for x in rng.normal(40.0, 3.0, 2)]
    assert parse_value(get_spec('CalibrECAL'), format_value(get_spec('CalibrECAL'), pair)) == pair


# ---------------------------------------------------------------- reading

def test_read_all_constants_of_the_template():
    assert read_constants(TEMPLATE, CONSTANTS, CLIC) == TEMPLATE_CONSTANTS


def test_read_from_str_and_tree():
    text = TEMPLATE.decode('ascii')        # carries an encoding declaration
    assert read_constants(text, ['CalibrECAL'], CLIC) == {'CalibrECAL': [37.5, 37.5]}
    tree = parse_steering(TEMPLATE)
    assert read_constants(tree, ['ECALEndcapCorrectionFactor'], CLIC) == {'ECALEndcapCorrectionFactor': 1.03}


def test_read_missing_processor():
    with pytest.raises(SteeringError, match='no <processor name="MyDDCaloDigi_10ns">.*DDCaloDigiName'):
        read_constants(TEMPLATE, ['CalibrECAL'], CLD)


def test_read_missing_parameter():
    content = _without_line(TEMPLATE, b'"CalibrHCALOther"')
    with pytest.raises(SteeringError, match='processor MyDDCaloDigi has no parameter CalibrHCALOther'):
        read_constants(content, ['CalibrHCALOther'], CLIC)
    assert read_constants(content, ['CalibrHCALBarrel'], CLIC) == {'CalibrHCALBarrel': 45.9}


def test_read_unparsable_or_empty_value():
    content = TEMPLATE.replace(b'>45.6621<', b'>forty<')
    with pytest.raises(SteeringError, match="HCalToMipCalibration = 'forty'"):
        read_constants(content, ['HCalToMipCalibration'], CLIC)
    content = TEMPLATE.replace(b'value="1.03"', b'value=""')
    with pytest.raises(SteeringError, match='ECALEndcapCorrectionFactor'):
        read_constants(content, ['ECALEndcapCorrectionFactor'], CLIC)


def test_text_and_value_attribute():
    same = TEMPLATE.replace(b'value="1.03"/>', b'value="1.03">1.03</parameter>')
    assert read_constants(same, ['ECALEndcapCorrectionFactor'], CLIC) == {'ECALEndcapCorrectionFactor': 1.03}
    different = TEMPLATE.replace(b'value="1.03"/>', b'value="1.03">1.10</parameter>')
    with pytest.raises(SteeringError, match='both text'):
        read_constants(different, ['ECALEndcapCorrectionFactor'], CLIC)


def test_duplicates_refused():
    twice = TEMPLATE.replace(b'<group name="Output">', b'<processor name="MyDDCaloDigi" type="DDCaloDigi"/>'
                             b'<group name="Output">')
    with pytest.raises(SteeringError, match='defines <processor name="MyDDCaloDigi"> 2 times'):
        read_constants(twice, ['CalibrECAL'], CLIC)
    content = TEMPLATE.replace(b'<parameter name="CalibrHCALOther"', b'<parameter name="CalibrHCALEndcap">1'
                               b'</parameter><parameter name="CalibrHCALOther"')
    with pytest.raises(SteeringError, match='processor MyDDCaloDigi sets parameter CalibrHCALEndcap 2 times'):
        read_constants(content, ['CalibrHCALEndcap'], CLIC)


def test_processor_in_a_group_and_cld_names():
    content = b'''<marlin><execute><processor name="MyDDCaloDigi_10ns"/></execute>
      <group name="Calo"><processor name="MyDDCaloDigi_10ns" type="DDCaloDigi">
        <parameter name="CalibrECAL" type="FloatVec">40 80</parameter></processor></group></marlin>'''
    assert read_constants(content, ['CalibrECAL'], CLD) == {'CalibrECAL': [40.0, 80.0]}


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


# ---------------------------------------------------------------- rendering

NEW_CONSTANTS = {
    'CalibrECAL': [38.25, 76.5], 'ECALEndcapCorrectionFactor': 1.0875,
    'ECalToMipCalibration': 160.0, 'HCalToHadGeVCalibration': 0.987654321,
}


def test_render_round_trip():
    rendered = render_steering(TEMPLATE, NEW_CONSTANTS, CLIC)
    assert rendered.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    expected = dict(TEMPLATE_CONSTANTS, **NEW_CONSTANTS)
    assert read_constants(rendered, CONSTANTS, CLIC) == expected
    endcap = _parameter(rendered, 'MyDDCaloDigi', 'ECALEndcapCorrectionFactor')
    assert endcap.get('value') is None and endcap.text == '1.0875' and endcap.get('type') == 'float'
    assert _parameter(rendered, 'MyDDCaloDigi', 'CalibrECAL').text == '38.25 76.5'
    assert b'<!--ECAL Collection Names-->' in rendered
    assert _parameter(rendered, 'MyPfoAnalysis', 'RootFile').text == 'pfoAnalysis.root'
    assert global_parameter(rendered, 'SkipNEvents') == '0'          # no globals given: untouched


def test_render_is_idempotent():
    once = render_steering(TEMPLATE, NEW_CONSTANTS, CLIC, {'SkipNEvents': '5'})
    assert render_steering(once, NEW_CONSTANTS, CLIC, {'SkipNEvents': '5'}) == once


def test_render_global_parameters():
    rendered = render_steering(TEMPLATE, {}, CLIC, {'LCIOInputFiles': '/w/k_1.slcio /w/k_2.slcio',
                                                    'SkipNEvents': '250', 'MaxRecordNumber': 125})
    assert global_parameter(rendered, 'LCIOInputFiles') == '/w/k_1.slcio /w/k_2.slcio'
    assert global_parameter(rendered, 'SkipNEvents') == '250'
    assert global_parameter(rendered, 'MaxRecordNumber') == '125'
    skip = etree.fromstring(rendered).find('global/parameter[@name="SkipNEvents"]')
    assert skip.get('value') is None
    assert global_parameter(rendered, 'RandomSeed') == '1234567890'


def test_render_creates_global_section():
    template = b'<marlin><processor name="MyDDCaloDigi" type="DDCaloDigi"/>' \
               b'<processor name="MyDDMarlinPandora" type="DDPandoraPFANewProcessor"/></marlin>'
    rendered = render_steering(template, {'CalibrECAL': [40.0, 40.0]}, CLIC, {'SkipNEvents': '3'})
    assert global_parameter(rendered, 'SkipNEvents') == '3'
    assert read_constants(rendered, ['CalibrECAL'], CLIC) == {'CalibrECAL': [40.0, 40.0]}


def test_render_appends_missing_parameters_with_type():
    template = _without_line(_without_line(TEMPLATE, b'"HCalToHadGeVCalibration"'), b'"CalibrECAL"')
    rendered = render_steering(template, NEW_CONSTANTS, CLIC)
    assert _parameter(rendered, 'MyDDMarlinPandora', 'HCalToHadGeVCalibration').get('type') == 'float'
    assert _parameter(rendered, 'MyDDCaloDigi', 'CalibrECAL').get('type') == 'FloatVec'
    assert read_constants(rendered, NEW_CONSTANTS, CLIC) == NEW_CONSTANTS
    assert b'\n    <parameter name="CalibrECAL" type="FloatVec">38.25 76.5</parameter>\n  </processor>' in rendered


def test_render_software_compensation_and_thick_layers():
    rendered = render_steering(TEMPLATE, {}, CLIC)
    assert _parameter(rendered, 'MyDDMarlinPandora', 'MaxClusterEnergyToApplySoftComp').text == '0'
    assert _parameter(rendered, 'MyDDCaloDigi', 'ECALLayers').text == '41 100'     # no thick layers: untouched
    settings = dict(CLIC, disableSoftwareCompensation=False, nEcalThinLayers=20, nEcalThickLayers=10)
    rendered = render_steering(TEMPLATE, {}, settings)
    assert _parameter(rendered, 'MyDDMarlinPandora', 'MaxClusterEnergyToApplySoftComp').text == '2000.'
    layers = _parameter(rendered, 'MyDDCaloDigi', 'ECALLayers')
    assert (layers.text, layers.get('type')) == ('20 31', 'IntVec')


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
])
def test_render_refuses(constants, globals_, error, message):
    with pytest.raises(error, match=message):
        render_steering(TEMPLATE, constants, CLIC, globals_)


def test_render_needs_processor_names_in_settings():
    with pytest.raises(SettingsError, match='DDCaloDigiName'):
        render_steering(TEMPLATE, {'CalibrECAL': [1.0, 1.0]}, {})


# ---------------------------------------------------------------- unusable or hostile input

@pytest.mark.parametrize('content, message', [
    (b'<marlin><global></marlin>', 'not well-formed'),
    (b'', 'not well-formed'),
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
    assert parse_steering(b'<marlin><!--' + b'x' * (5 * 1024 * 1024 - 40) + b'--></marlin>').getroot().tag == 'marlin'


BILLION_LAUGHS = b'''<?xml version="1.0"?>
<!DOCTYPE marlin [
 <!ENTITY lol "lol">
''' + b''.join(b' <!ENTITY lol%d "%s">\n' % (i, (b'&lol%d;' % (i - 1) if i > 1 else b'&lol;') * 10)
               for i in range(1, 10)) + b''']>
<marlin><global><parameter name="LCIOInputFiles">&lol9;</parameter></global></marlin>'''


def test_billion_laughs_refused():
    with pytest.raises(SteeringError, match='declares XML entities'):
        parse_steering(BILLION_LAUGHS)
    with pytest.raises(SteeringError, match='declares XML entities'):
        global_parameter(BILLION_LAUGHS, 'LCIOInputFiles')


def _external_entity(url):
    return (b'<?xml version="1.0"?>\n<!DOCTYPE marlin [<!ENTITY secret SYSTEM "%s">]>\n'
            b'<marlin><global><parameter name="LCIOInputFiles">&secret;</parameter></global></marlin>' % url)


def test_external_entity_refused_without_reading(tmp_path):
    secret = tmp_path / 'secret.txt'
    secret.write_text('TOP-SECRET-MARKER')
    for content in (_external_entity(b'file:///etc/passwd'), _external_entity(secret.as_uri().encode())):
        with pytest.raises(SteeringError, match='declares XML entities') as caught:
            render_steering(content, {}, CLIC, {'SkipNEvents': '0'})
        assert 'TOP-SECRET-MARKER' not in str(caught.value) and 'root:' not in str(caught.value)
    # The parser itself never substitutes the entity: the file is not read at all.
    root = etree.fromstring(_external_entity(secret.as_uri().encode()), steering._parser())
    assert b'TOP-SECRET-MARKER' not in etree.tostring(root)
    assert b'&secret;' in etree.tostring(root)


def test_parameter_entity_and_external_dtd_refused():
    parameter_entity = b'<!DOCTYPE marlin [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><marlin/>'
    with pytest.raises(SteeringError, match='declares XML entities'):
        parse_steering(parameter_entity)
    external_dtd = b'<!DOCTYPE marlin SYSTEM "http://example.org/evil.dtd"><marlin a="&x;"/>'
    with pytest.raises(SteeringError, match='external DTD'):
        parse_steering(external_dtd)


def test_doctype_without_entities_is_accepted():
    content = b'<!DOCTYPE marlin [<!ELEMENT marlin ANY>]><marlin><global/></marlin>'
    assert parse_steering(content).getroot().tag == 'marlin'


def test_entities_in_utf16_refused_after_parsing():
    # The byte scan for '<!ENTITY' cannot see UTF-16; the check of the parsed DOCTYPE must.
    content = _external_entity(b'file:///etc/passwd').decode('ascii').replace(
        'version="1.0"', 'version="1.0" encoding="UTF-16"').encode('utf-16')
    assert b'<!ENTITY' not in content
    with pytest.raises(SteeringError, match='declares XML entities'):
        parse_steering(content)
    utf16 = TEMPLATE.decode('ascii').replace('encoding="us-ascii"', 'encoding="UTF-16"').encode('utf-16')
    assert read_constants(utf16, ['CalibrECAL'], CLIC) == {'CalibrECAL': [37.5, 37.5]}


def test_processor_parameters_are_set_and_read_back_by_processor_type():
    pfo = steering.processor_name_of_type(TEMPLATE, 'PfoAnalysis')
    assert pfo == 'MyPfoAnalysis'
    rendered = render_steering(TEMPLATE, {}, CLIC, processor_parameters={
        (pfo, 'RootFile'): '/work/pfoAnalysis.root',
        ('MyDDMarlinPandora', 'PandoraSettingsXmlFile'): '/work/PandoraSettings/Training.xml',
    })
    assert steering.processor_parameter(rendered, pfo, 'RootFile') == '/work/pfoAnalysis.root'
    assert steering.processor_parameter(rendered, 'MyDDMarlinPandora', 'PandoraSettingsXmlFile') == \
        '/work/PandoraSettings/Training.xml'
    assert steering.processor_parameter(rendered, pfo, 'NoSuchParameter') is None
    with pytest.raises(SteeringError, match='0 processors of type Marlin'):
        steering.processor_name_of_type(TEMPLATE, 'Marlin')
    with pytest.raises(SteeringError, match='no <processor name="Nope">'):
        render_steering(TEMPLATE, {}, CLIC, processor_parameters={('Nope', 'RootFile'): 'x'})
