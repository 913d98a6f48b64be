"""Marlin steering files, read as Marlin reads them and written byte for byte.

Marlin (source/src/XMLParser.cc, StringParameters.cc, ProcessorParameter.cc) reads a steering
file with its copy of TinyXML (see tinyxml_document, dialect MARLIN) and then:

- ``<constants>``: the first such section's ``<constant name=..>`` elements, in order; a
  constant's value is its ``value`` attribute if present, else its first child's value; ``${name}``
  references to constants defined before it are substituted (performConstantReplacement; an
  unknown name is an error).
- ``<execute>`` (the first): the ``<processor name=..>`` entries it holds, directly or inside
  ``<if>`` (at any depth), and ``<group name=../>`` entries, each standing for the processors of
  the first top-level ``<group>`` of that name, in document order; ``${}`` is substituted in the
  names. A processor may run only once.
- processor definitions: the top-level ``<processor name=.. type=..>`` elements, and those inside
  the top-level ``<group>`` elements that come after ``<execute>`` (Marlin expands only those);
  a name may be defined once. A group's own ``<parameter>`` elements are appended to each of its
  processors.
- a parameter's value is its ``value`` attribute if the attribute is present (even empty), else
  the values of its children (texts, whose white space TinyXML condenses, but not comments)
  joined by spaces; ``${}`` is substituted, and the result is split at spaces into values.
  Values under one name accumulate: a processor's own definitions first, then its group's. A
  scalar parameter (int, float, string) takes the first value, a vector (IntVec, FloatVec,
  StringVec) all of them; no value at all leaves the processor's default.

A constant is therefore written where Marlin takes its effective value from: the processor if it
defines it, else its group (a group's parameter is shared by the group's other processors). A
vector defined on both is refused: Marlin would concatenate the two. Only the bytes of the values
written change (docs/detector_files.rst).
"""
from typing import NamedTuple

from ILCDIRAC.CalibrationSystem.Procedure.constants import (
    PROCESSOR_SETTING, format_value, get_spec, parse_value, role_processor_name)
from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError, SteeringError
from ILCDIRAC.CalibrationSystem.Procedure.tinyxml_document import (
    MARLIN, Comment, Element, markup, parse_document)

MAX_STEERING_BYTES = 5 * 1024 * 1024
VECTOR_TYPES = ("IntVec", "FloatVec", "StringVec")
#: Marlin processor type of the processor of each role.
PROCESSOR_TYPE = {"digi": "DDCaloDigi", "pandora": "DDPandoraPFANewProcessor"}


class Processor(NamedTuple):
    """A processor definition: its name and type, its element and the <group> it belongs to (or None)."""

    name: str
    type: str
    element: Element
    group: Element


