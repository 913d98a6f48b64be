"""A worker's compact result for one step: a compressed .npz of the arrays its phase declares.

The service decodes bytes uploaded over the network, so decoding trusts nothing: no pickles, a
size limit on the upload and on what it unpacks to (zip bombs), array headers checked before any
array is allocated, and the exact field set, dtype, shape and finiteness the phase declares.

Decoding reads the archive itself and parses each member's .npy header with a strict pattern of
what numpy writes, instead of ``np.load``: numpy evaluates that header with ``ast.literal_eval``,
and on CPython 3.11 the AST constructor is not safe across threads (a garbage collection running
Python finalizers in the middle of it lets another thread in, which then fails with
``SystemError: AST constructor recursion depth mismatch``). The multi-threaded service decodes in
many threads at once, so its decoding path must not touch ``ast`` at all.
"""
import io
import math
import re
import struct
import zipfile
import zlib

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.errors import SummaryError
from ILCDIRAC.CalibrationSystem.Procedure.phases import get_phase, phase_label

PHASE_KEY = "phase"
_NPY_MAGIC = b"\x93NUMPY"
#: .npy format versions read, and the struct of their header length (1.0: 2 bytes, 2.0: 4 bytes).
_HEADER_LENGTHS = {(1, 0): struct.Struct("<H"), (2, 0): struct.Struct("<I")}
#: The header numpy writes (``numpy.lib.format``), padded with spaces and ended by a newline.
_HEADER = re.compile(r"\{'descr': '(?P<descr>[<>|=]?[a-zA-Z]\d{0,2})', 'fortran_order': False, "
                     r"'shape': \((?P<shape>(?:\d{1,12}, ?){0,4}\d{0,12})\), \} *\n")
#: What a corrupt archive makes zipfile or struct raise: all mean "not a summary". Anything else
#: (a fault of the process) is not the worker's doing and is left to the caller.
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, struct.error, EOFError, ValueError, KeyError,
                   NotImplementedError, RuntimeError, UnicodeDecodeError)


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


def _parse_npy(data, name):
    """The array held by the .npy bytes ``data`` of member ``name``, checked before anything is allocated."""
    magic, version = data[:len(_NPY_MAGIC)], tuple(data[len(_NPY_MAGIC):len(_NPY_MAGIC) + 2])
    if magic != _NPY_MAGIC or version not in _HEADER_LENGTHS:
        raise SummaryError(f"Summary member {name} is not a .npy array of version 1.0 or 2.0")
    length_format = _HEADER_LENGTHS[version]
    start = len(_NPY_MAGIC) + 2 + length_format.size
    (length,) = length_format.unpack_from(data, len(_NPY_MAGIC) + 2)
    header = _HEADER.fullmatch(data[start:start + length].decode("latin1"))
    if header is None:
        raise SummaryError(f"Summary member {name} has an array header this decoder does not accept")
    try:
        dtype = np.dtype(header["descr"])
    except TypeError:
        raise SummaryError(f"Summary member {name} has an unknown dtype {header['descr']!r}") from None
    if dtype.hasobject:
        raise SummaryError(f"Summary member {name} holds Python objects, which are refused")
    shape = tuple(int(size) for size in re.findall(r"\d+", header["shape"]))
    payload = memoryview(data)[start + length:]
    expected = math.prod(shape) * dtype.itemsize
    if expected > len(payload):
        raise SummaryError(f"Summary member {name} declares more data than it contains")
    if expected < len(payload):
        raise SummaryError(f"Summary member {name} holds more data than its header declares")
    return np.frombuffer(bytearray(payload), dtype).reshape(shape)


def _read_archive(content, allowed_names, max_bytes):
    """{name: array} of the archive's members, refusing unexpected members and oversized contents."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            raise SummaryError("Summary archive has duplicate members")
        unpacked = sum(info.file_size for info in infos)
        if unpacked > max_bytes:
            raise SummaryError(f"Summary unpacks to {unpacked} bytes, more than the limit of {max_bytes}")
        arrays = {}
        for info in infos:
            name = info.filename.removesuffix(".npy")
            if name == info.filename:
                raise SummaryError(f"Summary member {info.filename} is not a .npy array")
            if name not in allowed_names:
                arrays[name] = None  # reported as an unexpected field by the field check
                continue
            with archive.open(info) as stream:
                data = stream.read(info.file_size)  # bounded: a lying size fails the CRC check
            arrays[name] = _parse_npy(data, info.filename)
    return arrays


def decode_summary(content, phase_id, max_bytes):
    """The arrays of a summary produced by encode_summary for ``phase_id``; SummaryError if it is not one.

    :param bytes content: what a worker uploaded
    :param int phase_id: the phase of the step it was uploaded for
    :param int max_bytes: largest summary, in bytes, as uploaded and as unpacked (the service's
        MaxResultSize)
    :return: {field: 1-D array} with the phase's fields and dtypes, all finite
    """
    phase = get_phase(phase_id)
    if not isinstance(content, (bytes, bytearray)):
        raise SummaryError(f"A summary must be bytes, got {type(content).__name__}")
    if len(content) > max_bytes:
        raise SummaryError(f"Summary of {len(content)} bytes exceeds the limit of {max_bytes} bytes")
    try:
        arrays = _read_archive(content, set(phase.summary_fields) | {PHASE_KEY}, max_bytes)
    except _ARCHIVE_ERRORS as error:
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
