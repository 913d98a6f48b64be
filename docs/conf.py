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

extensions = ["sphinx.ext.autodoc", "calibration_docs"]

exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
# The code is the reference: show the docstrings of classes and of their __init__, in source order
autoclass_content = "both"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}

# Docstrings write |cos θ| for the absolute value of cos θ; render it as written.
rst_prolog = r".. |cos θ| replace:: \|cos θ\|"
