"""Read and write the calibration constants of a Marlin steering file (lxml).

The steering file comes from the user, so it is parsed defensively: no entity expansion, no DTD
loading, no network, a size limit, and any entity declaration or external DTD is refused (they
serve no purpose in a steering file and are the vehicle of XML bombs and file disclosure).

Processor definitions are the ``<processor name=.. type=..>`` children of ``<marlin>`` (or of a
``<group>``); the ``<processor name=..>`` references inside ``<execute>`` are not definitions.
A parameter's value is its text or else its ``value`` attribute.
"""

from lxml import etree

from ILCDIRAC.CalibrationSystem.Procedure.constants import (
    MARLIN_TYPE, format_value, get_spec, parse_value, role_processor_name)
from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError, SteeringError

MAX_STEERING_BYTES = 5 * 1024 * 1024

_ENTITY_REFUSED = ('steering file declares XML entities in its DOCTYPE, which is refused for safety: '
                   'remove the DOCTYPE and write the values out')


def _parser(encoding=None):
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           remove_comments=False, encoding=encoding)


def _refuse_entities(tree):
    """After parsing: catches what the byte scan cannot see (e.g. UTF-16 input, external DTDs)."""
    docinfo = tree.docinfo
    dtd = docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise SteeringError(_ENTITY_REFUSED)
    if docinfo.system_url or docinfo.public_id:
        raise SteeringError(f'steering file refers to an external DTD ({docinfo.system_url or docinfo.public_id}), '
                            'which is refused for safety: remove the DOCTYPE')


def parse_steering(content):
    """Parse a Marlin steering file safely; SteeringError if it is unusable or unsafe.

    No entities, DTD loading or network access; at most MAX_STEERING_BYTES.

    :param content: the steering file (bytes or str)
    :return: lxml ElementTree
    """
    if isinstance(content, str):
        try:
            data, encoding = content.encode('utf-8'), 'utf-8'   # the text is already decoded
        except UnicodeEncodeError:
            raise SteeringError('steering file text holds undecodable characters: pass the file as bytes') from None
    elif isinstance(content, (bytes, bytearray)):
        data, encoding = bytes(content), None
    else:
        raise SteeringError(f'steering file content must be bytes or str, got {type(content).__name__}')
    if len(data) > MAX_STEERING_BYTES:
        raise SteeringError(f'steering file is {len(data)} bytes, more than the limit of {MAX_STEERING_BYTES}: '
                            'a Marlin steering file is far smaller, check that the right file was given')
    if b'<!ENTITY' in data:     # refuse before libxml2 even reads the declarations
        raise SteeringError(_ENTITY_REFUSED)
    try:
        root = etree.fromstring(data, _parser(encoding))
    except etree.XMLSyntaxError as error:
        raise SteeringError(f'steering file is not well-formed XML: {error}') from None
    tree = root.getroottree()
    _refuse_entities(tree)
    if root.tag != 'marlin':
        raise SteeringError(f'steering file has root element <{root.tag}>, not <marlin>: give a Marlin steering file')
    return tree


def _as_tree(content):
    return content if isinstance(content, etree._ElementTree) else parse_steering(content)


def _processor_of(root, role, settings):
    return _processor(root, role_processor_name(role, settings))


def _processor(root, name):
    found = root.xpath('processor[@name=$name] | group/processor[@name=$name]', name=name)
    if not found:
        raise SteeringError(f'steering file has no <processor name="{name}">: check the processor name settings '
                            '(DDCaloDigiName, DDPandoraPFANewProcessorName) against the steering file')
    if len(found) > 1:
        raise SteeringError(f'steering file defines <processor name="{name}"> {len(found)} times: keep one')
    return found[0]


def _parameter(parent, name):
    found = parent.xpath('parameter[@name=$name]', name=name)
    if len(found) > 1:
        where = f'processor {parent.get("name")}' if parent.tag == 'processor' else f'<{parent.tag}>'
        raise SteeringError(f'{where} sets parameter {name} {len(found)} times: keep one')
    return found[0] if found else None


def _value(parameter):
    """Text or else 'value' attribute; both given and different is ambiguous (Marlin prefers the attribute)."""
    text = ' '.join((parameter.text or '').split())
    attribute = parameter.get('value')
    if text and attribute is not None and ' '.join(attribute.split()) != text:
        raise SteeringError(f'parameter {parameter.get("name")} has both text {text!r} and value attribute '
                            f'{attribute!r}: keep only one')
    return text or (attribute or '').strip()


def read_constants(content, names, settings):
    """Return {name: value} of the calibration constants ``names`` as set in the steering file.

    The value is the element's text or its 'value' attribute.

    :param content: the steering file (bytes, str or parsed tree)
    :param names: constant names (see constants.CONSTANTS)
    :param dict settings: the settings naming the DDCaloDigi and DDMarlinPandora processors
    :return: {name: float, or list of floats for a FloatVec}; SteeringError naming the processor or
        parameter that is missing or unreadable
    """
    root = _as_tree(content).getroot()
    constants = {}
    for name in names:
        spec = get_spec(name)
        processor = _processor_of(root, spec.role, settings)
        parameter = _parameter(processor, name)
        if parameter is None:
            raise SteeringError(f'processor {processor.get("name")} has no parameter {name}: add '
                                f'<parameter name="{name}" type="{MARLIN_TYPE[spec.kind]}"> with its start value')
        constants[name] = parse_value(spec, _value(parameter))
    return constants


