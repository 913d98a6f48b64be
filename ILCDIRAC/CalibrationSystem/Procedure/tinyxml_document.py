"""A lenient, byte-preserving reader of the XML files TinyXML reads (Marlin steering files,
PandoraSettings files), and an editor that changes only the bytes of the values it sets.

Why: Marlin and Pandora parse their XML with TinyXML, which accepts what a strict XML parser
refuses (``--`` inside comments, as in the key4hep licence headers; a raw ``&`` in a processor
condition; unquoted attribute values), and a physicist diffs the files the calibration writes
against their own: only the values it sets may differ. So this reader follows TinyXML's grammar,
records the byte span of every element, attribute value and text, and a document is edited by
replacing those spans; every other byte (declaration, comments, spacing, ``" />"``, line endings)
stays as it was.

What TinyXML would read differently from what the file seems to say is refused, with line and
column: DOCTYPE and entity declarations (TinyXML skips them and expands no entity), XInclude
(TinyXML does not expand it), UTF-16/UTF-32 and NUL bytes (TinyXML reads single bytes or
UTF-8). Values are decoded as TinyXML decodes them: runs of whitespace in a text condensed to
one space and the text trimmed, numeric character references, and the five predefined entities
except in Marlin's copy of TinyXML (dialect MARLIN), which reads every ``&`` literally.
"""
import re
from typing import NamedTuple

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError

DEFAULT_MAX_BYTES = 5 * 1024 * 1024


class Dialect(NamedTuple):
    """Where the TinyXML copies of Marlin and Pandora differ."""

    name: str
    named_entities: bool  # &amp; &lt; &gt; &quot; &apos; decoded
    end_tag_space: bool  # '</name >' accepted


#: Marlin's TinyXML 2.5 (source/tinyxml): a local change makes every '&' a literal '&' (for
#: conditions such as 'A && B'), and an end tag must be exactly '</name>'.
MARLIN = Dialect("Marlin", named_entities=False, end_tag_space=False)
#: PandoraSDK's TinyXML 2.6 (src/Xml): the predefined entities are decoded, '</name >' is allowed.
PANDORA = Dialect("Pandora", named_entities=True, end_tag_space=True)

XINCLUDE_NAMESPACES = ("http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude")

