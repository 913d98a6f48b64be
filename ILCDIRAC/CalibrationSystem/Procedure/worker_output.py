"""What one reconstruction of a worker's events yields, before the phase's collector reduces it.

For the PfoAnalysis phases: the per-event branches of the PfoAnalysisTree and its histograms
(physics.md §5); for the photon-likelihood training: the likelihood XML file Pandora wrote.
Real Marlin output (read with uproot) and the built-in detector model produce the same shapes.
"""
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class Histogram(NamedTuple):
    """A TH1 as the calibration uses it: in-range bin contents, bin edges, and ROOT's stored
    statistics (sum of weights and of weight·x over every fill) for the exact mean."""

    counts: np.ndarray  # float64, len(edges) - 1
    edges: np.ndarray  # float64
    sumw: float
    sumwx: float

    @property
    def mean(self):
        """The mean of the filled values, as ROOT's GetMean() with stored statistics."""
        return self.sumwx / self.sumw if self.sumw > 0 else float("nan")


@dataclass(frozen=True)
class ReconstructionOutput:
    """One reconstruction of one sample slice.

    ``columns``: branch name -> 1-D array (one entry per event); the vector branch
    pfoTargetCosTheta is given as 'pfoTargetCosTheta0', the leading target's value.
    ``histograms``: histogram name -> Histogram. ``likelihood``: the bytes of the photon
    likelihood XML of a training run (stage 2), else None.
    """

    columns: dict = field(default_factory=dict)
    histograms: dict = field(default_factory=dict)
    likelihood: bytes | None = None
