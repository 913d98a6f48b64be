"""The PfoAnalysis ROOT file (physics.md §5): write one from a ReconstructionOutput, read one back.

Why: on the grid Marlin's PfoAnalysis processor writes a ROOT file, and the worker reduces it to
a phase summary; the fake Marlin of the tests and the size benchmark write the same file from
the synthetic model. Reading accepts both layouts of the vector branch pfoTargetCosTheta: real
files hold ``std::vector<float>``, uproot writes a jagged ``float[]`` with a counter branch.
Only its first element (the leading target) is used, as column 'pfoTargetCosTheta0' (NaN for an
event without targets). Scalar branches are passed on bit for bit: in a real file the float
branch hCalCaloHitEnergyFromEdge holds int32 bit patterns, which phase 1 recognises
(hcal_digitisation.holds_int_bit_patterns).

Histograms are TH1F with ROOT's stored statistics: fTsumw and fTsumwx are the Histogram's own
(exact over every fill); fTsumwx2 is recomputed from the bin centres, as ROOT's ResetStats does,
because a Histogram does not carry it. Fills are taken as unweighted (fTsumw2 = fTsumw, no fSumw2).
"""
import os

import awkward as ak
import numpy as np
import uproot
from uproot.writing.identify import to_TAxis, to_TH1x

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_layout import (
    FLOAT_BRANCHES, HISTOGRAMS, INT_BRANCHES, check_histogram)
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import Histogram, ReconstructionOutput

TREE = 'PfoAnalysisTree'
VECTOR_BRANCH = 'pfoTargetCosTheta'
LEADING_COLUMN = 'pfoTargetCosTheta0'
SCALAR_FLOAT_BRANCHES = tuple(name for name in FLOAT_BRANCHES if name != LEADING_COLUMN)


class PfoAnalysisFileError(ValueError):
    """A PfoAnalysis ROOT file that is missing, unreadable or lacks what the calibration needs."""


def write_pfoanalysis(path, output):
    """Write ``output`` (columns and histograms of a ReconstructionOutput) as a PfoAnalysis ROOT
    file at ``path``; ValueError if the columns are not exactly the PfoAnalysis branches."""
    columns = _checked_columns(output.columns)
    histograms = {name: _th1f(name, histogram) for name, histogram in output.histograms.items()}
    leading = columns.pop(LEADING_COLUMN)
    present = ~np.isnan(leading)
    vector = ak.unflatten(leading[present], present.astype(np.int64))
    types = {name: np.int32 for name in INT_BRANCHES}
    types.update({name: np.float32 for name in SCALAR_FLOAT_BRANCHES})
    types[VECTOR_BRANCH] = 'var * float32'
    with uproot.recreate(path) as root_file:
        tree = root_file.mktree(TREE, types, title='PfoAnalysis tree')
        tree.extend({**columns, VECTOR_BRANCH: vector})
        for name, histogram in histograms.items():
            root_file[name] = histogram


def _checked_columns(columns):
    expected = {*INT_BRANCHES, *SCALAR_FLOAT_BRANCHES, LEADING_COLUMN}
    missing, unknown = sorted(expected - set(columns)), sorted(set(columns) - expected)
    if missing or unknown:
        raise ValueError(f"A PfoAnalysis file needs exactly the columns of pfoanalysis_layout: "
                         f"missing {missing}, unknown {unknown}")
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    shapes = {array.shape for array in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"PfoAnalysis columns must be 1-D arrays of one length, got shapes {sorted(shapes)}")
    checked = {}
    for name in INT_BRANCHES:
        array = arrays[name]
        if array.dtype.kind not in 'iu':
            raise ValueError(f"Column {name} must hold integers, got {array.dtype}")
        if array.size and (array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max):
            raise ValueError(f"Column {name} holds values outside the int32 range of its branch")
        checked[name] = array.astype(np.int32)
    for name in (*SCALAR_FLOAT_BRANCHES, LEADING_COLUMN):
        if arrays[name].dtype.kind not in 'iuf':
            raise ValueError(f"Column {name} must hold numbers, got {arrays[name].dtype}")
        checked[name] = arrays[name].astype(np.float32)
    return checked


