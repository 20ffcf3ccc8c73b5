# SPDX-License-Identifier: Apache-2.0
"""Which weights watch() and analyze() take (alphatop.layers): Hugging Face GPT-2's Conv1D,
tied weights, MultiheadAttention, LSTM/GRU, Conv3d, transposed convolutions, Megatron-style
classes, layers= as a regex and as a predicate, and the skipped list with its reasons; then a
GPT-2-style tree watched end to end, the received bytes checked against the transposed weights."""

import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
from torch import nn

import alphatop
from alphatop.layers import find_layers, select
from gpt2_tree import Conv1D, GPT2LMHeadModel, expected_layers
from receiver import Receiver

torch.set_num_threads(1)


def published(layers):
    return [(layer.name, layer.kind, layer.shape) for layer in layers]


def assert_each_parameter_once(test, model, sel):
    """Every parameter name (a shared one under each of its names) is either a layer or in the
    skipped list, exactly once (models without packed projections: a layer is a parameter)."""
    names = [prefix + n for prefix, m in
             ((mn + "." if mn else "", m) for mn, m in model.named_modules(remove_duplicate=False))
             for n, _ in m.named_parameters(recurse=False)]
    skipped = [n for n, _ in sel.skipped]
    chosen = [layer.name for layer in sel.layers]
    test.assertEqual(sorted(chosen + skipped), sorted(names))


