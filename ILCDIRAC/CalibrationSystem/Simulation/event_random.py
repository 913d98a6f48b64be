"""Random numbers tied to event identity, for the synthetic detector model (physics.md §7).

Why: the same "simulated" events must come back at every iteration (only re-digitised with new
constants), and any slicing of an event range must yield identical per-event values. So draw
``name`` of event ``i`` (and of its hit ``j``) is a function of (seed, sample, i, name[, j]) only:
one SplitMix64 output per event and draw name, and a SplitMix64 stream seeded by it for the hits.
"""
import hashlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW23 = np.uint64(0x7FFFFF)


def _splitmix64(state):
    z = state + _GOLDEN
    z ^= z >> np.uint64(30)
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    return z


def _unit53(bits):
    """Uniform in the open interval (0, 1) from the top 53 bits."""
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53


def _unit23(bits):
    """float32 uniform in (0, 1) from the low 23 bits (k + ½)·2⁻²³: exact in float32, never 0 or 1.
    Hit energies are float32 in the reconstruction too, and float32 maths halves the cost."""
    return ((bits & _LOW23).astype(np.float32) + np.float32(0.5)) * np.float32(2.0 ** -23)


class EventRandom:
    """Random numbers of a set of events (any int64 event numbers, in any order).

    :param int seed: the detector truth's seed
    :param str sample: the sample type, so that samples draw independently
    :param events: the event numbers
    """

    def __init__(self, seed, sample, events):
        self._prefix = f"{seed}/{sample}/"
        self._counters = np.asarray(events, dtype=np.int64).astype(np.uint64) * _GOLDEN
        self.size = self._counters.size

    def _bits(self, name):
        digest = hashlib.blake2b((self._prefix + name).encode(), digest_size=8).digest()
        with np.errstate(over='ignore'):
            return _splitmix64(self._counters + np.uint64(int.from_bytes(digest, 'little')))

    def subset(self, mask):
        """The same streams restricted to the events selected by ``mask`` (draws unchanged).

        :param mask: boolean array, index array or slice over the events
        :return: EventRandom
        """
        chosen = object.__new__(EventRandom)
        chosen._prefix = self._prefix
        chosen._counters = self._counters[mask]
        chosen.size = chosen._counters.size
        return chosen

    def uniform(self, name, low=0.0, high=1.0):
        """One uniform per event in the open interval (low, high).

        :param str name: the draw
        :param float low: lower end
        :param float high: upper end
        :return: float64 array
        """
        return low + (high - low) * _unit53(self._bits(name))

    def normal(self, name):
        """One standard normal per event (Box-Muller on two dedicated uniform draws).

        :param str name: the draw
        :return: float64 array
        """
        radius = np.sqrt(-2.0 * np.log(self.uniform(name + '#r')))
        return radius * np.cos(2.0 * np.pi * self.uniform(name + '#phi'))

    def hit_uniform(self, name, rows, hits):
        """Uniforms in (0, 1) of hit number ``hits`` of event ``rows`` (broadcastable index arrays):
        item ``hits`` of a SplitMix64 stream seeded by the event's draw ``name``.

        :param str name: the draw
        :param rows: event indices
        :param hits: hit numbers
        :return: float64 array of the broadcast shape
        """
        offsets = (np.asarray(hits, dtype=np.int64).astype(np.uint64) + np.uint64(1)) * _GOLDEN
        with np.errstate(over='ignore'):
            return _unit53(_splitmix64(self._bits(name)[rows] + offsets))

    def _hit_pairs(self, name, count):
        """Two (events, count) float32 arrays of independent uniforms, from one 64-bit draw per hit."""
        hits = np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN
        with np.errstate(over='ignore'):
            bits = _splitmix64(self._bits(name)[:, None] + hits[None, :])
        return _unit23(bits >> np.uint64(41)), _unit23(bits)

    def hit_normals(self, name, count):
        """Standard normals, one per hit (Box-Muller).

        :param str name: the draw
        :param int count: hits per event
        :return: (events, count) float32 array
        """
        first, second = self._hit_pairs(name, count)
        return np.sqrt(np.float32(-2.0) * np.log(first)) * np.cos(np.float32(2.0 * np.pi) * second)

    def hit_moyal(self, name, count):
        """Standard Moyal (Landau-like) variates, one per hit: −ln(Y²) with Y standard normal,
        whose density exp(−(z + e^−z)/2)/√(2π) peaks at 0.

        :param str name: the draw
        :param int count: hits per event
        :return: (events, count) float32 array
        """
        first, second = self._hit_pairs(name, count)
        chi2 = np.float32(-2.0) * np.log(first)
        chi2 *= np.square(np.cos(np.float32(2.0 * np.pi) * second))
        return -np.log(chi2)

    def poisson(self, name, mean):
        """One Poisson(mean) count per event, by inversion of the cumulative distribution.

        :param str name: the draw
        :param float mean: the expectation
        :return: int64 array
        """
        if mean <= 0:
            return np.zeros(self.size, dtype=np.int64)
        values = np.arange(int(mean + 12.0 * np.sqrt(mean) + 30.0))
        log_pmf = values * np.log(mean) - mean - np.cumsum(np.log(np.maximum(values, 1)))
        cdf = np.cumsum(np.exp(log_pmf))
        return np.minimum(np.searchsorted(cdf, self.uniform(name)), values[-1]).astype(np.int64)
