# SPDX-License-Identifier: Apache-2.0
"""alphatop.safetensors writes the documented layout and reads it back."""

import json
import os
import struct
import tempfile
import unittest

import numpy as np

from alphatop import safetensors


class SafetensorsTest(unittest.TestCase):
    def test_layout_and_round_trip(self):
        rng = np.random.default_rng(0)
        tensors = {
            "fc1.weight": rng.standard_normal((5, 3)).astype(np.float32),
            "fc1.bias": rng.standard_normal(5).astype(np.float16),
            "conv.weight": rng.standard_normal((2, 3, 2, 2)),
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "x.safetensors")
            safetensors.save(path, tensors, metadata={"step": 7})
            blob = open(path, "rb").read()
            back = safetensors.load(path)
        (n,) = struct.unpack("<Q", blob[:8])
        self.assertEqual(n % 8, 0)
        header = json.loads(blob[8 : 8 + n])
        self.assertEqual(header["__metadata__"], {"step": "7"})
        self.assertEqual(header["fc1.weight"], {"dtype": "F32", "shape": [5, 3], "data_offsets": [0, 60]})
        self.assertEqual(header["fc1.bias"]["data_offsets"], [60, 70])
        self.assertEqual(header["conv.weight"]["dtype"], "F64")
        self.assertEqual(len(blob), 8 + n + 60 + 10 + 24 * 8)
        self.assertEqual(blob[8 + n : 8 + n + 60], tensors["fc1.weight"].tobytes())
        for name, a in tensors.items():
            self.assertEqual(back[name].dtype, a.dtype)
            np.testing.assert_array_equal(back[name], a)

    def test_bf16_widened_and_other_dtypes_refused_by_name(self):
        f32 = np.array([[1.0, -2.5], [3.140625, 1e-3]], np.float32)
        bits = (f32.view(np.uint32) >> 16).astype("<u2")  # bfloat16: the top half
        header = json.dumps({
            "w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
            "i": {"dtype": "I32", "shape": [2], "data_offsets": [8, 16]},
        }).encode()
        header += b" " * (-len(header) % 8)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "b.safetensors")
            with open(path, "wb") as f:
                f.write(struct.pack("<Q", len(header)) + header + bits.tobytes() + bytes(8))
            lazy = safetensors.open_file(path)
            self.assertEqual(list(lazy), ["w", "i"])
            w = lazy["w"]
            self.assertEqual(w.dtype, np.float32)
            np.testing.assert_array_equal(w, (bits.astype(np.uint32) << 16).view(np.float32))
            self.assertEqual(w[0, 1], -2.5)
            with self.assertRaisesRegex(ValueError, "i: dtype I32 not supported"):
                lazy["i"]

    def test_unsupported_dtype(self):
        with tempfile.TemporaryDirectory() as tmp, self.assertRaises(ValueError):
            safetensors.save(os.path.join(tmp, "x"), {"i": np.zeros(3, np.int32)})


if __name__ == "__main__":
    unittest.main()
