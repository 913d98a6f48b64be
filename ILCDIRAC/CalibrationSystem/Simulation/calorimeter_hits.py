"""Hit-level part of the synthetic detector model: the PfoAnalysis histograms (physics.md §5.2, §7).

Why separate: muon MIP hits (about 107 per event) and kaon direction-correction hits (about 100
per event) are drawn as (events × hits) arrays, in blocks of events so that memory stays bounded,
and reduced at once to per-event sums and histogram fills. Randomness comes from the caller's
EventRandom, so every hit belongs to its event's identity.
"""
import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_layout import HISTOGRAMS
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import Histogram

#: Events per block of (events × hits) arrays: about 1 M hits, a few MB per array.
BLOCK_EVENTS = 8192
MIP_WIDTH = 0.1            # Moyal scale / location of a MIP hit (physics.md §7)
DIRECTION_HITS = 100       # HCal sim hits per contained kaon
DIRECTION_SMEAR = 0.04     # Gaussian smearing of a hit's 1/corr around the shower axis value


class HistogramFiller:
    """Fills the layout's histograms as ROOT would: bin = int(nbins·(x − low)/(high − low)) for
    low ≤ x < high, the rest under/overflow; sumw and sumwx accumulate every filled value."""

    def __init__(self):
        self._counts = {name: np.zeros(nbins) for name, (nbins, _, _) in HISTOGRAMS.items()}
        self._sumw = dict.fromkeys(HISTOGRAMS, 0.0)
        self._sumwx = dict.fromkeys(HISTOGRAMS, 0.0)

    def fill(self, name, values):
        """Fill every value of the array ``values`` (weight 1), binned in double precision as ROOT does.

        :param str name: a histogram of the layout (pfoanalysis_layout.HISTOGRAMS)
        :param values: the values (any shape)
        """
        x = np.asarray(values, dtype=np.float64).ravel()
        nbins, low, high = HISTOGRAMS[name]
        self._sumw[name] += float(x.size)
        self._sumwx[name] += float(x.sum())
        x = nbins * (x - low) / (high - low)
        np.floor(x, out=x)
        np.clip(x, -1.0, nbins, out=x)  # underflow -> -1, overflow -> nbins
        self._counts[name] += np.bincount((x + 1.0).astype(np.intp), minlength=nbins + 2)[1:-1]

    def histograms(self):
        """Every histogram of the layout, unfilled ones empty.

        :return: {name: worker_output.Histogram}
        """
        result = {}
        for name, (nbins, low, high) in HISTOGRAMS.items():
            result[name] = Histogram(self._counts[name].copy(), np.linspace(low, high, nbins + 1),
                                     self._sumw[name], self._sumwx[name])
        return result


def _blocks(size):
    for start in range(0, size, BLOCK_EVENTS):
        yield slice(start, min(start + BLOCK_EVENTS, size))


def mip_layers(rnd, name, n_layers, mpv, scale, corr, region, sim_histograms, digitised_histogram, filler,
               edge_layers=0):
    """MIP hits of a track crossing ``n_layers`` layers of one calorimeter.

    Per hit, the direction-corrected sim energy is Moyal(location ``mpv``, scale 0.1·mpv) and the
    digitised one ``scale`` times that; the raw energies are those × ``corr`` (path length).
    ``mpv``, ``scale``, ``corr`` and the region index ``region`` are per-event arrays;
    ``sim_histograms`` names the sim histogram of each region (None: not histogrammed). With a
    ``filler``, the direction-corrected energies are histogrammed.

    :param EventRandom rnd: the events' random numbers
    :param str name: the hits' draw
    :param int n_layers: layers crossed
    :param mpv: per event, the sim MPV (GeV)
    :param scale: per event, digitised / sim energy
    :param corr: per event, the path-length factor
    :param region: per event, the region index
    :param sim_histograms: per region, the sim histogram's name or None
    :param str digitised_histogram: the histogram of the digitised energies
    :param filler: HistogramFiller, or None to histogram nothing
    :param int edge_layers: the last layers whose energy is also summed apart
    :return: per-event raw sums (sim, digitised, digitised in the last ``edge_layers`` layers)
    """
    n = mpv.size
    mpv, scale = mpv.astype(np.float32), scale.astype(np.float32)  # hit energies are floats
    sim_total, digitised_total, edge_total = np.zeros(n), np.zeros(n), np.zeros(n)
    for block in _blocks(n):
        sim = rnd.subset(block).hit_moyal(name, n_layers)
        sim *= np.float32(MIP_WIDTH)
        sim += np.float32(1.0)
        sim *= mpv[block, None]
        digitised = scale[block, None] * sim
        sim_total[block] = sim.sum(axis=1, dtype=np.float64) * corr[block]
        digitised_total[block] = digitised.sum(axis=1, dtype=np.float64) * corr[block]
        if edge_layers:
            edge_total[block] = digitised[:, n_layers - edge_layers:].sum(axis=1, dtype=np.float64) * corr[block]
        if filler is not None:
            filler.fill(digitised_histogram, digitised)
            for index, histogram in enumerate(sim_histograms):
                if histogram is not None:
                    filler.fill(histogram, sim[region[block] == index])
    return sim_total, digitised_total, edge_total


def direction_corrections(rnd, name, axis_value, region, histograms, filler):
    """Fill the direction-correction histograms: ``DIRECTION_HITS`` hits per event, each with
    1/corr = the event's ``axis_value`` smeared by N(0, 0.04) and clipped to [0, 1], into the
    histogram of the event's ``region`` (index into ``histograms``).

    :param EventRandom rnd: the events' random numbers
    :param str name: the hits' draw
    :param axis_value: per event, 1/corr of the shower axis
    :param region: per event, the region index
    :param histograms: per region, the histogram's name
    :param HistogramFiller filler: where to fill
    """
    for block in _blocks(axis_value.size):
        values = rnd.subset(block).hit_normals(name, DIRECTION_HITS)
        values *= np.float32(DIRECTION_SMEAR)
        values += axis_value[block, None].astype(np.float32)
        np.clip(values, 0.0, 1.0, out=values)
        for index, histogram in enumerate(histograms):
            filler.fill(histogram, values[region[block] == index])
