"""The constants of a result next to a reference: another calibration's or a steering file's.

One row per value (a FloatVec constant such as CalibrECAL gives one row per element), with the
relative difference and, when the results carry statistical uncertainties, the difference in
units of their combined uncertainty, so that a physicist sees whether it is statistics.
"""
import math

from ILCDIRAC.CalibrationSystem.Client.ScriptUtilities import formatConstant, formatTable

HEADERS = ("Constant", "This", "Reference", "Difference")
PULL_HEADER = "Difference/uncertainty"


def comparisonRows(constants, reference, uncertainties=None, referenceUncertainties=None):
    """The rows of the comparison table.

    :param dict constants: {name: float or list of floats} of this result
    :param dict reference: {name: float or list of floats} to compare with
    :param dict uncertainties: {name: uncertainty, same shape as the value} of this result, if any
    :param dict referenceUncertainties: the same for the reference (a steering file has none)
    :return: list of (name, this, reference, difference, pull) strings; pull is '-' where there is no
        uncertainty
    """
    uncertainties, referenceUncertainties = uncertainties or {}, referenceUncertainties or {}
    rows = []
    for name in sorted(set(constants) | set(reference)):
        values = _elements(constants.get(name))
        references = _elements(reference.get(name))
        errors = _elements(uncertainties.get(name))
        referenceErrors = _elements(referenceUncertainties.get(name))
        vector = max(len(values), len(references)) > 1
        for index in range(max(len(values), len(references))):
            label = f"{name}[{index}]" if vector else name
            value, other = _at(values, index), _at(references, index)
            rows.append((label, _text(value), _text(other), _difference(value, other),
                         _pull(value, other, _at(errors, index), _at(referenceErrors, index))))
    return rows


def comparisonTable(constants, reference, uncertainties=None, referenceUncertainties=None):
    """The comparison as a plain-text table; the uncertainty column only if there are uncertainties.

    :param dict constants: {name: value} of this result
    :param dict reference: {name: value} to compare with
    :param dict uncertainties: {name: uncertainty} of this result, if any
    :param dict referenceUncertainties: {name: uncertainty} of the reference, if any
    :return: str
    """
    rows = comparisonRows(constants, reference, uncertainties, referenceUncertainties)
    if uncertainties or referenceUncertainties:
        return formatTable((*HEADERS, PULL_HEADER), rows)
    return formatTable(HEADERS, [row[:-1] for row in rows])


def _elements(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _at(values, index):
    return values[index] if index < len(values) else None


def _text(value):
    return "-" if value is None else formatConstant(float(value))


def _difference(value, reference):
    """Relative difference in percent; the absolute one when the reference is 0."""
    if value is None or reference is None:
        return "-"
    if reference == 0:
        return formatConstant(float(value - reference))
    return f"{(value / reference - 1) * 100:+.2f}%"


def _pull(value, reference, error, referenceError):
    combined = math.hypot(error or 0.0, referenceError or 0.0)
    if value is None or reference is None or not combined:
        return "-"
    return f"{(value - reference) / combined:+.1f}"
