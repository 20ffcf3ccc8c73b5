# SPDX-License-Identifier: Apache-2.0
"""examples/torch_finetune.py end to end, small: streams both fine-tunes in delta mode to a test
monitor and writes checkpoints whose LoRA merge equals W_base + B A."""

import contextlib
import importlib.util
import io
import os
import tempfile
import unittest

import numpy as np

from alphatop import safetensors
from receiver import Receiver

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "examples", "torch_finetune.py")


def load_example():
    spec = importlib.util.spec_from_file_location("torch_finetune", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FinetuneExampleTest(unittest.TestCase):
    def test_streams_and_saves(self):
        example = load_example()
        with tempfile.TemporaryDirectory() as tmp:
            rx = Receiver("ipc://" + os.path.join(tmp, "m.ipc"))
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    example.main(["--pretrain-steps", "60", "--steps", "20", "--every", "10",
                                  "--width", "32", "--rank", "4", "--endpoint", rx.endpoint,
                                  "--save", tmp])
                self.assertTrue(rx.wait_for(lambda m: len(rx.of_type("goodbye")) == 2))
            finally:
                rx.close()
            ck = {name: safetensors.load(os.path.join(tmp, name + ".safetensors"))
                  for name in ("base", "full", "lora", "lora_adapters")}
        self.assertIn("0 dropped", out.getvalue())

        runs = sorted({m["run"] for m in rx.of_type("hello")})
        self.assertEqual(runs, ["finetune-full-lr0.01-seed0", "finetune-lora-lr0.01-seed0"])
        # The last hello of each run carries its tags (set after the first one went out).
        for hello in {m["run"]: m for m in rx.of_type("hello")}.values():
            self.assertEqual((hello["tags"]["lr"], hello["tags"]["noise"]), ("0.01", "0.7"))
        layers = rx.of_type("layer")
        base_full = [m["name"] for m in layers if m["base"] and "full" in m["run"]]
        self.assertEqual(base_full, ["fc1.weight", "fc2.weight", "fc3.weight"])
        base_lora = [m["name"] for m in layers if m["base"] and "lora" in m["run"]]
        self.assertEqual(base_lora, ["fc1.base.weight", "fc2.base.weight", "fc3.base.weight"])
        # The base sent live is the pre-trained model, as saved.
        for m in layers:
            if m["base"] and "full" in m["run"]:
                np.testing.assert_array_equal(m["data"], ck["base"][m["name"]])
        lora_kinds = {m["kind"] for m in layers if "lora" in m["run"] and not m["base"]}
        self.assertEqual(lora_kinds, {"lora_A", "lora_B"})
        self.assertEqual([e["step"] for e in rx.of_type("snapshot_end") if "full" in e["run"]],
                         [0, 10, 20])
        scalars = rx.of_type("scalars")[0]["values"]
        self.assertEqual(set(scalars), {"loss", "lr", "acc_new", "acc_old"})

        # Merged LoRA = W_base + B A; the adapters file holds A (r x in) and B (out x r).
        ad = ck["lora_adapters"]
        for name in ("fc1", "fc2", "fc3"):
            a, b = ad[name + ".lora_A.weight"], ad[name + ".lora_B.weight"]
            self.assertEqual((a.shape[0], b.shape[1]), (4, 4))
            merged = ck["base"][name + ".weight"] + b @ a
            np.testing.assert_allclose(ck["lora"][name + ".weight"], merged, rtol=0, atol=1e-6)
            self.assertFalse(np.array_equal(ck["full"][name + ".weight"], ck["base"][name + ".weight"]))


if __name__ == "__main__":
    unittest.main()
