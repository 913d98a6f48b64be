"""Known answers for sample-type recognition and the nominal energies."""

import pytest

from ILCDIRAC.CalibrationSystem.Procedure.samples import (
    KAON_KINETIC_ENERGY, KAON_MASS, NOMINAL_ENERGY, SAMPLE_TYPES, sample_type_of_path)

SEED = '/afs/cern.ch/user/j/jebbing/particles/CLIC_o3_v08'


def test_energies_and_types():
    assert SAMPLE_TYPES == ('gamma', 'muon', 'kaon', 'zuds')
    assert set(NOMINAL_ENERGY) == set(SAMPLE_TYPES)
    assert NOMINAL_ENERGY == {'gamma': 10.0, 'muon': 10.0, 'kaon': 50.0, 'zuds': 91.2}
    assert KAON_MASS == 0.497672
    assert KAON_KINETIC_ENERGY == pytest.approx(49.502328, abs=1e-12)


@pytest.mark.parametrize('path, expected', [
    (f'{SEED}/gamma/10', 'gamma'),
    (f'{SEED}/mu-/10', 'muon'),
    (f'{SEED}/kaon0L/50', 'kaon'),
    (f'{SEED}/zuds/91', 'zuds'),
    ('/ilc/user/a/alice/Photons/run1', 'gamma'),
    ('/data/photon/x.slcio', 'gamma'),
    ('/data/MU+/10/file.slcio', 'muon'),
    ('/data/muons/file.slcio', 'muon'),
    ('/data/Muon/file.slcio', 'muon'),
    ('/data/K0L/50', 'kaon'),
    ('/data/k0long', 'kaon'),
    ('/data/Kaons/50', 'kaon'),
    ('/data/uds/91', 'zuds'),
    ('/data/Z_uds/91', 'zuds'),
    ('/data/sim/gamma_10GeV_0001.slcio', 'gamma'),
    ('/data/kaon0L_50GeV-042.slcio', 'kaon'),
    ('/data/gamma/gamma_10GeV.slcio', 'gamma'),     # the same type twice is not ambiguous
    ('gamma', 'gamma'),
])
def test_recognised(path, expected):
    assert sample_type_of_path(path) == expected


@pytest.mark.parametrize('path', [
    f'{SEED}/pi-/10',
    '/data/gamma/mu-/10',                # two different particles
    '/data/zuds/kaon0L_50.slcio',
    '/data/gammaray/10',                 # a longer word is not a particle name
    '/data/mumble/10',
    '/data/electrons/10',
    '',
    None,
    42,
])
def test_not_recognised_or_ambiguous(path):
    assert sample_type_of_path(path) is None