class SteeringFile:
    """A steering file as Marlin reads it (see the module's description); made by parse_steering."""

    def __init__(self, document):
        """
        :param document: the tinyxml_document.XmlDocument of the file
        """
        self.document = document
        root = document.root
        if root.name != "marlin":
            raise SteeringError(f"steering file has root element <{root.name}>, not <marlin>: give a Marlin "
                                "steering file")
        for include in root.iter("include"):
            raise document.error(
                f'has <include ref="{include.get("ref", "")}">, which Marlin replaces by the content of that file; '
                "the calibration sends one steering file to its workers, so replace the <include> by the content "
                "of the file it names", include.start)
        self.constants = self._constants(root.find("constants"))
        self.global_section = root.find("global")
        self.execute_section = root.find("execute")
        self.processors = self._definitions(root)
        self.executed = self._executed(root)

    def _constants(self, section):
        constants = {}
        for element in section.elements() if section is not None else ():
            if element.name != "constant":
                continue
            name = element.get("name")
            if not name:
                raise self.document.error("a <constant> has no name", element.start)
            if name in constants:
                raise self.document.error(f"constant {name} is defined twice", element.start)
            value = element.get("value")
            if value is None:
                first = element.children[0] if element.children else None
                value = "" if first is None else first.name if isinstance(first, Element) else first.value
            constants[name] = self.substitute(value, constants, f"constant {name}")
        return constants

    def substitute(self, text, constants=None, where="a value"):
        """``text`` with every ``${name}`` replaced by the constant's value, as Marlin does.

        :param str text: a value of the steering file
        :param dict constants: the constants (None: those of the file)
        :param str where: what the text is, for messages
        :return: str; SteeringError for an unknown or unterminated reference
        """
        constants = self.constants if constants is None else constants
        position = text.find("${")
        while position >= 0:
            end = text.find("}", position + 2)
            if end < 0:
                raise SteeringError(f"steering file: {where} = {text!r} has a '${{' without '}}'")
            key = text[position + 2:end]
            if key not in constants:
                raise SteeringError(f"steering file: {where} uses the constant ${{{key}}}, which <constants> does "
                                    f"not define (defined: {', '.join(constants) or 'none'})")
            text = text[:position] + constants[key] + text[end + 1:]
            position = text.find("${", position + len(constants[key]))
        return text

    def _definitions(self, root):
        processors, after_execute = {}, False
        for element in root.elements():
            after_execute = after_execute or element is self.execute_section
            if element.name == "processor":
                members = [(element, None)]
            elif element.name == "group" and after_execute:   # Marlin expands only the groups after <execute>
                members = [(processor, element) for processor in element.elements("processor")]
            else:
                continue
            for processor, group in members:
                name, kind = processor.get("name"), processor.get("type")
                if not name or kind is None:
                    raise self.document.error("a <processor> definition needs a name and a type attribute",
                                              processor.start)
                if name in processors:
                    raise SteeringError(f'steering file defines <processor name="{name}"> 2 times: keep one')
                processors[name] = Processor(name, kind, processor, group)
                for section in (processor, group):
                    self._check_parameter_names(section)
        self._check_parameter_names(self.global_section)
        return processors

    def _check_parameter_names(self, section):
        for parameter in section.elements("parameter") if section is not None else ():
            if not parameter.get("name"):
                raise self.document.error("a <parameter> has no name attribute: Marlin cannot read it",
                                          parameter.start)

    def _executed(self, root):
        """{name: the <execute> entry that runs it}, in the order Marlin runs them."""
        executed = {}
        stack = list(reversed(self.execute_section.elements())) if self.execute_section is not None else []
        while stack:
            entry = stack.pop()
            if entry.name == "if":
                stack.extend(reversed(entry.elements()))
                continue
            if entry.name == "group":
                group = next((g for g in root.elements("group") if g.get("name") == entry.get("name")), None)
                names = [p.get("name", "") for p in group.elements("processor")] if group is not None else []
            elif entry.name == "processor":
                names = [entry.get("name")]
            else:
                continue
            for name in names:
                if not name:
                    raise self.document.error("a <processor> entry of <execute> has no name", entry.start)
                name = self.substitute(name, where="a processor name in <execute>")
                if name in executed:
                    raise self.document.error(f"<execute> runs {name} twice, which Marlin refuses", entry.start)
                executed[name] = entry
        return executed

    def processor(self, name):
        """The definition of the processor ``name``.

        :param str name: processor name
        :return: Processor; SteeringError if the file does not define it
        """
        if name not in self.processors:
            hint = ""
            groups = self.document.root.elements("group")
            if any(p.get("name") == name for group in groups for p in group.elements("processor")):
                hint = " (it is inside a <group> placed before <execute>, which Marlin does not expand)"
            raise SteeringError(f'steering file has no <processor name="{name}">{hint}: check the processor name '
                                "settings (DDCaloDigiName, DDPandoraPFANewProcessorName) against the steering file")
        return self.processors[name]

    def definitions(self, processor, name):
        """The <parameter name=``name``> elements Marlin gives processor ``processor``: its own, then its group's.

        :param str processor: processor name
        :param str name: parameter name
        :return: (list of own Element, list of the group's Element)
        """
        definition = self.processor(processor)
        own = [p for p in definition.element.elements("parameter") if p.get("name") == name]
        group = definition.group.elements("parameter") if definition.group is not None else []
        return own, [p for p in group if p.get("name") == name]

    def values(self, parameter):
        """The values Marlin reads from one <parameter> element (see the module's description).

        :param Element parameter: a <parameter> element of this file
        :return: list of str
        """
        line = parameter.get("value")
        if line is None:
            line = " ".join(child.name if isinstance(child, Element) else child.value
                            for child in parameter.children if not isinstance(child, Comment))
        line = self.substitute(line, where=f"parameter {parameter.get('name')}")
        return [token for token in line.split(" ") if token]

    def processor_values(self, processor, name):
        """All values Marlin gives parameter ``name`` of processor ``processor``, or None if nothing defines it.

        :param str processor: processor name
        :param str name: parameter name
        :return: list of str, or None
        """
        own, group = self.definitions(processor, name)
        return None if not own + group else [value for p in own + group for value in self.values(p)]

    def global_values(self, name):
        """All values of <global> parameter ``name``, or None if <global> does not define it.

        :param str name: parameter name
        :return: list of str, or None
        """
        found = self.global_definitions(name)
        return None if not found else [value for p in found for value in self.values(p)]

    def global_definitions(self, name):
        """The <parameter name=``name``> elements of <global>.

        :param str name: parameter name
        :return: list of Element
        """
        section = self.global_section
        return [p for p in section.elements("parameter") if p.get("name") == name] if section is not None else []


