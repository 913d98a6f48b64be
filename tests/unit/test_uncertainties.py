"""The constants' uncertainties and the statistics-limited phases, as a result reads them from the history."""
import pytest

from ILCDIRAC.CalibrationSystem.Procedure.outcome import PhaseOutcome
from ILCDIRAC.CalibrationSystem.Procedure.uncertainties import (
    final_uncertainties,
    statistics_limitations,
    step_statistics,
)


def test_each_constant_takes_the_uncertainty_of_the_last_step_that_measured_it():
    history = [
        {"Metrics": {"uncertainties": {"CalibrECAL": [0.5, 1.0], "ECALEndcapCorrectionFactor": 0.02}}},
        {"Metrics": {"uncertainties": {"CalibrECAL": [0.2, 0.4]}}},
        {"Metrics": {"uncertainties": {}}},
        {"Metrics": None},  # a step not analysed yet
    ]
    assert final_uncertainties(history) == {"CalibrECAL": [0.2, 0.4], "ECALEndcapCorrectionFactor": 0.02}
    assert final_uncertainties([]) == {}


def test_the_limitations_are_those_the_last_analysed_step_carries():
    history = [
        {"Metrics": {"statisticsLimited": {"1/4": "old"}}},
        {"Metrics": {"statisticsLimited": {"1/4": "HadronicEnergy (stage 1): limited",
                                           "3/1": "HCalDigi (stage 3): x"}}},
        {"Metrics": None},
    ]
    assert statistics_limitations(history) == ["HadronicEnergy (stage 1): limited", "HCalDigi (stage 3): x"]
    assert statistics_limitations([{"Metrics": None}]) == []


def test_a_step_replaces_its_own_phases_note_and_keeps_the_others():
    previous = {"statisticsLimited": {"1/1": "HCalDigi (stage 1): a", "1/4": "HadronicEnergy (stage 1): b"}}
    resolved = PhaseOutcome({"ECalToHadGeVCalibrationEndCap": 1.0}, {}, True,
                            uncertainties={"ECalToHadGeVCalibrationEndCap": 0.01})
    assert step_statistics(previous, 1, "HadronicEnergy", 4, resolved, {}) == {
        "uncertainties": {"ECalToHadGeVCalibrationEndCap": 0.01},
        "statisticsLimited": {"1/1": "HCalDigi (stage 1): a"},
    }
    limited = PhaseOutcome({}, {}, True, statistics_note="statistics-limited: c")
    assert step_statistics({}, 3, "HadronicEnergy", 4, limited, {})["statisticsLimited"] == {
        "3/4": "HadronicEnergy (stage 3): statistics-limited: c"
    }


def test_the_uncertainties_so_far_are_carried_and_a_scale_adds_those_of_the_constants_under_it():
    """HCalToHad is measured on HCal energies that CalibrHCALBarrel scales: 3 % ⊕ 4 % = 5 %."""
    previous = {"uncertainties": {"CalibrHCALBarrel": 2.0, "CalibrECAL": [0.1, 0.2]}}
    constants = {"CalibrHCALBarrel": 50.0, "CalibrECAL": [37.5, 75.0]}
    outcome = PhaseOutcome({"HCalToHadGeVCalibration": 2.0, "ECalToEMGeVCalibration": 1.0}, {}, True,
                           uncertainties={"HCalToHadGeVCalibration": 0.06, "ECalToEMGeVCalibration": 0.01})
    uncertainties = step_statistics(previous, 1, "HadronicEnergy", 4, outcome, constants)["uncertainties"]
    assert uncertainties["HCalToHadGeVCalibration"] == pytest.approx(0.1)
    assert uncertainties["ECalToEMGeVCalibration"] == 0.01  # same photons as CalibrECAL: nothing added
    assert uncertainties["CalibrECAL"] == [0.1, 0.2] and uncertainties["CalibrHCALBarrel"] == 2.0