def processor_name_of_type(content, processor_type):
    """The name of the one processor of ``processor_type`` (e.g. 'PfoAnalysis').

    :param content: the steering file (bytes, str or parsed tree)
    :param str processor_type: a Marlin processor type
    :return: the processor's name; SteeringError unless there is exactly one
    """
    root = _as_tree(content).getroot()
    found = root.xpath('processor[@type=$type] | group/processor[@type=$type]', type=processor_type)
    if len(found) != 1:
        raise SteeringError(f'steering file has {len(found)} processors of type {processor_type}: it needs exactly one')
    return found[0].get('name')


def processor_parameter(content, processor, name):
    """Value of a parameter of the processor named ``processor``, or None if it is not set.

    :param content: the steering file (bytes, str or parsed tree)
    :param str processor: the processor's name
    :param str name: the parameter's name
    :return: the value's text (stripped), or None
    """
    parameter = _parameter(_processor(_as_tree(content).getroot(), processor), name)
    return None if parameter is None else _value(parameter)


def global_parameter(content, name):
    """Value of a <global> parameter (e.g. LCIOInputFiles), or None if it is not set.

    :param content: the steering file (bytes, str or parsed tree)
    :param str name: the parameter's name
    :return: the value's text (stripped), or None
    """
    root = _as_tree(content).getroot()
    section = root.find('global')
    parameter = None if section is None else _parameter(section, name)
    return None if parameter is None else _value(parameter)


def _append(parent, child):
    """Append ``child`` keeping the indentation of its new siblings."""
    if len(parent):
        last = parent[-1]
        child.tail = last.tail
        last.tail = parent[-2].tail if len(parent) > 1 else parent.text
    parent.append(child)


def _set_parameter(parent, name, text, marlin_type=None):
    parameter = _parameter(parent, name)
    if parameter is None:
        parameter = etree.Element('parameter', name=name)
        if marlin_type:
            parameter.set('type', marlin_type)
        _append(parent, parameter)
    parameter.attrib.pop('value', None)
    parameter.text = text


def _derived_parameters(settings):
    """Parameters implied by the settings (physics.md 2.6): (role, name, Marlin type, text)."""
    try:
        derived = []
        if settings['disableSoftwareCompensation']:
            derived.append(('pandora', 'MaxClusterEnergyToApplySoftComp', 'float', '0'))
        thin, thick = settings['nEcalThinLayers'], settings['nEcalThickLayers']
    except (KeyError, TypeError):
        raise SettingsError('settings lack disableSoftwareCompensation / nEcalThinLayers / nEcalThickLayers: '
                            'pass the settings returned by validate_settings') from None
    if thick > 0:
        derived.append(('digi', 'ECALLayers', 'IntVec', f'{thin} {thin + thick + 1}'))
    return derived


def _check_global_parameters(global_parameters):
    if not isinstance(global_parameters, dict):
        raise SteeringError(f'global parameters must be a dict name -> text, got {type(global_parameters).__name__}')
    for name, value in global_parameters.items():
        if not isinstance(name, str) or not name or isinstance(value, bool) or not isinstance(value, (str, int)):
            raise SteeringError(f'global parameter {name!r} = {value!r} is not allowed: '
                                'use a non-empty name and a str (or int) value')


def render_steering(template, constants, settings, global_parameters=None, processor_parameters=None):
    """Return the steering file ``template`` with the constants and <global> parameters written in.

    Every constant goes into its processor as element text (a 'value' attribute is dropped; a
    missing <parameter> is appended). The settings also decide MaxClusterEnergyToApplySoftComp = 0
    (disableSoftwareCompensation) and ECALLayers (when nEcalThickLayers > 0).
    ``processor_parameters`` maps (processor name, parameter name) to a text to set (e.g. the
    PfoAnalysis RootFile or DDMarlinPandora's PandoraSettingsXmlFile of a step).

    :param template: the steering file (bytes, str or parsed tree)
    :param dict constants: {constant name: value}
    :param dict settings: the calibration settings (processor names, derived parameters)
    :param dict global_parameters: {name: str or int} for <global>, e.g. SkipNEvents
    :param dict processor_parameters: {(processor name, parameter name): value}
    :return: the steering file (XML bytes, UTF-8, with declaration)
    """
    if not isinstance(constants, dict):
        raise SteeringError(f'constants must be a dict name -> value, got {type(constants).__name__}')
    global_parameters = {} if global_parameters is None else global_parameters
    _check_global_parameters(global_parameters)
    tree = parse_steering(template)
    root = tree.getroot()
    for name, value in constants.items():
        spec = get_spec(name)
        processor = _processor_of(root, spec.role, settings)
        _set_parameter(processor, name, format_value(spec, value), MARLIN_TYPE[spec.kind])
    for role, name, marlin_type, text in _derived_parameters(settings):
        _set_parameter(_processor_of(root, role, settings), name, text, marlin_type)
    if global_parameters:
        section = root.find('global')
        if section is None:
            section = etree.Element('global')
            _append(root, section)
        for name, value in global_parameters.items():
            _set_parameter(section, name, str(value))
    for (processor, name), value in (processor_parameters or {}).items():
        _set_parameter(_processor(root, processor), name, str(value))
    return etree.tostring(tree, xml_declaration=True, encoding='UTF-8')
