"""Registry of the calibration phases (physics.md §1.1).

PHASE_TABLE names every phase and says whether it iterates; PHASES holds, for each, the samples
a worker reconstructs, the constants it reads and changes, the summary a worker sends, and the
collector and analysis functions of its module. Adding a phase means writing its module and
adding one entry to each.
"""
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure import (
    ecal_digitisation,
    em_scale,
    hadronic_scale,
    hcal_digitisation,
    mip_calibration,
    photon_training,
)
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError


class PhaseSpec(NamedTuple):
    """What the sequence must know of every phase."""

    name: str
    iterative: bool  # False: the phase runs one step and always moves on (§1.4)


PHASE_TABLE = {
    0: PhaseSpec("ECalDigi", True),
    1: PhaseSpec("HCalDigi", True),
    2: PhaseSpec("MuonAndHCalOtherDigi", False),
    3: PhaseSpec("ElectroMagEnergy", True),
    4: PhaseSpec("HadronicEnergy", True),
    5: PhaseSpec("PhotonTraining", False),
}


@dataclass(frozen=True)
class Phase:
    """A phase: how workers summarise their events and how the service analyses them.

    ``samples``: the samples a worker reconstructs for this phase. ``collect(outputs, settings)``
    takes {sample: worker_output.ReconstructionOutput} and returns the summary arrays (exactly
    ``summary_fields``); ``analyse(summaries, constants, settings)`` returns an
    outcome.PhaseOutcome. A phase with a ``previous_phase`` reads what the last step of that
    phase measured: its analyse also takes ``previous``, that step's advance.StepRecord, or None
    when the step before was not one of that phase (the calibration started here).
    """

    id: int
    name: str
    samples: tuple[str, ...]
    iterative: bool
    constants: tuple[str, ...]
    summary_fields: dict[str, np.dtype]
    collect: Callable
    analyse: Callable
    previous_phase: int | None = None


def _phase(phase_id, module, previous_phase=None):
    """The Phase of a module that defines SAMPLES, CONSTANTS, SUMMARY_FIELDS, collect and analyse."""
    spec = PHASE_TABLE[phase_id]
    return Phase(
        phase_id,
        spec.name,
        module.SAMPLES,
        spec.iterative,
        module.CONSTANTS,
        module.SUMMARY_FIELDS,
        module.collect,
        module.analyse,
        previous_phase,
    )


# An iterative phase reads its own step before: the response slope of its uncertainties.
PHASES = {
    0: _phase(0, ecal_digitisation, previous_phase=0),
    1: _phase(1, hcal_digitisation, previous_phase=1),
    2: _phase(2, mip_calibration, previous_phase=1),  # CalibrHCALOther uses the last HCalDigi endcap peak
    3: _phase(3, em_scale, previous_phase=3),
    4: _phase(4, hadronic_scale, previous_phase=4),
    5: _phase(5, photon_training),
}


def phase_label(phase_id):
    """'phase N (Name)' for messages.

    :param int phase_id: a phase of PHASE_TABLE
    :return: str
    """
    return f"phase {phase_id} ({PHASE_TABLE[phase_id].name})"


def get_phase(phase_id):
    """The phase ``phase_id``; ProcedureError if there is no such phase.

    :param int phase_id: 0 to 5
    :return: the Phase
    """
    if isinstance(phase_id, bool) or not isinstance(phase_id, (int, np.integer)) or phase_id not in PHASES:
        raise ProcedureError(f"Unknown calibration phase {phase_id!r}: phases are 0 to {max(PHASES)}")
    return PHASES[int(phase_id)]
