"""The PfoAnalysis ROOT file: round trips, the stored layout and statistics, refused files.

uproot cannot write std::vector<float> branches, so the reader is tested on the jagged float[]
layout uproot writes (and on a float64 variant); both are read through the same awkward path.
"""
import awkward as ak
import numpy as np
import pytest
import uproot

from ILCDIRAC.CalibrationSystem.Procedure.hcal_digitisation import holds_int_bit_patterns
from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_layout import FLOAT_BRANCHES, HISTOGRAMS, INT_BRANCHES, edges
from ILCDIRAC.CalibrationSystem.Procedure.settings import create_settings
from ILCDIRAC.CalibrationSystem.Procedure.steering import render_steering
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import Histogram, ReconstructionOutput
from ILCDIRAC.CalibrationSystem.Simulation.builtin_reconstruction import reconstruct
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import DetectorTruth
from ILCDIRAC.CalibrationSystem.Worker.pfoanalysis_file import (
    PfoAnalysisFileError, read_pfoanalysis, write_pfoanalysis)
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import write_samples

MUON = 'MuonDirectionCorrectedCaloHitEnergy'
SCALAR_FLOATS = [name for name in FLOAT_BRANCHES if name != 'pfoTargetCosTheta0']


def _columns(n=3):
    columns = {name: np.arange(n, dtype=np.int32) + index for index, name in enumerate(INT_BRANCHES)}
    columns.update({name: np.linspace(0.5, 9.5, n).astype(np.float32) * (index + 1)
                    for index, name in enumerate(FLOAT_BRANCHES)})
    columns['pfoMinHCalLayerToEdge'] = np.full(n, 2147483647, dtype=np.int32)
    columns['qPdg'] = np.full(n, -99, dtype=np.int32)
    return columns


def _muon_histogram():
    counts = np.zeros(500)
    counts[[10, 11, 499]] = [3.0, 1.0, 2.0]   # bins [0.00004, 0.000044), [0.000044, 0.000048), last
    # stored sums of the exact filled values (not bin centres)
    return Histogram(counts, edges(MUON), 6.0, 3 * 4.1e-5 + 4.5e-5 + 2 * 1.999e-3)


def _hand_made():
    columns = _columns()
    columns['pfoTargetCosTheta0'] = np.array([0.25, np.nan, -0.75], dtype=np.float32)  # event 1: no target
    return ReconstructionOutput(columns, {MUON: _muon_histogram()})


def _assert_same(read, written):
    assert set(read.columns) == set(written.columns)
    for name, values in written.columns.items():
        assert read.columns[name].dtype == np.asarray(values).dtype, name
        np.testing.assert_array_equal(read.columns[name], values, err_msg=name)
    assert set(read.histograms) == set(written.histograms)
    for name, histogram in written.histograms.items():
        np.testing.assert_array_equal(read.histograms[name].counts, histogram.counts)
        np.testing.assert_array_equal(read.histograms[name].edges, histogram.edges)
        assert read.histograms[name].sumw == histogram.sumw
        assert read.histograms[name].sumwx == pytest.approx(histogram.sumwx, rel=1e-15)
    assert read.likelihood is None


def test_hand_made_output_round_trips(tmp_path):
    path = tmp_path / 'pfoAnalysis.root'
    written = _hand_made()
    write_pfoanalysis(path, written)
    read = read_pfoanalysis(path)
    _assert_same(read, written)
    assert read.columns['pfoTargetCosTheta0'][0] == np.float32(0.25)
    assert np.isnan(read.columns['pfoTargetCosTheta0'][1])
    # the mean comes from the stored sums, not from the bin centres
    assert read.histograms[MUON].mean == pytest.approx((3 * 4.1e-5 + 4.5e-5 + 2 * 1.999e-3) / 6)


def test_file_layout_and_stored_statistics(tmp_path):
    path = tmp_path / 'pfoAnalysis.root'
    write_pfoanalysis(path, _hand_made())
    with uproot.open(path) as root_file:
        tree = root_file['PfoAnalysisTree']
        types = tree.typenames()
        assert types['run'] == 'int32_t' and types['TotalCaloHitEnergy'] == 'float'
        assert types['pfoTargetCosTheta'] == 'float[]'
        assert tree['pfoTargetCosTheta'].array(library='ak').tolist() == [[0.25], [], [-0.75]]
        histogram = root_file[MUON]
        assert histogram.classname == 'TH1F'
        assert histogram.member('fEntries') == 6.0
        assert histogram.member('fTsumw') == histogram.member('fTsumw2') == 6.0
        assert histogram.member('fTsumwx') == pytest.approx(3 * 4.1e-5 + 4.5e-5 + 2 * 1.999e-3)
        # fTsumwx2 as ROOT recomputes it from the bin centres
        assert histogram.member('fTsumwx2') == pytest.approx(3 * 4.2e-5 ** 2 + 4.6e-5 ** 2 + 2 * 1.998e-3 ** 2)
        assert histogram.values(flow=True)[[0, -1]].tolist() == [0.0, 0.0]


