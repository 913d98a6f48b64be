"""The TinyXML-faithful reader: what it accepts, what it refuses (with line and column), how it
decodes values, and edits that change only the bytes of the values they set."""
import pytest

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError, SteeringError
from ILCDIRAC.CalibrationSystem.Procedure.tinyxml_document import (
    MARLIN, PANDORA, Edit, markup, parse_document)


def parse(data, dialect=MARLIN, **options):
    return parse_document(data, "test file", dialect, SteeringError, **options)


LICENCE = b'''<?xml version="1.0" encoding="us-ascii"?>
<!--
-- Copyright (c) 2014-2024 Key4hep-Project.
--
  -->
<marlin>
  <processor name = "A" type='B' >
    <parameter name="X" type="float"> 1.5 </parameter>
    <parameter name="Y" value="2" />
    <parameter name="Z" type="StringVec">
      a   b
      c
    </parameter>
    <parameter name="E"></parameter>
  </processor>
</marlin>
'''


def test_accepts_what_tinyxml_accepts():
    document = parse(LICENCE)
    processor = document.root.find("processor")
    assert (processor.get("name"), processor.get("type")) == ("A", "B")
    values = {p.get("name"): (p.text, p.get("value")) for p in processor.elements("parameter")}
    assert values == {"X": ("1.5", None), "Y": (None, "2"), "Z": ("a b c", None), "E": (None, None)}
    assert not document.utf8     # us-ascii: TinyXML reads it byte by byte
    assert processor.find("parameter").attributes["name"].quote == b'"'


def test_unquoted_attributes_raw_ampersand_and_nested_declarations():
    document = parse(b'<marlin><if condition=A&&B><processor name=P/></if></marlin>')
    condition = document.root.find("if")
    assert condition.get("condition") == "A&&B"
    assert condition.find("processor").get("name") == "P"


@pytest.mark.parametrize("dialect, expected", [(MARLIN, "&amp; &lt; \u00e9 & x"), (PANDORA, "& < \u00e9 & x")])
def test_entities_decode_as_each_tinyxml_copy(dialect, expected):
    document = parse(b'<?xml version="1.0"?><a b="&amp; &lt; &#233; & x">&amp; &lt; &#xE9; & x</a>', dialect)
    assert document.utf8
    assert document.root.get("b") == expected and document.root.text == expected


def test_character_reference_in_a_single_byte_document_is_one_byte():
    document = parse(b'<?xml version="1.0" encoding="ISO-8859-1"?><a>&#233;\xe9</a>')
    assert document.root.text == "\u00e9\u00e9"


def test_cdata_comments_and_texts_are_children_in_order():
    document = parse(b"<a> one <!-- c -- d --> two <![CDATA[ <raw>  & ]]></a>")
    kinds = [(type(child).__name__, child.value) for child in document.root.children]
    assert kinds == [("Text", "one"), ("Comment", " c -- d "), ("Text", "two"), ("Text", " <raw>  & ")]


def test_end_tag_with_space_is_pandora_only():
    assert parse(b"<a>x</a >", PANDORA).root.text == "x"
    with pytest.raises(SteeringError, match=r"line 1, column 5\): expected </a>"):
        parse(b"<a>x</a >", MARLIN)


@pytest.mark.parametrize("data, message", [
    (b'<!DOCTYPE marlin [<!ENTITY x "y">]>\n<marlin/>', r"line 1, column 1\): has a <!DOCTYPE"),
    (b'<marlin>\n  <!ENTITY x "y">\n</marlin>', r"line 2, column 3\): has a <!ENTITY"),
    (b'<marlin xmlns:xi="http://www.w3.org/2001/XInclude">\n <xi:include href="a.xml"/></marlin>',
     r"line 1, column 1\): uses XInclude"),
    (b'<marlin>\n <x:include href="a.xml"/></marlin>', r"line 2, column 2\): uses XInclude"),
    (b'<marlin>\n<global>\n</marlin>', r"line 3, column 1\): expected </global>"),
    (b'<marlin><a b="1" b="2"/></marlin>', "attribute b twice"),
    (b'<marlin><a b/></marlin>', "has no '=' and value"),
    (b'<marlin><a b="1></marlin>', "is not closed"),
    (b'<marlin><!-- open </marlin>', "comment is not closed"),
    (b'<marlin>&#xZZ;</marlin>', "'&#' does not start a character reference"),
    (b'<?xml version="1.0"?><marlin>&#xD800;</marlin>', "is not a character"),
    (b'<marlin>< a/></marlin>', "does not start an element"),
    (b'<marlin><a/ ></marlin>', "not followed by '>'"),
    (b'', "has no root element"),
    (b'just text', "has no root element"),
])
def test_refusals_say_what_and_where(data, message):
    with pytest.raises(SteeringError, match=message):
        parse(data)


def test_crlf_line_numbers():
    with pytest.raises(SteeringError, match=r"line 3, column 1"):
        parse(b"<a>\r\n<b>\r\n</a>")


