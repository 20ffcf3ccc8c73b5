# SPDX-License-Identifier: Apache-2.0
"""examples/torch_modular.py without a monitor: the readout at "=" alone equals a full causal
transformer's output there, the split covers every pair once, bad options are refused."""
import contextlib
import importlib.util
import io
import math
import os
import unittest

import torch

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                       "torch_modular.py")


def load_example():
    spec = importlib.util.spec_from_file_location("torch_modular", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def full_causal_logits(model, tokens):
    """The textbook computation: every position attends to itself and earlier ones, the MLP
    runs at every position, the logits are read at the last."""
    attn, h = model.attn, model.attn.heads
    x = model.embed(tokens) + model.pos
    n, t, d = x.shape
    q, k, v = (w(x).view(n, t, h, d // h).transpose(1, 2) for w in (attn.W_Q, attn.W_K, attn.W_V))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)
    scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), -math.inf)
    mixed = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(n, t, d)
    r = x + attn.W_O(mixed)
    r = r + model.mlp(r)
    return model.unembed(r[:, -1])


class ModularExampleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.ex = load_example()

    def test_readout_at_the_last_position_equals_the_full_model(self):
        torch.manual_seed(3)
        model = self.ex.Transformer(13, 32, 4, 64)
        xtr, _, _, _ = self.ex.split_pairs(13, 0.5, 0)
        with torch.no_grad():
            for w in model.parameters():  # biases too, so that every term is exercised
                w.normal_(0.0, 0.5)
            torch.testing.assert_close(model(xtr), full_causal_logits(model, xtr),
                                       rtol=1e-5, atol=1e-5)

    def test_split_covers_every_pair_once(self):
        xtr, ytr, xte, yte = self.ex.split_pairs(7, 0.3, 1)
        self.assertEqual(len(xtr), round(0.3 * 49))
        pairs = {(int(a), int(b)) for a, b, _ in torch.cat([xtr, xte])}
        self.assertEqual(pairs, {(a, b) for a in range(7) for b in range(7)})
        for x, y in ((xtr, ytr), (xte, yte)):
            self.assertTrue(torch.equal(y, (x[:, 0] + x[:, 1]) % 7))
            self.assertTrue(torch.all(x[:, 2] == 7))

    def test_bad_options_are_refused(self):
        for argv, message in ((["--p", "57"], "--p must be a prime"),
                              (["--frac", "1"], "--frac must lie in (0, 1)"),
                              (["--d-model", "130"], "--d-model must be a multiple of --heads"),
                              (["--every", "0"], "must be positive")):
            err = io.StringIO()
            with self.subTest(argv=argv), contextlib.redirect_stderr(err):
                with self.assertRaises(SystemExit) as cm:
                    self.ex.parse_args(argv)
                self.assertEqual(cm.exception.code, 2)
                self.assertIn(message, err.getvalue())

    def test_trains_without_a_monitor(self):
        self.assertEqual(self.ex.main(["--p", "11", "--steps", "20", "--every", "10",
                                       "--quiet"]), 0)


if __name__ == "__main__":
    unittest.main()