@pytest.mark.parametrize('sample', ['gamma', 'muon', 'kaon'])
def test_detector_model_output_round_trips(tmp_path, sample):
    samples = write_samples(tmp_path / 'samples', events_per_file=40, files_per_sample=2, truth=DetectorTruth(seed=5))
    settings = create_settings('CLIC')
    with open(samples['steeringFile'], 'rb') as stream:
        steering = render_steering(stream.read(), {}, settings, {
            'LCIOInputFiles': ' '.join(samples['inputFiles'][sample]), 'SkipNEvents': '3', 'MaxRecordNumber': '70'})
    written = reconstruct(steering, settings)
    path = tmp_path / f'{sample}.root'
    write_pfoanalysis(path, written)
    read = read_pfoanalysis(path)
    _assert_same(read, written)
    assert read.columns['event'].tolist() == list(range(3, 73))
    assert set(read.histograms) == set(HISTOGRAMS)
    if sample != 'gamma':   # muon: the MIP histograms; kaon: the direction corrections
        assert any(histogram.sumw > 0 for histogram in read.histograms.values())


def test_no_events_round_trip(tmp_path):
    path = tmp_path / 'empty.root'
    written = ReconstructionOutput(_columns(0))
    write_pfoanalysis(path, written)
    _assert_same(read_pfoanalysis(path), written)


def _write_tree(path, branches, histograms=()):
    """A file written by hand, for layouts the writer does not produce (a TTree: assigning a dict
    would make an RNTuple)."""
    with uproot.recreate(path) as root_file:
        if branches is not None:
            types = {name: str(values.type.content) if isinstance(values, ak.Array) else values.dtype
                     for name, values in branches.items()}
            root_file.mktree('PfoAnalysisTree', types).extend(branches)
        for name, histogram in histograms:
            root_file[name] = histogram


def _branches(n=2):
    branches = {name: np.zeros(n, dtype=np.int32) for name in INT_BRANCHES}
    branches.update({name: np.ones(n, dtype=np.float32) for name in SCALAR_FLOATS})
    return branches


def test_jagged_float64_vector_branch_is_accepted(tmp_path):
    path = tmp_path / 'double.root'
    _write_tree(path, {**_branches(3), 'pfoTargetCosTheta': ak.Array([[0.5, 0.25], [], [-1.0]])})
    read = read_pfoanalysis(path)
    assert read.columns['pfoTargetCosTheta0'].dtype == np.float32
    np.testing.assert_array_equal(read.columns['pfoTargetCosTheta0'], [0.5, np.nan, -1.0])
    assert read.histograms == {}


def test_missing_and_corrupt_files_are_refused(tmp_path):
    with pytest.raises(PfoAnalysisFileError, match='No PfoAnalysis ROOT file at .*did not write it'):
        read_pfoanalysis(tmp_path / 'absent.root')
    garbage = tmp_path / 'garbage.root'
    garbage.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(ValueError, match='garbage.root is not a readable ROOT file.*truncated or corrupt'):
        read_pfoanalysis(garbage)
    good = tmp_path / 'good.root'
    write_pfoanalysis(good, ReconstructionOutput(_columns(5000)))
    truncated = tmp_path / 'truncated.root'
    truncated.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    with pytest.raises(PfoAnalysisFileError, match='truncated.root is not a readable ROOT file'):
        read_pfoanalysis(truncated)


def test_file_without_tree_or_branches_is_refused(tmp_path):
    path = tmp_path / 'no_tree.root'
    _write_tree(path, None, [('fPFA', np.histogram([1.0, 2.0], bins=4, range=(0, 4)))])
    with pytest.raises(PfoAnalysisFileError, match='has no TTree PfoAnalysisTree'):
        read_pfoanalysis(path)
    with uproot.recreate(path) as root_file:
        root_file['PfoAnalysisTree'] = _branches()   # uproot makes an RNTuple of a dict
    with pytest.raises(PfoAnalysisFileError, match='PfoAnalysisTree in .* is a ROOT::RNTuple, not a TTree'):
        read_pfoanalysis(path)
    branches = _branches()
    del branches['TotalCaloHitEnergy'], branches['nPfoTargetsPhotons']
    path = tmp_path / 'no_calibration_details.root'
    _write_tree(path, branches)
    with pytest.raises(PfoAnalysisFileError, match=r"\['nPfoTargetsPhotons', 'TotalCaloHitEnergy', "
                                                   r"'pfoTargetCosTheta'\].*CollectCalibrationDetails = 1"):
        read_pfoanalysis(path)


