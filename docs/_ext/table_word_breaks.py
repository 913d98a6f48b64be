"""Lets the long code names in table cells (``fractionOfFinishedJobsNeededToStartNextStep``,
``ECalToHadGeVCalibrationBarrel``, dotted module paths) wrap between the words they are made of.

A name without a break opportunity is as wide as its longest line must be: one such name made the
settings table 1550 px wide. A ``<wbr>`` (HTML only) before each inner word lets the browser wrap
there when the column needs it, and copying the name still copies the name.
"""
import re

from docutils import nodes

#: Before a capital that starts a word (fractionOf|Finished, ECAL|Endcap), after a dot, an
#: underscore or a slash followed by a letter (Procedure.|settings, ecal_|barrel).
_WORD_START = re.compile(r"(?<=[A-Za-z0-9])(?=[A-Z][a-z])|(?<=[._/])(?=[A-Za-z])")
#: Shorter pieces stay with the next one: HCal, not H|Cal; ToApply, not To|Apply.
_SHORTEST_PIECE = 3


def pieces(name):
    """The parts of a name between which it may wrap.

    :param str name: a code name
    :return: the pieces, which joined give ``name``
    """
    parts, start = [], 0
    for match in _WORD_START.finditer(name):
        if match.start() - start >= _SHORTEST_PIECE:
            parts.append(name[start:match.start()])
            start = match.start()
    parts.append(name[start:])
    return parts


def _break_literals(app, doctree, docname):
    for table in doctree.findall(nodes.table):
        for text in list(table.findall(nodes.Text)):
            if not isinstance(text.parent, nodes.literal):
                continue
            parts = pieces(str(text))
            if len(parts) == 1:
                continue
            replacement = [nodes.Text(parts[0])]
            for part in parts[1:]:
                replacement += [nodes.raw("", "<wbr>", format="html"), nodes.Text(part)]
            text.parent.replace(text, replacement)


def setup(app):
    app.connect("doctree-resolved", _break_literals)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