def parse_steering(content):
    """Read a Marlin steering file as Marlin does; SteeringError if Marlin could not use it as it looks.

    :param content: the steering file (bytes, str, or an already parsed SteeringFile)
    :return: SteeringFile
    """
    if isinstance(content, SteeringFile):
        return content
    if isinstance(content, str):
        try:
            content = content.encode("utf-8")
        except UnicodeEncodeError:
            raise SteeringError("steering file text holds undecodable characters: pass the file as bytes") from None
    elif not isinstance(content, (bytes, bytearray)):
        raise SteeringError(f"steering file content must be bytes or str, got {type(content).__name__}")
    return SteeringFile(parse_document(bytes(content), "steering file", MARLIN, SteeringError, MAX_STEERING_BYTES))


def _place(element):
    """'processor X', 'group G' or '<global>' for the element holding a parameter."""
    kind = element.name
    return f"{kind} {element.get('name')}" if kind in ("processor", "group") else f"<{kind}>"


def _single(steering, found, name):
    """The one definition in ``found`` (or None); SteeringError if one place sets ``name`` twice."""
    if len(found) > 1:
        lines = ", ".join(steering.document.where(p.start) for p in found)
        raise SteeringError(f"{_place(found[0].parent)} sets parameter {name} {len(found)} times ({lines}): "
                            "Marlin would combine them; keep one")
    return found[0] if found else None


def _defining(steering, processor, name, vector):
    """The one <parameter> from which Marlin takes the effective value of ``name``, or None.

    A scalar takes the first value: the processor's definition if it has one, else the group's. A
    vector takes all: defined on both, it is ambiguous and refused. Defined twice in one place: refused.
    """
    own, group = (_single(steering, found, name) for found in steering.definitions(processor, name))
    if vector and own is not None and group is not None:
        raise SteeringError(
            f"parameter {name} of processor {processor} is set both on the processor "
            f"({steering.document.where(own.start)}) and on its group {group.parent.get('name')} "
            f"({steering.document.where(group.start)}): Marlin would concatenate the two lists; keep one of them")
    candidates = [p for p in (own, group) if p is not None]
    if not candidates or vector:
        return candidates[0] if candidates else None
    return next((p for p in candidates if steering.values(p)), candidates[0])


def _effective(steering, processor, name, vector):
    """Values Marlin gives a processor's parameter (all for a vector, the first for a scalar); None if unset."""
    if _defining(steering, processor, name, vector) is None:
        return None
    values = steering.processor_values(processor, name)
    return values if vector else values[:1]


def read_constants(content, names, settings):
    """Return {name: value} of the calibration constants ``names``, as Marlin would set them.

    :param content: the steering file (bytes, str or SteeringFile)
    :param names: constant names (see constants.CONSTANTS)
    :param dict settings: the settings naming the DDCaloDigi and DDMarlinPandora processors
    :return: {name: float, or list of floats for a FloatVec}; SteeringError naming the processor or
        parameter that is missing, ambiguous or unreadable
    """
    steering = parse_steering(content)
    constants = {}
    for name in names:
        spec = get_spec(name)
        processor = role_processor_name(spec.role, settings)
        values = _effective(steering, processor, name, spec.marlin_type in VECTOR_TYPES)
        if values is None:
            raise SteeringError(f"processor {processor} has no parameter {name}: add "
                                f'<parameter name="{name}" type="{spec.marlin_type}"> with its start value')
        unsplit = next((value for value in values if any(char.isspace() for char in value)), None)
        if unsplit is not None:
            raise SteeringError(f"constant {name} = {' '.join(values)!r} cannot be read: {unsplit!r} holds a tab or "
                                "line break, which Marlin does not split at; separate the values by spaces")
        constants[name] = parse_value(spec, " ".join(values))
    return constants


