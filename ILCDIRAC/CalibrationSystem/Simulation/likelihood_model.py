"""Synthetic photon-likelihood training on Z -> uds events (physics.md §3, §7).

Why: stage 2 needs one likelihood file per worker whose merge can be checked exactly. Every event
yields Poisson-distributed numbers of signal and background photon candidates per energy bin
(fixed expectations per event), and every candidate one value per likelihood variable, drawn from
a fixed smooth "true" shape. Summed over a slice, the counts N_sig,k / N_bkg,k are Poisson and
each PDF is a multinomial sample of the true shape, normalised to unit sum. All draws belong to
the event's identity, so any split of the events into workers merges to the same counts.
"""
import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.photon_likelihood import (
    ENERGY_BIN_LOWER_EDGES, KINDS, VARIABLES, LikelihoodData)

#: Expected photon candidates per event and energy bin (lower edges 0, 0.2, 0.5, 1, 1.5, 2.5, 5, 10, 20 GeV).
CANDIDATES_PER_EVENT = {
    'Sig': (0.9, 1.1, 1.0, 0.7, 0.8, 0.8, 0.45, 0.2, 0.07),
    'Bkg': (1.4, 0.9, 0.6, 0.35, 0.35, 0.3, 0.15, 0.06, 0.02),
}
#: Peak position and width of each true shape, as fractions of the variable's range:
#: photons are compact, start early and are far from tracks; background the opposite.
_SHAPES = {
    'PeakRms': {'Sig': (0.18, 0.08), 'Bkg': (0.40, 0.18)},
    'RmsRatio': {'Sig': (0.15, 0.10), 'Bkg': (0.35, 0.22)},
    'LongProfileStart': {'Sig': (0.12, 0.10), 'Bkg': (0.35, 0.25)},
    'LongProfileDiscrepancy': {'Sig': (0.15, 0.10), 'Bkg': (0.40, 0.22)},
    'PeakEnergyFraction': {'Sig': (0.80, 0.12), 'Bkg': (0.45, 0.25)},
    'MinDistanceToTrack': {'Sig': (0.60, 0.25), 'Bkg': (0.15, 0.12)},
}
_FLOOR = 1e-3  # every bin of a true shape is possible, so every likelihood ratio is defined


def true_shape(variable, kind, energy_bin):
    """The normalised true PDF over the NBinsX + 2 bins (underflow and overflow are empty).

    The photon shapes drift slightly with the energy bin; the background shapes do not.

    :param str variable: a likelihood variable (VARIABLES)
    :param str kind: 'Sig' (photons) or 'Bkg'
    :param int energy_bin: index of the energy bin
    :return: float array of NBinsX + 2 probabilities
    """
    nbins = VARIABLES[variable][0]
    centres = (np.arange(nbins) + 0.5) / nbins
    peak, width = _SHAPES[variable][kind]
    if kind == 'Sig':
        peak, width = peak * (1.0 - 0.02 * energy_bin), width * (1.0 - 0.03 * energy_bin)
    density = np.exp(-0.5 * ((centres - peak) / width) ** 2) + _FLOOR
    shape = np.zeros(nbins + 2)
    shape[1:-1] = density / density.sum()
    return shape


def likelihood_data(rnd):
    """The photon-likelihood training of the events of ``rnd``.

    :param EventRandom rnd: the random numbers of the zuds events
    :return: photon_likelihood.LikelihoodData
    """
    edges = np.array(ENERGY_BIN_LOWER_EDGES, dtype=np.float64)
    numbers = {kind: np.zeros(edges.size) for kind in KINDS}
    histograms = {}
    for kind in KINDS:
        for k, rate in enumerate(CANDIDATES_PER_EVENT[kind]):
            draw = f'{kind}{k}'
            candidates = rnd.poisson(draw, rate)
            numbers[kind][k] = candidates.sum()
            rows = np.repeat(np.arange(rnd.size), candidates)
            first = np.cumsum(candidates) - candidates
            index = np.arange(rows.size) - first[rows]  # candidate number within its event
            # One uniform per candidate and variable: hit index·(number of variables) + variable.
            uniforms = rnd.hit_uniform(draw, rows[:, None],
                                       index[:, None] * len(VARIABLES) + np.arange(len(VARIABLES))[None, :])
            for v, (variable, (nbins, low, high)) in enumerate(VARIABLES.items()):
                cdf = np.cumsum(true_shape(variable, kind, k)[1:-1])
                cdf[-1] = 1.0
                counts = np.zeros(nbins + 2)
                counts[1:-1] = np.bincount(np.searchsorted(cdf, uniforms[:, v]), minlength=nbins)
                total = counts.sum()
                histograms[f'Photon{kind}{variable}_{k}'] = (
                    nbins, low, high, counts / total if total > 0 else counts)
    return LikelihoodData(edges, numbers['Sig'], numbers['Bkg'], histograms)