_SPACE = b" \t\n\r\v\f"  # C isspace(): TinyXML's white space
_SPACES = re.compile(rb"[ \t\n\r\v\f]+")
_NAME = re.compile(rb"[A-Za-z_\x7f-\xff][A-Za-z0-9_\-.:\x7f-\xff]*")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_REFERENCE = re.compile(rb"&#x([0-9A-Fa-f]+);|&#([0-9]+);|&(amp|lt|gt|quot|apos);|&#")
_PREDEFINED = {b"amp": b"&", b"lt": b"<", b"gt": b">", b"quot": b'"', b"apos": b"'"}
_ENCODING = re.compile(rb"""encoding\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s?>]*))""", re.IGNORECASE)
_BOMS = {b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16", b"\x00\x00\xfe\xff": "UTF-32"}
_UTF8_BOM = b"\xef\xbb\xbf"
_FORBIDDEN_IN_VALUE = re.compile(r"[<&\x00-\x1f\x7f]")


class Attribute(NamedTuple):
    """An attribute: its decoded value and the byte span of the value (inside the quotes)."""

    name: str
    value: str
    span: tuple
    quote: bytes  # b'"', b"'", or b'' for an unquoted value


class Text(NamedTuple):
    """Character data: its value as TinyXML reads it and the span of its bytes, without the white
    space around it (for CDATA: the bytes between the markers)."""

    value: str
    span: tuple
    cdata: bool


class Comment(NamedTuple):
    """A comment; ``value`` is its text (Marlin reads it where it takes a first child's value)."""

    value: str
    span: tuple


class Element:
    """An element with its attributes, its children (Element, Text, Comment) and byte offsets:
    ``start`` (its '<'), ``tag_end`` (after its start tag), ``content_end`` (its end tag's '<';
    for an empty-element tag ``<x/>`` the same as ``tag_end``) and ``end``."""

    __slots__ = ("name", "attributes", "children", "parent", "start", "attributes_end", "tag_end",
                 "content_end", "end", "self_closing")

    def __init__(self, name, start, parent):
        """
        :param str name: tag name
        :param int start: offset of its '<'
        :param Element parent: the enclosing element (None at document level)
        """
        self.name, self.start, self.parent = name, start, parent
        self.attributes, self.children = {}, []
        self.attributes_end = self.tag_end = self.content_end = self.end = None
        self.self_closing = False

    def get(self, name, default=None):
        """The value of attribute ``name``.

        :param str name: attribute name
        :param default: returned when the attribute is absent
        :return: str, or ``default``
        """
        attribute = self.attributes.get(name)
        return default if attribute is None else attribute.value

    def elements(self, name=None):
        """The child elements, in document order.

        :param str name: only those with this tag name (None: all)
        :return: list of Element
        """
        return [c for c in self.children if isinstance(c, Element) and (name is None or c.name == name)]

    def find(self, name):
        """The first child element named ``name``, as TinyXML's FirstChild(name).

        :param str name: tag name
        :return: Element or None
        """
        return next((c for c in self.children if isinstance(c, Element) and c.name == name), None)

    def iter(self, name=None):
        """This element and all elements inside it, in document order.

        :param str name: only those with this tag name (None: all)
        :return: generator of Element
        """
        stack = [self]
        while stack:
            element = stack.pop()
            if name is None or element.name == name:
                yield element
            stack.extend(reversed(element.elements()))

    @property
    def text(self):
        """TinyXML's GetText(): the value of the first child if it is text, else None."""
        first = self.children[0] if self.children else None
        return first.value if isinstance(first, Text) else None


class Edit(NamedTuple):
    """Replace the bytes [start, end) of a document by ``text`` (start == end: insert)."""

    start: int
    end: int
    text: bytes


class XmlDocument:
    """A parsed document: its bytes, its root element and how to edit it (see parse_document)."""

    def __init__(self, data, root, dialect, what, utf8, error_type):
        """
        :param bytes data: the document's bytes
        :param Element root: the first element at document level
        :param Dialect dialect: the TinyXML copy the document is read as
        :param str what: what the document is, for messages (e.g. 'steering file')
        :param bool utf8: whether TinyXML reads it as UTF-8 (else byte by byte)
        :param error_type: the ProcedureError subclass raised for a problem in the document
        """
        self.data, self.root, self.dialect, self.what = data, root, dialect, what
        self.utf8, self.error_type = utf8, error_type
        #: The document-level elements and comments in order (a Pandora likelihood file has no
        #: single root: TinyXML reads a sequence of elements), and the offset where TinyXML stops
        #: reading (the first character at document level that is not markup, or the end).
        self.nodes, self.end = [], None
        self.line_ending = b"\r\n" if b"\r\n" in data else b"\n"

    def where(self, offset):
        """'line L, column C' (1-based, columns in bytes) of a byte offset, for messages.

        :param int offset: position in the document's bytes
        :return: str
        """
        head = self.data[:offset]
        breaks = list(_LINE_BREAK.finditer(head))
        line_start = breaks[-1].end() if breaks else 0
        return f"line {len(breaks) + 1}, column {offset - line_start + 1}"

    def error(self, message, offset=None):
        """The error to raise for a problem of this document at ``offset``.

        :param str message: what is wrong and what to do
        :param int offset: where (None: nowhere in particular)
        :return: an instance of the document's error type
        """
        place = "" if offset is None else f" ({self.where(offset)})"
        return self.error_type(f"{self.what}{place}: {message}")

    def encode(self, value, quote=None, cdata=False):
        """The bytes that make TinyXML read ``value`` back, for an attribute value (``quote``) or a text.

        Characters that would need escaping (``<``, ``&``, control characters, the quote) are
        refused rather than escaped, as the TinyXML copies decode ``&`` differently.

        :param str value: the value
        :param bytes quote: the attribute's quote (None: element text)
        :param bool cdata: the text goes inside a CDATA section (then only ``]]>`` is refused)
        :return: bytes in the document's encoding
        """
        if not isinstance(value, str):
            raise self.error(f"a value to write must be a string, not {type(value).__name__}")
        bad = ("]]>" in value) if cdata else (_FORBIDDEN_IN_VALUE.search(value) or (quote and quote.decode() in value))
        if bad:
            raise self.error(f"the value {value[:80]!r} cannot be written as XML data: it holds "
                             f"{'a CDATA end' if cdata else 'markup, a quote or control characters'}")
        return self.encode_markup(value)

    def indentation(self, element):
        """The white space before ``element`` on its line (b'' if something else precedes it).

        :param Element element: an element of this document
        :return: bytes
        """
        line_start = max(self.data.rfind(b"\n", 0, element.start), self.data.rfind(b"\r", 0, element.start)) + 1
        prefix = self.data[line_start:element.start]
        return prefix if not prefix.strip(_SPACE) else b""

    def indent_unit(self, element):
        """How much deeper than ``element`` its children are indented (two spaces if it has none).

        :param Element element: an element of this document
        :return: bytes
        """
        children = element.elements()
        outer, inner = self.indentation(element), self.indentation(children[0]) if children else b""
        return inner[len(outer):] if children and inner.startswith(outer) and len(inner) > len(outer) else b"  "

    def replace_attribute(self, element, name, value):
        """Set attribute ``name`` (which must exist) of ``element`` to ``value``, in place.

        :param Element element: an element of this document
        :param str name: the attribute
        :param str value: its new value
        :return: list of Edit
        """
        attribute = element.attributes[name]
        text = self.encode(value, quote=attribute.quote or b'"')
        return [Edit(*attribute.span, text if attribute.quote else b'"' + text + b'"')]

    def replace_text(self, element, value):
        """Make ``element``'s text ``value``: its first text replaced where it stands (the white
        space around it is kept), further texts removed; an element without text gets it.

        :param Element element: an element of this document without child elements
        :param str value: the new text
        :return: list of Edit
        """
        if element.elements():
            raise self.error(f"<{element.name}> holds elements, so its text cannot be replaced", element.start)
        texts = [child for child in element.children if isinstance(child, Text)]
        if texts:
            first = texts[0]
            edits = [Edit(*first.span, self.encode(value, cdata=first.cdata))]
            return edits + [Edit(*text.span, b"") for text in texts[1:]]
        encoded = self.encode(value)
        if element.self_closing:
            closing = b">" + encoded + b"</" + self.encode_markup(element.name) + b">"
            return [Edit(element.attributes_end, element.tag_end, closing)]
        return [Edit(element.tag_end, element.tag_end, encoded)]

    def insert_elements(self, parent, markups, after=None):
        """Insert new child elements into ``parent``, each on a line of its own with the
        indentation of its siblings, after the child element ``after`` (None: after the last one).

        :param Element parent: the element that receives them
        :param list markups: the new elements' XML (str, e.g. from ``markup``); a multi-line one
            keeps the relative indentation of its lines; an empty line stays empty
        :param Element after: a child element of ``parent``, or None
        :return: list of Edit (one)
        """
        siblings = parent.elements()
        after = after if after is not None else (siblings[-1] if siblings else None)
        if after is not None:
            indent = self.indentation(after)
            block = self._block(markups, indent)
            line_end = _LINE_BREAK.search(self.data, after.end)
            if line_end is not None and not self.data[after.end:line_end.start()].strip(_SPACE):
                return [Edit(line_end.end(), line_end.end(), block)]   # the next line, after the whole line
            return [Edit(after.end, after.end, self.line_ending + block.rstrip(b"\r\n"))]
        outer = self.indentation(parent)
        indent = outer + self.indent_unit(parent)
        block = self._block(markups, indent)
        if parent.self_closing:
            text = b">" + self.line_ending + block + outer + b"</" + self.encode_markup(parent.name) + b">"
            return [Edit(parent.attributes_end, parent.tag_end, text)]
        if _LINE_BREAK.search(self.data, parent.tag_end, parent.content_end):   # the end tag has a line of its own
            return [Edit(parent.tag_end, parent.tag_end, self.line_ending + block.rstrip(b"\r\n"))]
        return [Edit(parent.tag_end, parent.tag_end, self.line_ending + block + outer)]

    def _block(self, markups, indent):
        lines = [line for markup in markups for line in markup.split("\n")]
        return b"".join((indent + self.encode_markup(line) if line else b"") + self.line_ending for line in lines)

    def encode_markup(self, markup):
        """Markup (already escaped, e.g. from ``markup``) in the document's encoding.

        :param str markup: XML text
        :return: bytes
        """
        try:
            return markup.encode("utf-8", "surrogateescape") if self.utf8 else markup.encode("latin-1")
        except UnicodeEncodeError:
            raise self.error(f"{markup[:80]!r} cannot be written in the document's single-byte encoding") from None

    def apply(self, edits):
        """The document's bytes with ``edits`` made; an insertion at a position comes before a
        replacement starting there, insertions at one position keep their order.

        :param list edits: Edit objects on this document, not overlapping
        :return: bytes
        """
        ordered = sorted(enumerate(edits), key=lambda item: (item[1].start, item[1].end > item[1].start, item[0]))
        pieces, position = [], 0
        for _, edit in ordered:
            if edit.start < position:
                raise self.error(f"two edits overlap at byte {edit.start}; this is a bug of the caller")
            pieces += [self.data[position:edit.start], edit.text]
            position = edit.end
        pieces.append(self.data[position:])
        return b"".join(pieces)


def markup(name, attributes, text=None):
    """One element as XML text: ``<name a="v" ...>text</name>``, or ``<name a="v" .../>`` without text.

    :param str name: tag name
    :param list attributes: (name, value) pairs, in order
    :param str text: the element's text, or None
    :return: str; ProcedureError for a value that needs escaping
    """
    for value in [v for _, v in attributes] + ([text] if text is not None else []):
        if not isinstance(value, str) or _FORBIDDEN_IN_VALUE.search(value) or '"' in value:
            raise ProcedureError(f"{value!r} cannot be written into <{name}>: it holds markup, a quote or "
                                 "control characters")
    start = "".join(f' {key}="{value}"' for key, value in attributes)
    return f"<{name}{start}/>" if text is None else f"<{name}{start}>{text}</{name}>"


def parse_document(data, what, dialect, error_type=ProcedureError, max_bytes=DEFAULT_MAX_BYTES):
    """Parse ``data`` as TinyXML does; refuse what TinyXML would read differently than it looks.

    :param bytes data: the file's bytes
    :param str what: what the file is, starting each message (e.g. 'steering file')
    :param Dialect dialect: MARLIN or PANDORA
    :param error_type: the ProcedureError subclass to raise
    :param int max_bytes: size limit
    :return: XmlDocument; ``error_type`` saying what is wrong and where
    """
    if not isinstance(data, (bytes, bytearray)):
        raise error_type(f"{what} content must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise error_type(f"{what} is {len(data)} bytes, more than the limit of {max_bytes}: check that the "
                         "right file was given")
    for bom, encoding in sorted(_BOMS.items(), key=lambda item: -len(item[0])):
        if data.startswith(bom) or (encoding == "UTF-32" and data.startswith(b"\xff\xfe\x00\x00")):
            raise error_type(f"{what} is encoded in {encoding}, which TinyXML (used by Marlin and Pandora) "
                             "cannot read: save it as UTF-8")
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(0)) + 1
        raise error_type(f"{what} holds NUL bytes (line {line}): it is not a "
                         "UTF-8 or single-byte text file (UTF-16/UTF-32?), which TinyXML cannot read: save it as "
                         "UTF-8")
    return _Parser(data, what, dialect, error_type).parse()


