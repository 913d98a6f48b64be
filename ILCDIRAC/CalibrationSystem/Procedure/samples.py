"""The four calibration samples: canonical names, nominal energies, recognition from a path.

The calibration needs 10 GeV photons, 10 GeV muons, 50 GeV K0L and Z->uds events (physics.md 1.1).
Users hand over directories or LFNs such as ``.../CLIC_o3_v08/mu-/10``; the particle name in one of
the path components tells which sample it is.
"""

import re

SAMPLE_TYPES = ('gamma', 'muon', 'kaon', 'zuds')

#: Energy of the generated particle in GeV; for zuds the centre-of-mass energy sqrt(s).
NOMINAL_ENERGY = {'gamma': 10.0, 'muon': 10.0, 'kaon': 50.0, 'zuds': 91.2}

#: K0L mass in GeV as used by the reference tools (the PDG value is 0.497611); kept so that the
#: calibration targets match the reference procedure.
KAON_MASS = 0.497672

#: Kinetic energy of the 50 GeV K0L: what the calorimeters can measure, hence the hadronic target.
KAON_KINETIC_ENERGY = NOMINAL_ENERGY['kaon'] - KAON_MASS

# Spellings found in sample paths, compared after lower-casing and removing everything that is not
# a letter or a digit (so 'mu-', 'mu+' and 'z_uds' reduce to 'mu' and 'zuds').
_ALIASES = {
    'gamma': 'gamma', 'gammas': 'gamma', 'photon': 'gamma', 'photons': 'gamma',
    'mu': 'muon', 'muon': 'muon', 'muons': 'muon',
    'kaon0l': 'kaon', 'k0l': 'kaon', 'kaon': 'kaon', 'kaons': 'kaon', 'k0long': 'kaon',
    'zuds': 'zuds', 'uds': 'zuds',
}

_NOT_ALNUM = re.compile(r'[^a-z0-9]+')


def _names_in_component(component):
    """Candidate particle names of one path component: the whole component and its word pieces."""
    lowered = component.lower()
    yield _NOT_ALNUM.sub('', lowered)
    yield from _NOT_ALNUM.split(lowered)


def sample_type_of_path(path):
    """Return the sample type named in ``path`` ('gamma', 'muon', 'kaon', 'zuds') or None.

    A component matches when it is, or contains as a separate word (split at '_', '.', '-', ...),
    a known particle name, e.g. ``gamma``, ``mu-``, ``kaon0L``, ``z_uds`` or ``gamma_10GeV.slcio``.
    None when nothing matches or when two different types are named: guessing would silently
    feed the wrong sample to a phase.

    :param str path: a directory, file name or LFN
    :return: 'gamma', 'muon', 'kaon', 'zuds' or None
    """
    if not isinstance(path, str):
        return None
    found = {_ALIASES[name]
             for component in path.split('/')
             for name in _names_in_component(component)
             if name in _ALIASES}
    return found.pop() if len(found) == 1 else None