class ColumnParallelLinear(nn.Module):
    """Megatron-style: not an nn.Linear, recognised by its class name (as the reference does)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))


class RowParallelLinear(ColumnParallelLinear):
    pass


class VocabParallelEmbedding(nn.Module):
    def __init__(self, num, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num, dim))


class WithCustomParameter(nn.Module):
    """A bare 2-D parameter on a module of no known class, and a 2-D norm-named weight."""

    def __init__(self):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(16, 12))
        self.fc = nn.Linear(12, 10)


class LayersTest(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)

    def test_gpt2_conv1d_transposed_and_tied_head_once(self):
        model = GPT2LMHeadModel()
        model(torch.randint(0, 100, (2, 8)))  # the tree is a working model
        sel = select(model)
        want = expected_layers(model)
        self.assertEqual([(l.name, l.kind) for l in sel.layers], [(n, k) for n, k, _ in want])
        for layer, (name, _, w) in zip(sel.layers, want):
            np.testing.assert_array_equal(layer.tensor().numpy(), w.detach().numpy(), name)
        c_attn = sel.layers[2]
        self.assertEqual(c_attn.shape, (96, 32))  # (out, in), stored (32, 96)
        np.testing.assert_array_equal(
            c_attn.tensor().numpy(), model.transformer.h[0].attn.c_attn.weight.detach().numpy().T)
        skipped = dict(sel.skipped)
        self.assertEqual(skipped["lm_head.weight"],
                         "tied: the same storage as transformer.wte.weight, analysed once")
        self.assertEqual(skipped["transformer.h.0.attn.c_attn.bias"], "bias: not a matrix")
        self.assertEqual(skipped["transformer.ln_f.weight"], "1-D: not a matrix")
        assert_each_parameter_once(self, model, sel)

    def test_tied_by_storage_not_object(self):
        # Two Parameter objects over the same memory, one of them transposed: tied all the same.
        model = nn.Sequential(nn.Embedding(20, 12), nn.Linear(20, 12, bias=False))
        model[1].weight = nn.Parameter(model[0].weight.data.t())
        sel = select(model)
        self.assertEqual(published(sel.layers), [("0.weight", "embedding", (20, 12))])
        self.assertEqual(sel.skipped, [("1.weight", "tied: the same storage as 0.weight, "
                                                    "analysed once")])

    def test_shared_module_reported_under_its_second_name(self):
        shared = nn.Linear(8, 8)
        model = nn.Sequential(shared, nn.ReLU(), shared)
        sel = select(model)
        self.assertEqual([l.name for l in sel.layers], ["0.weight"])
        self.assertEqual(dict(sel.skipped)["2.weight"],
                         "tied: the same storage as 0.weight, analysed once")

    def test_multihead_attention_split_into_q_k_v(self):
        mha = nn.MultiheadAttention(32, 4)
        sel = select(nn.ModuleDict({"attn": mha}))
        self.assertEqual(published(sel.layers), [
            ("attn.q_proj_weight", "linear", (32, 32)), ("attn.k_proj_weight", "linear", (32, 32)),
            ("attn.v_proj_weight", "linear", (32, 32)), ("attn.out_proj.weight", "linear", (32, 32))])
        w = mha.in_proj_weight.detach().numpy()
        for i, layer in enumerate(sel.layers[:3]):
            np.testing.assert_array_equal(layer.tensor().numpy(), w[32 * i : 32 * (i + 1)])
        self.assertEqual(sorted(n for n, _ in sel.skipped),
                         ["attn.in_proj_bias", "attn.out_proj.bias"])
        # kdim/vdim unlike embed_dim: PyTorch keeps three matrices itself.
        sel = select(nn.ModuleDict({"attn": nn.MultiheadAttention(32, 4, kdim=16, vdim=24)}))
        self.assertEqual(published(sel.layers)[:3], [
            ("attn.q_proj_weight", "linear", (32, 32)), ("attn.k_proj_weight", "linear", (32, 16)),
            ("attn.v_proj_weight", "linear", (32, 24))])

    def test_lstm_and_gru_matrices(self):
        lstm = nn.LSTM(16, 24, num_layers=2, bidirectional=True)
        sel = select(lstm)
        self.assertEqual(published(sel.layers), [
            ("weight_ih_l0", "linear", (96, 16)), ("weight_hh_l0", "linear", (96, 24)),
            ("weight_ih_l0_reverse", "linear", (96, 16)), ("weight_hh_l0_reverse", "linear", (96, 24)),
            ("weight_ih_l1", "linear", (96, 48)), ("weight_hh_l1", "linear", (96, 24)),
            ("weight_ih_l1_reverse", "linear", (96, 48)), ("weight_hh_l1_reverse", "linear", (96, 24))])
        self.assertTrue(all(reason == "bias: not a matrix" for _, reason in sel.skipped))
        self.assertEqual(len(sel.skipped), 8)
        np.testing.assert_array_equal(sel.layers[1].tensor().numpy(), lstm.weight_hh_l0.detach().numpy())
        gru = select(nn.GRU(10, 12)).layers
        self.assertEqual(published(gru), [("weight_ih_l0", "linear", (36, 10)),
                                          ("weight_hh_l0", "linear", (36, 12))])

    def test_convolutions(self):
        model = nn.Sequential(nn.Conv3d(4, 8, (2, 3, 5)), nn.ConvTranspose2d(4, 6, 3),
                              nn.ConvTranspose1d(4, 6, 5), nn.Conv1d(3, 5, 7))
        sel = select(model)
        self.assertEqual(published(sel.layers), [
            ("0.weight", "conv2d", (8, 4, 2, 15)),  # (out, in, kd, kh*kw): kd*kh*kw slices
            ("1.weight", "conv2d", (6, 4, 3, 3)),   # stored (in, out, kh, kw)
            ("2.weight", "conv1d", (6, 4, 5)),
            ("3.weight", "conv1d", (5, 3, 7))])
        w3 = model[0].weight.detach().numpy()
        np.testing.assert_array_equal(sel.layers[0].tensor().numpy(), w3.reshape(8, 4, 2, 15))
        # Every kernel position's (out, in) matrix is one slice of the published tensor.
        np.testing.assert_array_equal(sel.layers[0].tensor().numpy()[:, :, 1, 2 * 5 + 3],
                                      w3[:, :, 1, 2, 3])
        np.testing.assert_array_equal(sel.layers[1].tensor().numpy(),
                                      model[1].weight.detach().numpy().transpose(1, 0, 2, 3))
        np.testing.assert_array_equal(sel.layers[2].tensor().numpy(),
                                      model[2].weight.detach().numpy().transpose(1, 0, 2))

    def test_megatron_style_classes_by_name(self):
        model = nn.Sequential(VocabParallelEmbedding(50, 16), ColumnParallelLinear(16, 32),
                              RowParallelLinear(32, 16))
        self.assertEqual(published(find_layers(model)), [
            ("0.weight", "embedding", (50, 16)), ("1.weight", "linear", (32, 16)),
            ("2.weight", "linear", (16, 32))])

    def test_unrecognised_parameters_are_reported_and_selectable(self):
        model = WithCustomParameter()
        sel = select(model)
        self.assertEqual([l.name for l in sel.layers], ["fc.weight"])
        self.assertEqual(dict(sel.skipped)["pos"], "unrecognised: parameter pos of "
                                                   "WithCustomParameter (select it with layers=)")
        sel = select(model, layers=lambda l: l.recognised or l.name == "pos")
        self.assertEqual(published(sel.layers), [("pos", "linear", (16, 12)),
                                                 ("fc.weight", "linear", (10, 12))])
        assert_each_parameter_once(self, model, sel)

    def test_regex_and_predicate_selection(self):
        model = GPT2LMHeadModel()
        sel = select(model, layers=r"\.mlp\.")
        self.assertEqual([l.name for l in sel.layers],
                         [f"transformer.h.{i}.mlp.{c}.weight" for i in (0, 1) for c in ("c_fc", "c_proj")])
        self.assertEqual(dict(sel.skipped)["transformer.wte.weight"], "not selected by layers=")
        assert_each_parameter_once(self, model, sel)
        sel = select(model, layers=lambda l: l.kind == "embedding")
        self.assertEqual([l.name for l in sel.layers], ["transformer.wte.weight", "transformer.wpe.weight"])
        # A regex can also take what is not taken by default: here the LayerNorm scales stay
        # out (1-D), and a compiled pattern works as well.
        import re

        sel = select(model, layers=re.compile(r"ln_f|h\.1\.attn\.c_attn"))
        self.assertEqual([l.name for l in sel.layers], ["transformer.h.1.attn.c_attn.weight"])
        self.assertEqual(dict(sel.skipped)["transformer.ln_f.weight"], "1-D: not a matrix")
        with self.assertRaisesRegex(TypeError, "layers= must be a regex"):
            select(model, layers=[1, 2])

    def test_lora_pairs_and_lonely_factors(self):
        class LoraLinear(nn.Linear):
            def __init__(self):
                super().__init__(10, 6)
                self.lora_A = nn.Parameter(torch.zeros(4, 10))
                self.lora_B = nn.Parameter(torch.zeros(6, 4))

        model = nn.Sequential(LoraLinear(), LoraLinear())
        sel = select(model, layers=r"^0\.|1\.lora_A")
        self.assertEqual([l.name for l in sel.layers], ["0.weight", "0.lora_A", "0.lora_B"])
        self.assertEqual(dict(sel.skipped)["1.lora_A"], "lora: its partner 1.lora_B is not analysed")

    def test_find_layers_reachable_without_importing_submodules(self):
        code = ("import alphatop, torch\n"
                "m = torch.nn.Linear(4, 3)\n"
                "print(alphatop.torch_watch.find_layers(m), alphatop.find_layers(m),"
                " alphatop.layers.find_layers is alphatop.find_layers)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        self.assertEqual(out.stderr, "")
        self.assertEqual(out.stdout.strip(),
                         "[Layer('weight', 'linear', (3, 4))] [Layer('weight', 'linear', (3, 4))] True")


class WatchGPT2Test(unittest.TestCase):
    def test_every_layer_published_once_as_expected(self):
        torch.manual_seed(1)
        model = GPT2LMHeadModel()
        with tempfile.TemporaryDirectory() as tmp:
            rx = Receiver("ipc://" + os.path.join(tmp, "m.ipc"))
            try:
                with self.assertLogs("alphatop", "INFO") as logs:
                    w = alphatop.watch(model, every=1, endpoint=rx.endpoint, hook=None)
                with w:
                    w.step()
                    self.assertTrue(rx.wait_for(lambda m: rx.of_type("snapshot_end")))
            finally:
                rx.close()
        self.assertEqual(len(logs.output), 1)
        self.assertIn("watching 10 layers of GPT2LMHeadModel; not sent: 13 bias, 5 1-D, 1 tied",
                      logs.output[0])
        self.assertIn(("lm_head.weight", "tied: the same storage as transformer.wte.weight, "
                                         "analysed once"), w.skipped)
        got = rx.of_type("layer")
        want = expected_layers(model)
        self.assertEqual([(m["name"], m["kind"]) for m in got], [(n, k) for n, k, _ in want])
        for m, (name, _, weight) in zip(got, want):
            array = weight.detach().contiguous().numpy()
            self.assertEqual(m["shape"], list(array.shape), name)
            self.assertEqual(m["raw"], array.tobytes(), name)
        self.assertEqual(rx.of_type("snapshot_end")[0]["layers"], len(want))

    def test_base_weights_are_published_as_the_layers_are(self):
        # A fine-tune's base goes out transposed/split exactly like the snapshots.
        torch.manual_seed(2)
        model = nn.ModuleDict({"c": Conv1D(12, 16), "attn": nn.MultiheadAttention(12, 3)})
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        with tempfile.TemporaryDirectory() as tmp:
            rx = Receiver("ipc://" + os.path.join(tmp, "m.ipc"))
            try:
                with alphatop.watch(model, every=1, endpoint=rx.endpoint, hook=None,
                                    send_base=True) as w:
                    with torch.no_grad():
                        for p in model.parameters():
                            p.add_(1.0)
                    w.step()
                    self.assertTrue(rx.wait_for(lambda m: len(rx.of_type("snapshot_end")) >= 2))
            finally:
                rx.close()
        base = {m["name"]: m for m in rx.of_type("layer") if m["base"]}
        self.assertEqual(list(base), ["c.weight", "attn.q_proj_weight", "attn.k_proj_weight",
                                      "attn.v_proj_weight", "attn.out_proj.weight"])
        self.assertEqual(base["c.weight"]["raw"], before["c.weight"].t().contiguous().numpy().tobytes())
        self.assertEqual(base["attn.k_proj_weight"]["raw"],
                         before["attn.in_proj_weight"][12:24].numpy().tobytes())
        now = {m["name"]: m for m in rx.of_type("layer") if not m["base"]}
        self.assertEqual(now["c.weight"]["raw"],
                         model["c"].weight.detach().t().contiguous().numpy().tobytes())


if __name__ == "__main__":
    unittest.main()
