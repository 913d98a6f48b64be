"""Helpers shared by the CalibrationSystem components."""