@pytest.mark.parametrize("data, message", [
    ("<marlin/>".encode("utf-16"), "encoded in UTF-16"),
    ("<marlin/>".encode("utf-16-be"), "NUL bytes"),
    ("<marlin/>".encode("utf-32"), "encoded in UTF-32"),
    (b"<marlin>\x00</marlin>", r"NUL bytes \(line 1\)"),
])
def test_wide_encodings_refused(data, message):
    with pytest.raises(SteeringError, match=message):
        parse(data)


def test_size_limit_and_type():
    with pytest.raises(SteeringError, match="more than the limit of 10"):
        parse(b"<marlin/>  ", max_bytes=10)
    assert parse(b"<marlin/> ", max_bytes=10).root.name == "marlin"
    with pytest.raises(SteeringError, match="must be bytes"):
        parse("<marlin/>")


def test_utf8_bom_and_trailing_text_are_kept_as_tinyxml_reads_them():
    document = parse(b"\xef\xbb\xbf<a>\xc3\xa9</a> trailing text TinyXML ignores")
    assert document.utf8 and document.root.text == "\u00e9"


# ---------------------------------------------------------------- edits


def test_replace_text_keeps_every_other_byte():
    document = parse(LICENCE)
    x, y, z, empty = document.root.find("processor").elements("parameter")
    edits = document.replace_text(x, "2.25") + document.replace_attribute(y, "value", "3") \
        + document.replace_text(z, "d e") + document.replace_text(empty, "f")
    assert document.apply(edits) == LICENCE.replace(b"> 1.5 <", b"> 2.25 <").replace(b'value="2"', b'value="3"') \
        .replace(b"a   b\n      c", b"d e").replace(b"></parameter>", b">f</parameter>")


def test_replace_text_of_empty_element_tag_and_split_text():
    document = parse(b'<a><b n="1" /><c>x <!-- k --> y</c></a>')
    b, c = document.root.elements()
    assert document.apply(document.replace_text(b, "v")) == b'<a><b n="1">v</b><c>x <!-- k --> y</c></a>'
    assert document.apply(document.replace_text(c, "z")) == b'<a><b n="1" /><c>z <!-- k --> </c></a>'
    cdata = parse(b"<a><![CDATA[ old ]]></a>")
    assert cdata.apply(cdata.replace_text(cdata.root, "new")) == b"<a><![CDATA[new]]></a>"


def test_unquoted_attribute_is_quoted_when_replaced():
    document = parse(b"<a b=1/>")
    assert document.apply(document.replace_attribute(document.root, "b", "2 3")) == b'<a b="2 3"/>'


@pytest.mark.parametrize("value", ["a<b", "a&b", "line\nbreak", 'say "x"'])
def test_values_needing_escapes_are_refused(value):
    document = parse(b'<a b="1">x</a>')
    with pytest.raises(SteeringError, match="cannot be written"):
        document.replace_attribute(document.root, "b", value)
    if '"' not in value:
        with pytest.raises(SteeringError, match="cannot be written"):
            document.replace_text(document.root, value)
    with pytest.raises(ProcedureError, match="cannot be written"):
        markup("p", [("name", value)])


def test_replace_text_refuses_elements_with_children():
    document = parse(b"<a><b/></a>")
    with pytest.raises(SteeringError, match="holds elements"):
        document.replace_text(document.root, "x")


def test_insert_elements_with_the_indentation_of_siblings():
    data = b"<m>\r\n  <p>\r\n    <q/> \r\n  </p>\r\n  <r/><s/>\r\n</m>\r\n"
    document = parse(data)
    p, r, _ = document.root.elements()
    new = markup("q", [("n", "2")], "v")
    assert document.apply(document.insert_elements(p, [new])) == data.replace(
        b"<q/> \r\n", b'<q/> \r\n    <q n="2">v</q>\r\n')
    assert document.apply(document.insert_elements(document.root, ["<t>\n  <u/>\n</t>"], after=r)) == data.replace(
        b"<r/>", b"<r/>\r\n  <t>\r\n    <u/>\r\n  </t>")


def test_insert_into_elements_without_children():
    document = parse(b"<m>\n  <p/>\n  <q>\n  </q>\n  <r></r>\n</m>")
    p, q, r = document.root.elements()
    assert document.apply(document.insert_elements(p, ["<x/>"])) == b"<m>\n  <p>\n    <x/>\n  </p>\n  <q>\n  </q>" \
        b"\n  <r></r>\n</m>"
    assert document.apply(document.insert_elements(q, ["<x/>"])) == b"<m>\n  <p/>\n  <q>\n    <x/>\n  </q>\n  " \
        b"<r></r>\n</m>"
    assert document.apply(document.insert_elements(r, ["", "<x/>"])) == b"<m>\n  <p/>\n  <q>\n  </q>\n  <r>\n\n" \
        b"    <x/>\n  </r>\n</m>"


def test_edits_apply_in_order_and_overlaps_are_refused():
    document = parse(b"<a>xy</a>")
    assert document.apply([Edit(3, 3, b"1"), Edit(3, 4, b"X"), Edit(3, 3, b"2")]) == b"<a>12Xy</a>"
    with pytest.raises(SteeringError, match="overlap"):
        document.apply([Edit(3, 5, b"1"), Edit(4, 4, b"2")])