def _th1f(name, histogram):
    counts = np.asarray(histogram.counts, dtype=np.float64)
    edges = np.asarray(histogram.edges, dtype=np.float64)
    if counts.ndim != 1 or edges.shape != (counts.size + 1,) or counts.size == 0 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"Histogram {name} needs n >= 1 counts and n + 1 increasing edges, "
                         f"got {counts.shape} counts and {edges.shape} edges")
    uniform = np.allclose(np.diff(edges), (edges[-1] - edges[0]) / counts.size, rtol=1e-9, atol=0.0)
    axis = to_TAxis('xaxis', '', counts.size, float(edges[0]), float(edges[-1]),
                    fXbins=None if uniform else edges)
    data = np.zeros(counts.size + 2, dtype=np.float32)  # underflow, bins, overflow
    data[1:-1] = counts
    centres = 0.5 * (edges[:-1] + edges[1:])
    sumw = float(histogram.sumw)
    return to_TH1x(name, name, data, float(counts.sum()), sumw, sumw, float(histogram.sumwx),
                   float(np.sum(counts * centres ** 2)), None, axis)


def read_pfoanalysis(path):
    """The ReconstructionOutput stored in the PfoAnalysis ROOT file at ``path``: every layout
    branch as a column, and every layout histogram the file holds, with the file's own binning.
    PfoAnalysisFileError (a ValueError) if the file is missing, corrupt or incomplete."""
    if not os.path.isfile(path):
        raise PfoAnalysisFileError(f"No PfoAnalysis ROOT file at {path}: the reconstruction did not write it")
    try:
        with uproot.open(path) as root_file:
            columns = _read_tree(path, root_file)
            histograms = _read_histograms(path, root_file)
    except PfoAnalysisFileError:
        raise
    except Exception as error:  # uproot signals corrupt or truncated data with many exception types
        detail = ' '.join(str(error).split())
        raise PfoAnalysisFileError(f"{path} is not a readable ROOT file ({type(error).__name__}: {detail}); it is "
                                   "truncated or corrupt: did the reconstruction crash while writing it?") from error
    return ReconstructionOutput(columns, histograms)


def _read_tree(path, root_file):
    if TREE not in root_file:
        raise PfoAnalysisFileError(f"{path} has no TTree {TREE}: is it the RootFile of the PfoAnalysis processor?")
    if root_file.classname_of(TREE) != 'TTree':
        raise PfoAnalysisFileError(f"{TREE} in {path} is a {root_file.classname_of(TREE)}, not a TTree")
    tree = root_file[TREE]
    missing = [name for name in (*INT_BRANCHES, *SCALAR_FLOAT_BRANCHES, VECTOR_BRANCH) if name not in tree]
    if missing:
        raise PfoAnalysisFileError(f"{TREE} in {path} lacks the branches {missing}: run PfoAnalysis with "
                                   "CollectCalibrationDetails = 1")
    arrays = tree.arrays([*INT_BRANCHES, *SCALAR_FLOAT_BRANCHES], library='np')
    columns = {}
    for names, kinds, dtype in ((INT_BRANCHES, 'iu', np.int32), (SCALAR_FLOAT_BRANCHES, 'f', np.float32)):
        for name in names:
            array = arrays[name]
            if array.ndim != 1 or array.dtype.kind not in kinds:
                raise PfoAnalysisFileError(f"Branch {name} in {path} holds {array.dtype} values of shape "
                                           f"{array.shape}, not scalar {np.dtype(dtype).name}")
            columns[name] = array.astype(dtype)
    columns[LEADING_COLUMN] = _leading(path, tree[VECTOR_BRANCH].array(library='ak'))
    return columns


def _leading(path, vector):
    """First element per event of a jagged float branch (std::vector<float> or float[]), NaN if empty."""
    layout = str(ak.type(vector).content)
    if not layout.startswith('var * ') or not layout.endswith(('float32', 'float64')):
        raise PfoAnalysisFileError(f"Branch {VECTOR_BRANCH} in {path} has type {layout}, "
                                   "not a vector of floats per event")
    return ak.to_numpy(ak.fill_none(ak.firsts(vector), np.nan)).astype(np.float32)


def _read_histograms(path, root_file):
    histograms = {}
    for name in HISTOGRAMS:
        if name not in root_file:
            continue
        if not root_file.classname_of(name).startswith('TH1'):
            raise PfoAnalysisFileError(f"{name} in {path} is a {root_file.classname_of(name)}, not a TH1")
        stored = root_file[name]
        histogram = Histogram(np.asarray(stored.values(flow=False), dtype=np.float64),
                              np.asarray(stored.axis().edges(flow=False), dtype=np.float64),
                              float(stored.member('fTsumw')), float(stored.member('fTsumwx')))
        try:
            check_histogram(name, histogram)
        except ProcedureError as error:
            raise PfoAnalysisFileError(f"{path}: {error}") from None
        histograms[name] = histogram
    return histograms
