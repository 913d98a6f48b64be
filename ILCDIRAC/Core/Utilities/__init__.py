"""Utilities of the ILCDIRAC extension that DIRAC looks for by name (``<extension>.Core.Utilities``)."""