def processor_name_of_type(content, processor_type):
    """The name of the one processor defined with ``processor_type`` (e.g. 'PfoAnalysis').

    :param content: the steering file (bytes, str or SteeringFile)
    :param str processor_type: a Marlin processor type
    :return: the processor's name; SteeringError unless there is exactly one
    """
    found = [p.name for p in parse_steering(content).processors.values() if p.type == processor_type]
    if len(found) != 1:
        raise SteeringError(f"steering file has {len(found)} processors of type {processor_type}: it needs exactly one")
    return found[0]


def processor_parameter(content, processor, name):
    """The values Marlin gives a processor's parameter, joined by spaces (a scalar uses the first), or None.

    :param content: the steering file (bytes, str or SteeringFile)
    :param str processor: the processor's name
    :param str name: the parameter's name
    :return: str, or None if neither the processor nor its group sets it
    """
    values = parse_steering(content).processor_values(processor, name)
    return None if values is None else " ".join(values)


def global_parameter(content, name):
    """The values of a <global> parameter (e.g. LCIOInputFiles) joined by spaces, or None if it is not set.

    :param content: the steering file (bytes, str or SteeringFile)
    :param str name: the parameter's name
    :return: str, or None
    """
    values = parse_steering(content).global_values(name)
    return None if values is None else " ".join(values)


def check_calibration_processors(content, settings):
    """SteeringError unless the DDCaloDigi and DDMarlinPandora processors the settings name are
    defined with those types and run by <execute>.

    :param content: the steering file (bytes, str or SteeringFile)
    :param dict settings: the calibration settings (DDCaloDigiName, DDPandoraPFANewProcessorName)
    """
    steering = parse_steering(content)
    if steering.execute_section is None:
        raise SteeringError("steering file has no <execute> section, so Marlin would run nothing: add one")
    for role, processor_type in PROCESSOR_TYPE.items():
        name, setting = role_processor_name(role, settings), PROCESSOR_SETTING[role]
        running = [n for n in steering.executed if n in steering.processors and
                   steering.processors[n].type == processor_type] or list(steering.executed)
        if name not in steering.processors or name not in steering.executed:
            problem = "defines no such processor" if name not in steering.processors else "does not run it in <execute>"
            raise SteeringError(f"{setting} is {name!r} but the steering file {problem}: set {setting} to the "
                                f"processor that runs; <execute> runs {', '.join(running) or 'nothing'}")
        if steering.processors[name].type != processor_type:
            raise SteeringError(f"{setting} is {name!r}, a processor of type {steering.processors[name].type}, not "
                                f"{processor_type}: set {setting} to one of {', '.join(running)}")


class _Writer:
    """Collects the edits of a rendering: values set where Marlin reads them, parameters created."""

    def __init__(self, steering):
        self.steering, self.document = steering, steering.document
        self.values = {}                   # <parameter> start -> (element, text)
        self.created = {}                  # parent start -> (parent, [markup])
        self.new_global = []               # markup of the parameters of a <global> to create

    def processor_parameter(self, processor, name, text, marlin_type=None):
        parameter = _defining(self.steering, processor, name, marlin_type in VECTOR_TYPES)
        if parameter is not None:
            self.values[parameter.start] = (parameter, text)
            return
        attributes = [("name", name)] + ([("type", marlin_type)] if marlin_type else [])
        parent = self.steering.processor(processor).element
        self.created.setdefault(parent.start, (parent, []))[1].append(markup("parameter", attributes, text))

    def global_parameter(self, name, text):
        parameter = _single(self.steering, self.steering.global_definitions(name), name)
        section = self.steering.global_section
        if parameter is not None:
            self.values[parameter.start] = (parameter, text)
        elif section is not None:
            self.created.setdefault(section.start, (section, []))[1].append(markup("parameter", [("name", name)], text))
        else:
            self.new_global.append(markup("parameter", [("name", name)], text))

    def render(self):
        document, edits = self.document, []
        for parameter, text in self.values.values():
            edits += document.replace_attribute(parameter, "value", text) if "value" in parameter.attributes \
                else document.replace_text(parameter, text)
        for parent, markups in self.created.values():
            edits += document.insert_elements(parent, markups)
        if self.new_global:
            unit = document.indent_unit(document.root).decode("latin-1")
            section = "<global>\n" + "".join(f"{unit}{m}\n" for m in self.new_global) + "</global>"
            after = self.steering.execute_section
            edits += document.insert_elements(document.root, [section], after=after)
        return document.apply(edits)


