"""What the CalibrationService and the CalibrationAgent share beyond the DB: step advancement."""
