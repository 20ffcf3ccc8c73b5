"""Write and read .safetensors checkpoints with numpy only (no safetensors package needed).

Format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length, a JSON
header mapping each tensor name to its dtype, shape and [begin, end) byte offsets into the data
that follows, then the raw little-endian tensor bytes. alphatop's `scan` and `diff` read these.
"""

import json
import struct

import numpy as np

_DTYPES = {
    np.dtype("<f4"): "F32",
    np.dtype("<f2"): "F16",
    np.dtype("<f8"): "F64",
}
_NUMPY = {v: k for k, v in _DTYPES.items()}


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


def load(path):
    """Read a .safetensors file written with F16/F32/F64 tensors: returns {name: numpy array}."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = _NUMPY[info["dtype"]]
        out[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(info["shape"]).copy()
    return out
