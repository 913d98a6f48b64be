"""Summary encoding round trip and refusal of every kind of malformed upload."""
import io
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError, SummaryError
from ILCDIRAC.CalibrationSystem.Procedure.summary import decode_summary, encode_summary


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
    decoded = decode_summary(encode_summary(0, _arrays()), 0)
    assert set(decoded) == {"barrel", "endcap"}
    for name, array in _arrays().items():
        assert decoded[name].dtype == np.float32
        np.testing.assert_array_equal(decoded[name], array)


def test_round_trip_empty_arrays():
    empty = {"barrel": np.zeros(0, np.float32), "endcap": np.zeros(0, np.float32)}
    assert decode_summary(encode_summary(0, empty), 0)["barrel"].size == 0


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
        decode_summary(content, 0)


def test_oversized_upload_refused():
    content = encode_summary(0, _arrays())
    with pytest.raises(SummaryError, match="exceeds the limit"):
        decode_summary(content, 0, max_bytes=len(content) - 1)


def test_zip_bomb_refused():
    zeros = np.zeros(4_000_000, np.float32)  # 16 MB unpacked, a few kB packed
    content = _npz(phase=np.int64(0), barrel=zeros, endcap=zeros)
    assert len(content) < 1_000_000
    with pytest.raises(SummaryError, match="unpacks to"):
        decode_summary(content, 0)


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
        decode_summary(buffer.getvalue(), 0)