class _Parser:
    """TinyXML's recursive descent (TiXmlDocument/TiXmlElement::Parse), iterative here."""

    def __init__(self, data, what, dialect, error_type):
        self.data, self.dialect = data, dialect
        self.document = XmlDocument(data, None, dialect, what, data.startswith(_UTF8_BOM), error_type)
        self.encoding_known = self.document.utf8

    def fail(self, message, offset):
        raise self.document.error(message + " (TinyXML cannot read it either)", offset)

    def skip_space(self, position):
        data = self.data
        while position < len(data) and data[position] in _SPACE:
            position += 1
        return position

    def parse(self):
        data, position, root = self.data, len(_UTF8_BOM) if self.document.utf8 else 0, None
        while True:
            position = self.skip_space(position)
            if position >= len(data) or data[position] != ord("<"):
                break   # TinyXML ends the document at the first character that is not markup
            kind, position, node = self.markup(position, None)
            if node is not None:
                self.document.nodes.append(node)
            if kind == "element" and root is None:
                root = node
        if root is None:
            raise self.document.error("has no root element: it is not an XML file TinyXML can read")
        self.document.root, self.document.end = root, position
        return self.document

    def markup(self, position, parent):
        """Parse the markup at ``position`` ('<...'); (kind, position after it, node or None)."""
        data = self.data
        if data.startswith(b"<!--", position):
            end = data.find(b"-->", position + 4)
            if end < 0:
                self.fail("comment is not closed by '-->'", position)
            node = Comment(self.to_str(data[position + 4:end]), (position, end + 3))
            return "comment", end + 3, node
        if data.startswith(b"<![CDATA[", position):
            end = data.find(b"]]>", position + 9)
            if end < 0:
                self.fail("CDATA section is not closed by ']]>'", position)
            node = Text(self.to_str(data[position + 9:end]), (position + 9, end), True)
            return "text", end + 3, node
        if data.startswith(b"<!", position):
            keyword = re.match(rb"<!\s*([A-Za-z]*)", data[position:position + 40]).group(1).decode() or "<!"
            raise self.document.error(
                f"has a <!{keyword} ...> declaration, which is refused: TinyXML skips document type and entity "
                "declarations and expands no entity, so the file would not mean what it says; remove it and write "
                "the values out", position)
        if data[position + 1:position + 5].lower() == b"?xml" and (
                position + 5 >= len(data) or data[position + 5] in _SPACE + b"?>"):
            end = data.find(b">", position)
            if end < 0:
                self.fail("XML declaration is not closed by '>'", position)
            if not self.encoding_known and parent is None:   # TinyXML: the document's first declaration
                found = _ENCODING.search(data, position, end)
                encoding = b"" if found is None else next(g for g in found.groups() if g is not None)
                self.document.utf8 = encoding == b"" or encoding.lower().startswith((b"utf-8", b"utf8"))
                self.encoding_known = True
            return "declaration", end + 1, None
        if data.startswith(b"<?", position):
            end = data.find(b">", position)
            if end < 0:
                self.fail("processing instruction is not closed by '>'", position)
            return "instruction", end + 1, None
        if _NAME.match(data, position + 1) is None:   # TinyXML: a name right after '<', else unknown markup
            self.fail("'<' does not start an element, a comment or a declaration", position)
        return "element", *self.element(position, parent)

    def element(self, position, parent):
        """Parse the element starting at ``position`` and everything inside it."""
        data = self.data
        stack = []
        element = self.start_tag(position, parent)
        position = element.tag_end
        while True:
            if not element.self_closing:
                position = self.skip_space(position)
                if position >= len(data):
                    self.fail(f"<{element.name}> is not closed", element.start)
                if data[position] != ord("<"):
                    position = self.text(element, position)
                    continue
                if _NAME.match(data, position + 1) is not None:
                    stack.append(element)
                    element = self.start_tag(position, element)
                    position = element.tag_end
                    continue
                if not data.startswith(b"</", position):
                    _, position, node = self.markup(position, element)
                    if node is not None:
                        element.children.append(node)
                    continue
                element.content_end = position
                element.end = self.end_tag(element, position)
            node, element = element, (stack.pop() if stack else None)   # the element is complete
            if element is None:
                return node.end, node
            element.children.append(node)
            position = node.end

    def start_tag(self, position, parent):
        data = self.data
        name = _NAME.match(data, position + 1)
        element = Element(self.to_str(name.group()), position, parent)
        position = element.attributes_end = name.end()
        while True:
            at = self.skip_space(position)
            if at >= len(data):
                self.fail(f"start tag of <{element.name}> is not closed", element.start)
            if data[at] == ord("/"):
                if not data.startswith(b"/>", at):
                    self.fail(f"'/' in the start tag of <{element.name}> is not followed by '>'", at)
                element.self_closing, element.tag_end = True, at + 2
                element.content_end = element.end = at + 2
                break
            if data[at] == ord(">"):
                element.tag_end = at + 1
                break
            position = element.attributes_end = self.attribute(element, at)
        self.check_xinclude(element)
        return element

    def attribute(self, element, position):
        data = self.data
        name = _NAME.match(data, position)
        if name is None:
            self.fail(f"cannot read an attribute name in the start tag of <{element.name}>", position)
        at = self.skip_space(name.end())
        if at >= len(data) or data[at] != ord("="):
            self.fail(f"attribute {name.group().decode('latin-1')} of <{element.name}> has no '=' and value", at)
        at = self.skip_space(at + 1)
        if at >= len(data):
            self.fail(f"attribute {name.group().decode('latin-1')} of <{element.name}> has no value", at)
        quote = data[at:at + 1]
        if quote in (b'"', b"'"):
            end = data.find(quote, at + 1)
            if end < 0:
                self.fail(f"the value of attribute {name.group().decode('latin-1')} is not closed", at)
            span, after = (at + 1, end), end + 1
        else:
            end = at
            while end < len(data) and data[end] not in _SPACE + b"/>":
                if data[end] in b"'\"":
                    self.fail(f"quote inside the unquoted value of attribute {name.group().decode('latin-1')}", end)
                end += 1
            quote, span, after = b"", (at, end), end
        attribute_name = self.to_str(name.group())
        if attribute_name in element.attributes:
            self.fail(f"<{element.name}> has attribute {attribute_name} twice", position)
        value = self.decode(data[span[0]:span[1]], span[0])
        element.attributes[attribute_name] = Attribute(attribute_name, value, span, quote)
        return after

    def end_tag(self, element, position):
        data, name = self.data, element.name.encode("utf-8", "surrogateescape")
        expected = b"</" + name
        at = position + len(expected)
        if data.startswith(expected, position):
            if self.dialect.end_tag_space:
                at = self.skip_space(at)
            if data.startswith(b">", at):
                return at + 1
        found = data[position:data.find(b">", position) + 1 or position + 40][:60].decode("latin-1")
        self.fail(f"expected </{element.name}> to close <{element.name}> of {self.document.where(element.start)}, "
                  f"found {found!r}", position)

    def text(self, element, position):
        """Character data up to the next '<', trimmed and condensed as TinyXML does."""
        data = self.data
        end = data.find(b"<", position)
        if end < 0:
            self.fail(f"<{element.name}> is not closed", element.start)
        core_end = end
        while core_end > position and data[core_end - 1] in _SPACE:
            core_end -= 1
        pieces = _SPACES.split(data[position:core_end])
        value = b" ".join(self.decode_bytes(piece, position) for piece in pieces)
        if value.strip(_SPACE):
            element.children.append(Text(self.to_str(value), (position, core_end), False))
        return end

    def to_str(self, raw):
        return raw.decode("utf-8", "surrogateescape") if self.document.utf8 else raw.decode("latin-1")

    def decode(self, raw, offset):
        return self.to_str(self.decode_bytes(raw, offset))

    def decode_bytes(self, raw, offset):
        """Character references (and, except for Marlin, predefined entities) as TinyXML reads them."""
        if b"&" not in raw:
            return raw

        def replace(match):
            hexadecimal, decimal, named = match.groups()
            if named is not None:
                return _PREDEFINED[named] if self.dialect.named_entities else match.group()
            if hexadecimal is None and decimal is None:
                self.fail("'&#' does not start a character reference such as &#38;", offset + match.start())
            code = int(hexadecimal, 16) if hexadecimal is not None else int(decimal)
            if not self.document.utf8:
                return bytes([code & 0xFF])
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF or code == 0:
                self.fail(f"character reference {match.group().decode()} is not a character", offset + match.start())
            return chr(code).encode("utf-8")

        return _REFERENCE.sub(replace, raw)

    def check_xinclude(self, element):
        namespaces = [a.value for key, a in element.attributes.items() if key == "xmlns" or key.startswith("xmlns:")]
        if element.name.rpartition(":")[2] == "include" and ":" in element.name \
                or any(value in XINCLUDE_NAMESPACES for value in namespaces):
            raise self.document.error(
                f"uses XInclude (<{element.name}>), which is refused: TinyXML does not expand XInclude, so "
                "Marlin and Pandora would not see the included content; write it into the file", element.start)
