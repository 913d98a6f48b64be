"""Sphinx configuration of the ILCDIRAC CalibrationSystem documentation.

Built with ``make docs`` (warnings are errors). The tables of settings, presets, phases,
samples and constants, and the help of every command, are generated from the code by
``_ext/calibration_docs.py``, so that the documentation cannot drift from it.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

project = "ILCDIRAC CalibrationSystem"
author = "ILCDIRAC CalibrationSystem developers"
copyright = "the ILCDIRAC CalibrationSystem developers"

extensions = ["sphinx.ext.autodoc", "calibration_docs", "table_word_breaks"]

exclude_patterns = ["_build"]
html_theme = "alabaster"
# Alabaster's fixed 940 px page is widened by _static/custom.css (which the theme links itself);
# the body may then take the whole column, and the sidebar holds "CalibrationSystem" on a line
# even in a wide serif font. tests/unit/test_docs.py checks every page at 1280 px.
html_theme_options = {"body_max_width": "none", "sidebar_width": "240px"}
html_static_path = ["_static"]
# The code is the reference: show the docstrings of classes and of their __init__, in source order
autoclass_content = "both"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
# Signatures name the object without its module (the page's heading says it), and put one
# parameter on a line when they are too long for a line of the column.
add_module_names = False
python_maximum_signature_line_length = 90

# Docstrings write |cos θ| for the absolute value of cos θ; render it as written.
rst_prolog = r".. |cos θ| replace:: \|cos θ\|"
