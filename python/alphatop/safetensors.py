# SPDX-License-Identifier: Apache-2.0
"""Write and read .safetensors checkpoints with numpy only (no safetensors package needed).

Format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length, a JSON
header mapping each tensor name to its dtype, shape and [begin, end) byte offsets into the data
that follows, then the raw little-endian tensor bytes. alphatop's `scan` and `diff` read these.
"""

import collections.abc
import json
import struct

import numpy as np

_DTYPES = {
    np.dtype("<f4"): "F32",
    np.dtype("<f2"): "F16",
    np.dtype("<f8"): "F64",
}
_NUMPY = {v: k for k, v in _DTYPES.items()}
# Read with open_file(all_dtypes=True) only, for alphatop to name them as it skips them.
_OTHER = {"I8": np.dtype("i1"), "U8": np.dtype("u1"), "I16": np.dtype("<i2"),
          "U16": np.dtype("<u2"), "I32": np.dtype("<i4"), "U32": np.dtype("<u4"),
          "I64": np.dtype("<i8"), "U64": np.dtype("<u8"), "BOOL": np.dtype("?"),
          "C64": np.dtype("<c8")}


def save(path, tensors, metadata=None):
    """Write `tensors` (a mapping name -> numpy array of float16/32/64) to `path`.

    Tensors are written in the mapping's order, in C order, little-endian. `metadata` is an
    optional mapping of strings stored under the header's `__metadata__` key.
    """
    header = {}
    arrays = []
    offset = 0
    for name, array in tensors.items():
        a = np.ascontiguousarray(array)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        if a.dtype not in _DTYPES:
            raise ValueError(f"{name}: dtype {array.dtype} not supported (float16/32/64)")
        header[name] = {
            "dtype": _DTYPES[a.dtype],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + a.nbytes],
        }
        arrays.append(a)
        offset += a.nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode()
    # The data section starts 8-byte aligned: the spec allows trailing spaces in the header.
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for a in arrays:
            f.write(a.tobytes())


def open_file(path, all_dtypes=False):
    """The tensors of a .safetensors file as a read-only mapping name -> numpy array, in the
    header's order, each read on access from a memory map (so a large file is never held in
    memory whole). F16/F32/F64 arrays are views of the file; BF16 is widened to float32
    (exactly). all_dtypes: integer, BOOL and C64 tensors are views too, of numpy's dtype
    (otherwise refused). ValueError for a malformed header or an unsupported dtype (FP8 always:
    numpy has none)."""
    return _File(path, (_NUMPY | _OTHER) if all_dtypes else _NUMPY)


def load(path):
    """Read a .safetensors file written with F16/F32/F64/BF16 tensors: returns {name: numpy
    array} (BF16 as float32), every array a copy of its own."""
    return {name: np.array(a) for name, a in open_file(path).items()}


class _File(collections.abc.Mapping):
    def __init__(self, path, dtypes):
        self.path = path
        self._dtypes = dtypes  # safetensors name -> numpy dtype, besides BF16
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError(f"{path}: truncated: no 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            try:
                header = json.loads(f.read(n))
            except ValueError as e:
                raise ValueError(f"{path}: header is not JSON: {e}") from None
        if not isinstance(header, dict):
            raise ValueError(f"{path}: header is not a JSON object")
        header.pop("__metadata__", None)
        self._header = header
        self._offset = 8 + n
        self._map = None

    def __len__(self):
        return len(self._header)

    def __iter__(self):
        return iter(self._header)

    def __getitem__(self, name):
        info = self._header[name]
        dtype = info.get("dtype")
        if dtype not in self._dtypes and dtype != "BF16":
            raise ValueError(
                f"{self.path}: {name}: dtype {dtype} not supported (F16, F32, F64, BF16)")
        if self._map is None:
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
        begin, end = info["data_offsets"]
        raw = self._map[self._offset + begin : self._offset + end]
        if dtype == "BF16":
            # bfloat16 is the top half of a float32: widening is a shift.
            bits = raw.view("<u2").astype(np.uint32) << 16
            return bits.view(np.float32).reshape(info["shape"])
        return raw.view(self._dtypes[dtype]).reshape(info["shape"])