def _derived_parameters(settings, step):
    """Parameters implied by the settings (physics.md 2.6): (role, name, Marlin type, text).

    The steps run with software compensation off when disableSoftwareCompensation is set
    (MaxClusterEnergyToApplySoftComp = 0): the constants are calibrated without it, as the reference
    does; the final file keeps the user's setting. ECALLayers (thick ECal layers) belongs to the
    detector, so the final file has it too.
    """
    try:
        derived = []
        if step and settings["disableSoftwareCompensation"]:
            derived.append(("pandora", "MaxClusterEnergyToApplySoftComp", "float", "0"))
        thin, thick = settings["nEcalThinLayers"], settings["nEcalThickLayers"]
    except (KeyError, TypeError):
        raise SettingsError("settings lack disableSoftwareCompensation / nEcalThinLayers / nEcalThickLayers: "
                            "pass the settings returned by validate_settings") from None
    if thick > 0:
        derived.append(("digi", "ECALLayers", "IntVec", f"{thin} {thin + thick + 1}"))
    return derived


def _check_global_parameters(global_parameters):
    if not isinstance(global_parameters, dict):
        raise SteeringError(f"global parameters must be a dict name -> text, got {type(global_parameters).__name__}")
    for name, value in global_parameters.items():
        if not isinstance(name, str) or not name or isinstance(value, bool) or not isinstance(value, (str, int)):
            raise SteeringError(f"global parameter {name!r} = {value!r} is not allowed: "
                                "use a non-empty name and a str (or int) value")


def _render(template, constants, settings, step, global_parameters, processor_parameters):
    if not isinstance(constants, dict):
        raise SteeringError(f"constants must be a dict name -> value, got {type(constants).__name__}")
    _check_global_parameters(global_parameters)
    writer = _Writer(parse_steering(template))
    for name, value in constants.items():
        spec = get_spec(name)
        text = format_value(spec, value)
        writer.processor_parameter(role_processor_name(spec.role, settings), name, text, spec.marlin_type)
    for role, name, marlin_type, text in _derived_parameters(settings, step):
        writer.processor_parameter(role_processor_name(role, settings), name, text, marlin_type)
    for name, value in global_parameters.items():
        writer.global_parameter(name, str(value))
    for (processor, name), value in processor_parameters.items():
        writer.processor_parameter(processor, name, str(value))
    return writer.render()


def render_steering(template, constants, settings, global_parameters=None, processor_parameters=None):
    """The steering file of a step: ``template`` with the constants, the settings' step parameters
    (MaxClusterEnergyToApplySoftComp = 0 with disableSoftwareCompensation, ECALLayers with thick
    ECal layers) and the given <global> and processor parameters written in; every other byte kept.

    Each value is written where Marlin takes it from (the processor, or the <group> that sets it),
    in place (a ``value`` attribute stays an attribute); a missing parameter is added to the
    processor with the indentation of its siblings.

    :param template: the steering file (bytes, str or SteeringFile)
    :param dict constants: {constant name: value}
    :param dict settings: the calibration settings (processor names, derived parameters)
    :param dict global_parameters: {name: str or int} for <global>, e.g. SkipNEvents
    :param dict processor_parameters: {(processor name, parameter name): value}, e.g. the
        PfoAnalysis RootFile or DDMarlinPandora's PandoraSettingsXmlFile of a step
    :return: the steering file's bytes
    """
    return _render(template, constants, settings, True, global_parameters or {}, processor_parameters or {})


def render_final_steering(template, constants, settings):
    """The steering file a calibration hands back: ``template`` with the constants and, with thick
    ECal layers, ECALLayers written in; nothing of the steps (software compensation, inputs, files).

    :param template: the calibration's steering file (bytes, str or SteeringFile)
    :param dict constants: {constant name: value}
    :param dict settings: the calibration settings
    :return: the steering file's bytes
    """
    return _render(template, constants, settings, False, {}, {})
