"""A worker's compact result for one step: a compressed .npz of the arrays its phase declares.

The service decodes bytes uploaded over the network, so decoding trusts nothing: no pickles, a
size limit on the upload and on what it unpacks to (zip bombs), array headers checked before any
array is allocated, and the exact field set, dtype, shape and finiteness the phase declares.
"""
import io
import zipfile

import numpy as np
from numpy.lib import format as npy_format

from ILCDIRAC.CalibrationSystem.Procedure.errors import SummaryError
from ILCDIRAC.CalibrationSystem.Procedure.phases import get_phase, phase_label

PHASE_KEY = "phase"
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


def _check_fields(phase, arrays):
    """Exactly the phase's fields, each a finite 1-D array of the declared dtype."""
    expected = phase.summary_fields
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise SummaryError(
            f"Summary for {phase_label(phase.id)} must have exactly the fields {sorted(expected)}"
            f" (missing: {missing}, unexpected: {extra})"
        )
    for name, dtype in expected.items():
        array = arrays[name]
        if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
            shown = f"{array.dtype} array of shape {array.shape}" if isinstance(array, np.ndarray) else type(array)
            raise SummaryError(f"Summary field '{name}' must be a 1-D {dtype} array, got {shown}")
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise SummaryError(f"Summary field '{name}' contains NaN or infinite values")


def encode_summary(phase_id, arrays):
    """Pack ``arrays`` (checked against the phase's summary fields) with the phase id into npz bytes.

    :param int phase_id: the phase whose summary this is
    :param dict arrays: {field: 1-D array}, exactly the phase's summary fields
    :return: bytes (compressed npz)
    """
    phase = get_phase(phase_id)
    _check_fields(phase, arrays)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{PHASE_KEY: np.array(phase.id, dtype=np.int64)}, **arrays)
    return buffer.getvalue()


def _check_archive(archive, allowed_names, max_bytes):
    """Refuse unexpected members, oversized contents and array headers that promise more data than stored."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise SummaryError("Summary archive has duplicate members")
    unpacked = sum(info.file_size for info in infos)
    if unpacked > max_bytes:
        raise SummaryError(f"Summary unpacks to {unpacked} bytes, more than the limit of {max_bytes}")
    for info in infos:
        if not info.filename.endswith(".npy") or info.filename[: -len(".npy")] not in allowed_names:
            continue  # reported as an unexpected field by the field check
        with archive.open(info) as stream:
            version = npy_format.read_magic(stream)
            if version not in _HEADER_READERS:
                raise SummaryError(f"Summary member {info.filename} has unsupported .npy version {version}")
            shape, _, dtype = _HEADER_READERS[version](stream)
        if dtype.hasobject:
            raise SummaryError(f"Summary member {info.filename} holds Python objects, which are refused")
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > info.file_size:
            raise SummaryError(f"Summary member {info.filename} declares more data than it contains")


def decode_summary(content, phase_id, max_bytes=DEFAULT_MAX_BYTES):
    """The arrays of a summary produced by encode_summary for ``phase_id``; SummaryError if it is not one.

    :param bytes content: what a worker uploaded
    :param int phase_id: the phase of the step it was uploaded for
    :param int max_bytes: largest total size of the arrays, uncompressed
    :return: {field: 1-D array} with the phase's fields and dtypes, all finite
    """
    phase = get_phase(phase_id)
    if not isinstance(content, (bytes, bytearray)):
        raise SummaryError(f"A summary must be bytes, got {type(content).__name__}")
    if len(content) > max_bytes:
        raise SummaryError(f"Summary of {len(content)} bytes exceeds the limit of {max_bytes} bytes")
    allowed = set(phase.summary_fields) | {PHASE_KEY}
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            _check_archive(archive, allowed, max_bytes)
        with np.load(io.BytesIO(content), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except SummaryError:
        raise
    except Exception as error:  # np.load/zipfile raise many types on corrupt input; all mean "not a summary"
        raise SummaryError(f"Summary is not a readable numpy archive: {type(error).__name__}: {error}") from None
    if PHASE_KEY not in arrays:
        raise SummaryError("Summary has no phase id; it was not produced by encode_summary")
    declared = arrays.pop(PHASE_KEY)
    if declared.shape != () or declared.dtype.kind not in "iu" or int(declared) != phase.id:
        raise SummaryError(
            f"Summary is for phase {declared.tolist()!r}, but the step being analysed is {phase_label(phase.id)};"
            " it belongs to another step and is refused"
        )
    _check_fields(phase, arrays)
    return arrays