def test_wrong_branch_types_are_refused(tmp_path):
    path = tmp_path / 'scalar_vector.root'
    _write_tree(path, {**_branches(), 'pfoTargetCosTheta': np.zeros(2, dtype=np.float32)})
    with pytest.raises(PfoAnalysisFileError, match='pfoTargetCosTheta .* not a vector of floats'):
        read_pfoanalysis(path)
    path = tmp_path / 'float_counter.root'
    _write_tree(path, {**_branches(), 'nPfosTotal': np.zeros(2, dtype=np.float32),
                       'pfoTargetCosTheta': ak.Array([[0.5], [0.5]])})
    with pytest.raises(PfoAnalysisFileError, match='Branch nPfosTotal .* float32 .* not scalar int32'):
        read_pfoanalysis(path)


def test_edge_energy_stored_through_an_int_keeps_its_bits(tmp_path):
    """Real files hold hCalCaloHitEnergyFromEdge as int32 bit patterns in a float branch (subnormal
    floats): the reader passes them on bit for bit, so that phase 1 recognises them."""
    path = tmp_path / 'edge.root'
    output = _hand_made()
    stored = np.array([0, 3, 41], dtype=np.int32).view(np.float32)
    write_pfoanalysis(path, ReconstructionOutput({**output.columns, 'hCalCaloHitEnergyFromEdge': stored}, {}))
    column = read_pfoanalysis(path).columns['hCalCaloHitEnergyFromEdge']
    assert column.dtype == np.float32
    np.testing.assert_array_equal(column.view(np.int32), [0, 3, 41])
    assert holds_int_bit_patterns(column)


def test_histogram_keeps_the_binning_of_the_file(tmp_path):
    """The muon binning is a processor parameter: a file with the processor default [0, 1] GeV is
    read with that binning, which the analysis then uses."""
    path = tmp_path / 'binning.root'
    output = _hand_made()
    other = Histogram(np.ones(500), np.linspace(0.0, 1.0, 501), 500.0, 250.0)
    write_pfoanalysis(path, ReconstructionOutput(output.columns, {MUON: other}))
    _assert_same(read_pfoanalysis(path), ReconstructionOutput(output.columns, {MUON: other}))


def test_histogram_with_non_finite_contents_is_refused(tmp_path):
    path = tmp_path / 'nan.root'
    output = _hand_made()
    counts = _muon_histogram().counts.copy()
    counts[3] = np.nan
    write_pfoanalysis(path, ReconstructionOutput(output.columns, {MUON: _muon_histogram()._replace(counts=counts)}))
    with pytest.raises(PfoAnalysisFileError, match=f'nan.root: Histogram {MUON} must have finite counts'):
        read_pfoanalysis(path)


@pytest.mark.parametrize('change, message', [
    (lambda c: c.pop('HCalTotalCaloHitEnergy'), r"missing \['HCalTotalCaloHitEnergy'\], unknown \[\]"),
    (lambda c: c.update(pfoEnergies=np.zeros(3)), r"missing \[\], unknown \['pfoEnergies'\]"),
    (lambda c: c.update(run=np.zeros(4, dtype=np.int32)), 'one length'),
    (lambda c: c.update(run=np.zeros((3, 1), dtype=np.int32)), '1-D'),
    (lambda c: c.update(nPfosTotal=np.zeros(3)), 'nPfosTotal must hold integers'),
    (lambda c: c.update(event=np.array([0, 1, 2**31])), 'event holds values outside the int32 range'),
    (lambda c: c.update(eQQ=np.array(['a', 'b', 'c'])), 'eQQ must hold numbers'),
])
def test_writer_refuses_columns_that_are_not_the_layout(tmp_path, change, message):
    columns = _columns()
    change(columns)
    with pytest.raises(ValueError, match=message):
        write_pfoanalysis(tmp_path / 'x.root', ReconstructionOutput(columns))


def test_writer_refuses_inconsistent_histograms(tmp_path):
    bad = Histogram(np.ones(3), np.array([0.0, 1.0, 2.0]), 3.0, 3.0)
    with pytest.raises(ValueError, match=r'Histogram h needs n >= 1 counts and n \+ 1 increasing edges'):
        write_pfoanalysis(tmp_path / 'x.root', ReconstructionOutput(_columns(), {'h': bad}))
    assert not (tmp_path / 'x.root').exists()   # checked before anything is written


def test_variable_binning_is_written_as_such(tmp_path):
    path = tmp_path / 'variable.root'
    histogram = Histogram(np.array([1.0, 2.0]), np.array([0.0, 1.0, 3.0]), 3.0, 4.5)
    write_pfoanalysis(path, ReconstructionOutput(_columns(), {'fPFA': histogram}))
    with uproot.open(path) as root_file:
        assert root_file['fPFA'].axis().edges().tolist() == [0.0, 1.0, 3.0]
        assert root_file['fPFA'].member('fTsumwx') == 4.5
