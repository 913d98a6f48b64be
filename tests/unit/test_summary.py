"""Summary encoding round trip, refusal of every kind of malformed upload, and decoding in many threads."""
import gc
import io
import sys
import threading
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError, SummaryError
from ILCDIRAC.CalibrationSystem.Procedure.summary import decode_summary, encode_summary

LIMIT = 8 * 1024 * 1024  # the service's default MaxResultSize


def _arrays():
    return {
        "barrel": np.array([9.8, 10.1, 10.0], dtype=np.float32),
        "endcap": np.array([10.2, 9.7], dtype=np.float32),
    }


def _npz(**arrays):
    """An archive built by hand, as a malicious or buggy worker could send it."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def test_round_trip():
    decoded = decode_summary(encode_summary(0, _arrays()), 0, LIMIT)
    assert set(decoded) == {"barrel", "endcap"}
    for name, array in _arrays().items():
        assert decoded[name].dtype == np.float32
        np.testing.assert_array_equal(decoded[name], array)


def test_round_trip_empty_arrays():
    empty = {"barrel": np.zeros(0, np.float32), "endcap": np.zeros(0, np.float32)}
    assert decode_summary(encode_summary(0, empty), 0, LIMIT)["barrel"].size == 0


def test_encode_checks_fields():
    with pytest.raises(SummaryError, match="missing"):
        encode_summary(0, {"barrel": _arrays()["barrel"]})
    with pytest.raises(SummaryError, match="float32"):
        encode_summary(0, {**_arrays(), "endcap": np.array([1.0, 2.0])})
    with pytest.raises(SummaryError, match="unexpected: \\['barrel', 'endcap'\\]"):
        encode_summary(4, _arrays())
    with pytest.raises(ProcedureError, match="Unknown calibration phase 6"):
        encode_summary(6, _arrays())


@pytest.mark.parametrize(
    "content, message",
    [
        (b"certainly not a zip file", "not a readable"),
        (b"PK\x03\x04" + b"\x00" * 100, "not a readable"),
        ("a string", "must be bytes"),
        (_npz(phase=np.int64(3), **_arrays()), "is for phase 3"),
        (_npz(phase=np.float64(0.0), **_arrays()), "is for phase"),
        (_npz(**_arrays()), "no phase id"),
        (_npz(phase=np.int64(0), extra=np.zeros(2, np.float32), **_arrays()), r"unexpected: \['extra'\]"),
        (_npz(phase=np.int64(0), barrel=_arrays()["barrel"]), r"missing: \['endcap'\]"),
        (_npz(phase=np.int64(0), **{**_arrays(), "barrel": np.array([1.0, np.nan], np.float32)}), "NaN"),
        (_npz(phase=np.int64(0), **{**_arrays(), "barrel": np.array([np.inf], np.float32)}), "NaN or infinite"),
        (_npz(phase=np.int64(0), **{**_arrays(), "barrel": np.zeros((2, 2), np.float32)}), "1-D"),
        (_npz(phase=np.int64(0), **{**_arrays(), "barrel": np.zeros(2, np.float64)}), "float32"),
        (_npz(phase=np.int64(0), **{**_arrays(), "barrel": np.array([{"x": 1}], dtype=object)}), "Python objects"),
    ],
)
def test_malformed_summaries_refused(content, message):
    with pytest.raises(SummaryError, match=message):
        decode_summary(content, 0, LIMIT)


def test_oversized_upload_refused():
    content = encode_summary(0, _arrays())
    with pytest.raises(SummaryError, match="exceeds the limit"):
        decode_summary(content, 0, max_bytes=len(content) - 1)


def test_zip_bomb_refused():
    zeros = np.zeros(4_000_000, np.float32)  # 16 MB unpacked, a few kB packed
    content = _npz(phase=np.int64(0), barrel=zeros, endcap=zeros)
    assert len(content) < 1_000_000
    with pytest.raises(SummaryError, match="unpacks to"):
        decode_summary(content, 0, LIMIT)


def test_lying_array_header_refused():
    # A header promising 10^9 floats with 16 bytes of data must not make numpy allocate 4 GB.
    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**9,)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in {"phase": np.array(0, np.int64), "endcap": _arrays()["endcap"]}.items():
            member = io.BytesIO()
            np.save(member, array)
            archive.writestr(f"{name}.npy", member.getvalue())
        archive.writestr("barrel.npy", header.getvalue() + b"\x00" * 16)
    with pytest.raises(SummaryError, match="declares more data"):
        decode_summary(buffer.getvalue(), 0, LIMIT)


def _member(name, header_dict=None, data=b"", version=(1, 0), header_text=None):
    """One .npy member with a hand-written header (as a foreign encoder could write it)."""
    if header_text is None:
        header = io.BytesIO()
        writer = npy_format.write_array_header_1_0 if version == (1, 0) else npy_format.write_array_header_2_0
        writer(header, header_dict)
        return name, header.getvalue() + data
    text = header_text.encode("latin1")
    return name, b"\x93NUMPY" + bytes(version) + len(text).to_bytes(2, "little") + text + data


def _archive(*members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in {"phase": np.array(0, np.int64), "endcap": _arrays()["endcap"]}.items():
            member = io.BytesIO()
            np.save(member, array)
            archive.writestr(f"{name}.npy", member.getvalue())
        for name, content in members:
            archive.writestr(name, content)
    return buffer.getvalue()


FLOATS = np.array([1.0, 2.0], np.float32).tobytes()


@pytest.mark.parametrize("member, message", [
    (_member("barrel.npy", {"descr": "<f4", "fortran_order": True, "shape": (2,)}, FLOATS), "header this decoder"),
    (_member("barrel.npy", {"descr": "<f4", "fortran_order": False, "shape": (3,)}, FLOATS), "declares more data"),
    (_member("barrel.npy", {"descr": "<f4", "fortran_order": False, "shape": (1,)}, FLOATS), "more data than its header"),
    (_member("barrel.npy", header_text="{'descr': '<f4', 'shape': (2,), 'fortran_order': False}\n", data=FLOATS),
     "header this decoder"),
    (_member("barrel.npy", header_text="{'descr': '<f4', 'fortran_order': False, 'shape': (2,), '__class__': 1}\n",
             data=FLOATS), "header this decoder"),
    (_member("barrel.npy", header_text="{'descr': '<q7', 'fortran_order': False, 'shape': (2,), }\n", data=FLOATS),
     "unknown dtype"),
    (_member("barrel.npy", header_text="{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", data=FLOATS,
             version=(3, 0)), "version 1.0 or 2.0"),
    (("barrel", b"not an array"), "barrel is not a .npy array"),
])
def test_array_headers_are_parsed_strictly(member, message):
    """The decoder reads exactly the header numpy writes, and nothing else."""
    with pytest.raises(SummaryError, match=message):
        decode_summary(_archive(member), 0, LIMIT)


def test_a_version_2_header_is_read():
    member = _member("barrel.npy", {"descr": "<f4", "fortran_order": False, "shape": (2,)}, FLOATS, version=(2, 0))
    np.testing.assert_array_equal(decode_summary(_archive(member), 0, LIMIT)["barrel"], [1.0, 2.0])


def test_the_limit_is_the_one_given_also_above_8_mib():
    """One limit, the service's MaxResultSize: a summary of more than 9 MiB passes a 16 MiB limit."""
    rng = np.random.default_rng(1)
    values = rng.uniform(1.0, 100.0, 12 * 1024 * 1024 // 4 // 2).astype(np.float32)  # hardly compressible
    content = encode_summary(0, {"barrel": values, "endcap": values[::-1].copy()})
    assert len(content) > 9 * 1024 * 1024
    with pytest.raises(SummaryError, match="exceeds the limit"):
        decode_summary(content, 0, LIMIT)
    assert decode_summary(content, 0, 16 * 1024 * 1024)["barrel"].size == values.size


class _Finalized:
    """Cyclic garbage with a Python finalizer: the collector runs it in the middle of whatever
    allocation triggers a collection, and another thread may take the GIL there."""

    def __init__(self):
        self.cycle = self

    def __del__(self):
        pass


def test_decoding_in_many_threads_while_the_collector_runs_finalizers():
    """The service decodes uploads in many request threads at once, and its process is full of
    objects with finalizers. numpy's np.load parses .npy headers with ast.literal_eval, which on
    CPython 3.11 then fails with 'SystemError: AST constructor recursion depth mismatch' (it did in
    the service benchmark, and failed calibrations). Frequent collections and thread switches make
    the interleaving happen within a second; the decoder must never fail on a valid summary."""
    content = encode_summary(0, _arrays())
    errors = []

    def decode_many():
        for _ in range(1000):
            for _ in range(5):
                _Finalized()
            try:
                decode_summary(content, 0, LIMIT)
            except Exception as error:  # noqa: BLE001 - any failure on a valid summary is the bug
                errors.append(error)
                return

    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(7)
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=decode_many) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)
    assert not errors, f"{len(errors)} of 8 threads failed on a valid summary: {errors[0]!r}"
