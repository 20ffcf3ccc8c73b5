# SPDX-License-Identifier: Apache-2.0
"""alphatop.analyze() (in-process, over libalphatop_core.so) against `alphatop scan --json` of
the same weights, row for row and column for column; against numpy's float64 SVD and a naive
power-law fit; and on bad input."""

import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
from torch import nn

import alphatop
from alphatop import _core, safetensors
from alphatop.layers import find_layers
from gpt2_tree import GPT2LMHeadModel, heavy_tailed_

torch.set_num_threads(1)
BIN = os.environ.get("ALPHATOP_BIN", "alphatop")
HERE = os.path.dirname(os.path.abspath(__file__))
CORE_PY = os.path.join(HERE, "..", "..", "python", "alphatop", "_core.py")
ANALYZE_H = os.path.join(HERE, "..", "..", "core", "include", "alphatop", "analyze.h")


def read(path):
    with open(path) as f:
        return f.read()


def scan_rows(*args):
    """The rows of `alphatop scan --json ARGS`."""
    out = subprocess.run([BIN, "scan", "--json", *args], capture_output=True, text=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def not_analysed(row):
    """A row of a tensor scan skips without metrics (a bias, a tied copy, ...)."""
    return row["type"] == "layer" and row["status"] == "skipped" and "N" not in row


def scan(*args):
    """(layer rows, summary rows) of `alphatop scan --json ARGS`: the rows with metrics, or an
    error."""
    rows = scan_rows(*args)
    return [r for r in rows if r["type"] == "layer" and not not_analysed(r)], \
        [r for r in rows if r["type"] == "summary"]


def scan_skipped(*args):
    """The rows of the tensors `alphatop scan --json ARGS` does not analyse, as
    alphatop.skipped() gives them: name, status, skipped."""
    return [{k: r[k] for k in ("name", "status", "skipped")}
            for r in scan_rows(*args) if not_analysed(r)]


def save_any_dtype(path, tensors):
    """A .safetensors file of numpy arrays of any dtype safetensors names (alphatop's own
    writer takes floats only)."""
    names = {"f4": "F32", "i1": "I8", "i8": "I64", "b1": "BOOL"}
    header, offset = {}, 0
    for name, a in tensors.items():
        header[name] = {"dtype": names[a.dtype.str[1:]], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    blob = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for a in tensors.values():
            f.write(np.ascontiguousarray(a).tobytes())


def file_name(name):
    """The name a layer gets in a file scan reads: scan takes only names ending in "weight"
    (an LSTM's weight_ih_l0 does not)."""
    return name if name.endswith("weight") else name + ".weight"


def published_file(model, path):
    """Saves model's layers as analyze() sees them (published orientation; a 3-D conv1d as the
    4-D (out, in, 1, k) that scan reads), under their file_name()s."""
    tensors = {}
    for layer in find_layers(model):
        a = layer.tensor().contiguous().numpy()
        a = a.reshape(a.shape[0], a.shape[1], 1, a.shape[2]) if a.ndim == 3 else a
        tensors[file_name(layer.name)] = a
    safetensors.save(path, tensors)


def naive_fit(evals):
    """docs/metrics.md section 3 written out: (alpha, xmin, D, values from xmin up) by the
    O(n^2) scan."""
    x = np.sort(evals[evals > 1e-5])
    logs, n, best = np.log(x), len(x), None
    for i in range(n - 1):
        k = n - i
        alpha = 1 + k / (logs[i:].sum() - k * logs[i])
        d = 1.0 if not alpha > 1 else np.max(
            np.abs(1 - (x[i:] / x[i]) ** (1 - alpha) - np.arange(k) / k))
        if best is None or d < best[2]:
            best = (alpha, x[i], d, k)
    return best


class AnalyzeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def assert_rows_equal(self, details, rows, rename=lambda name: name):
        """Every row and column of scan's output equals analyze()'s (exactly: scan prints the
        shortest text that reads back as the same double)."""
        self.assertEqual([rename(n) for n in details["name"]], [r["name"] for r in rows])
        for (_, row), ref in zip(details.iterrows(), rows):
            if ref["status"] == "error":
                self.assertEqual((row["status"], row["error"]), ("error", ref["error"]))
                continue
            keys = [k for k in ref if k not in ("type", "file", "name", "lora_rank", "skipped")]
            self.assertEqual(list(details.columns[4:-2]), keys)  # same columns, same order
            self.assertEqual(row["error"], "")
            self.assertEqual(row["skipped"], ref.get("skipped", ""))
            for k in keys:
                if ref[k] is None:
                    self.assertTrue(math.isnan(row[k]), f"{ref['name']}: {k} = {row[k]}")
                else:
                    self.assertEqual(row[k], ref[k], f"{ref['name']}: {k}")

    def assert_summary_equal(self, details, summary, same_tensors=True):
        """same_tensors: details is of the file scan read (not of a model whose published
        weights alone were saved), so scan's count of skipped rows -- the tensors not analysed
        and the layers skipped for their size -- is analyze()'s."""
        got = alphatop.get_summary(details)
        self.assertEqual(got["layers"], summary["layers"])
        if same_tensors:
            self.assertEqual(summary["skipped"], len(alphatop.skipped(details)) +
                             (details["status"] == "skipped").sum())
        for k, v in summary.items():
            if k not in ("type", "file", "layers", "skipped"):
                self.assertAlmostEqual(got[k], v, delta=1e-12 * abs(v), msg=k)

    def mixed_model(self):
        """A GPT-2 tree plus one of everything else, heavy-tailed weights."""
        torch.manual_seed(0)
        model = nn.ModuleDict({
            "gpt": GPT2LMHeadModel(vocab=300, n_ctx=64, n_embd=64, n_layer=2),
            "attn": nn.MultiheadAttention(48, 4),
            "lstm": nn.LSTM(16, 24),
            "conv1": nn.Conv1d(8, 16, 5),
            "conv2": nn.Conv2d(16, 8, 2),  # even kernel, out < in: the reference's N/M quirk
            "conv3": nn.Conv3d(4, 8, (2, 2, 3)),
            "deconv": nn.ConvTranspose2d(6, 12, 3),
            "tiny": nn.Linear(8, 4),  # 4 eigenvalues: skipped
        })
        return heavy_tailed_(model, seed=1)

    def test_torch_model_equals_scan_of_its_published_weights(self):
        model = self.mixed_model()
        details = alphatop.analyze(model)
        published_file(model, self.path("m.safetensors"))
        rows, (summary,) = scan(self.path("m.safetensors"))
        self.assertEqual(len(details), 21)
        self.assert_rows_equal(details, rows, file_name)
        self.assert_summary_equal(details, summary, same_tensors=False)
        self.assertEqual(details.loc[details.name == "tiny.weight", "status"].item(), "skipped")
        c_attn = details[details.name == "gpt.transformer.h.0.attn.c_attn.weight"].iloc[0]
        self.assertEqual((c_attn.N, c_attn.M, c_attn.layer_type, c_attn.longname),
                         (192, 64, "linear", "gpt.transformer.h.0.attn.c_attn"))
        # The reference's layer_id: the module's index in named_modules().
        ids = {n: i for i, (n, _) in enumerate(model.named_modules())}
        self.assertEqual(c_attn.layer_id, ids["gpt.transformer.h.0.attn.c_attn"])
        self.assertIn(("gpt.lm_head.weight", "tied: the same storage as gpt.transformer.wte.weight, "
                                             "analysed once"), details.attrs["skipped"])

    def test_fast_mode_equals_scan_fast(self):
        model = self.mixed_model()
        details = alphatop.analyze(model, fast=True)
        published_file(model, self.path("m.safetensors"))
        rows, (summary,) = scan("--fast", self.path("m.safetensors"))
        self.assert_rows_equal(details, rows, file_name)
        self.assert_summary_equal(details, summary, same_tensors=False)
        self.assertEqual(set(details["mode"]), {"gram", "exact"})  # conv2d layers: exact

    def test_file_equals_scan_with_optional_columns_and_lora(self):
        rng = np.random.default_rng(2)
        t = lambda *s: (rng.standard_t(3, size=s) * 0.05).astype(np.float32)  # noqa: E731
        path = self.path("f.safetensors")
        safetensors.save(path, {
            "enc.weight": t(80, 40), "enc.bias": t(80), "conv.weight": t(12, 6, 3, 3),
            "half.weight": t(30, 50).astype(np.float16), "small.weight": t(4, 6),
            "q.lora_A.weight": t(12, 40), "q.lora_B.weight": t(30, 12),
            "mask": t(20, 20), "conv1d.weight": t(8, 4, 5),
        })
        details = alphatop.analyze(path, detX=True, mp_fit=True, traps=True, seed=3,
                                   lora_scale=2.0)
        rows, (summary,) = scan("--detx", "--mp", "--traps", "--seed", "3", "--lora-scale", "2",
                                path)
        self.assertEqual(list(details["name"]),
                         ["enc.weight", "conv.weight", "half.weight", "small.weight", "q.lora_BA"])
        self.assert_rows_equal(details, rows)
        self.assert_summary_equal(details, summary)
        self.assertEqual(list(details["layer_id"]), [1, 3, 4, 5, 6])  # position in the file
        self.assertEqual(details.loc[details.name == "small.weight", "skipped"].item(),
                         "too few eigenvalues for a fit (4 < --min-evals 10)")
        self.assertEqual(dict(details.attrs["skipped"]), {
            "enc.bias": "bias: not a matrix",
            "mask": "unrecognised: the name ends in neither 'weight' nor 'kernel' (select it "
                    "with scan --layers, or layers= in Python)",
            "conv1d.weight": "3-D: a Conv1d weight (out, in, k) is analysed when selected (scan "
                             "--layers, or layers= in Python)"})
        # Every tensor not analysed, once, with its reason: scan --json's skipped rows.
        self.assertEqual(alphatop.skipped(details).to_dict("records"), scan_skipped(path))

    def test_three_d_tensor_selected_is_a_conv1d(self):
        # A 3-D (out, in, k) tensor, chosen with layers= (scan --layers), is the conv2d
        # (out, in, 1, k), as the live monitor analyses a Conv1d.
        w = (np.random.default_rng(4).standard_t(3, size=(16, 8, 5)) * 0.1).astype(np.float32)
        path = self.path("c.safetensors")
        safetensors.save(path, {"c.weight": w, "c.bias": w[:, 0, 0]})
        details = alphatop.analyze(path, layers="c")
        rows, _ = scan("--layers", "c", path)
        self.assertEqual(details["layer_type"].item(), "conv1d")
        self.assert_rows_equal(details, rows)
        self.assertEqual(alphatop.skipped(details).to_dict("records"),
                         scan_skipped("--layers", "c", path))
        safetensors.save(self.path("4d.safetensors"), {"c.weight": w.reshape(16, 8, 1, 5)})
        self.assertEqual(scan(self.path("4d.safetensors"))[0][0]["alpha"], rows[0]["alpha"])
        # Not selected: skipped, saying how to select it.
        details = alphatop.analyze(path)
        self.assertEqual(len(details), 0)
        self.assertEqual(alphatop.skipped(details).to_dict("records"), scan_skipped(path))

    def test_file_tensors_are_never_falsely_tied(self):
        # A file's tensors are made on access: one freed could lend its id() to the next, which
        # then read as "tied" to it (it did, before the fix).
        rng = np.random.default_rng(9)
        tensors = {}
        for i in range(8):
            tensors[f"l{i}.weight"] = rng.standard_normal((30, 20)).astype(np.float32)
            tensors[f"l{i}.bias"] = rng.standard_normal(30).astype(np.float32)
        path = self.path("many.safetensors")
        safetensors.save(path, tensors)
        details = alphatop.analyze(path)
        self.assertEqual(len(details), 8)
        self.assertEqual({why for _, why in details.attrs["skipped"]}, {"bias: not a matrix"})
        self.assertEqual(alphatop.skipped(details).to_dict("records"), scan_skipped(path))
        # A real tie (torch.save of one storage under two names): the same row in both.
        sd = {k: torch.from_numpy(v) for k, v in tensors.items()}
        sd["head.weight"] = sd["l0.weight"]
        torch.save(sd, self.path("tied.pt"))
        details = alphatop.analyze(self.path("tied.pt"))
        self.assertIn(("head.weight", "tied: the same storage as l0.weight, analysed once"),
                      details.attrs["skipped"])
        self.assertEqual(alphatop.skipped(details).to_dict("records"),
                         scan_skipped(self.path("tied.pt")))

    def test_non_float_dtypes_are_named_alike(self):
        # numpy's dtype name ("int8") in analyze() and scan, whether the file is a safetensors
        # ("I8" in its header) or a torch checkpoint ("torch.int8"); a 1-D tensor is "1-D".
        rng = np.random.default_rng(11)
        tensors = {"fc.weight": rng.standard_normal((30, 20)).astype(np.float32),
                   "q.weight": rng.integers(-128, 127, (30, 20)).astype(np.int8),
                   "position_ids": np.arange(16, dtype=np.int64)[None, :],
                   "steps": np.arange(3, dtype=np.int64),
                   "keep": np.ones((4, 4), bool)}
        want = [("q.weight", "dtype int8: not floating point"),
                ("position_ids", "dtype int64: not floating point"),
                ("steps", "1-D: not a matrix"),
                ("keep", "dtype bool: not floating point")]
        path = self.path("ints.safetensors")
        save_any_dtype(path, tensors)
        details = alphatop.analyze(path)
        self.assertEqual(details.attrs["skipped"], want)
        self.assertEqual(alphatop.skipped(details).to_dict("records"), scan_skipped(path))
        torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, self.path("ints.pt"))
        details = alphatop.analyze(self.path("ints.pt"))
        self.assertEqual(details.attrs["skipped"], want)
        self.assertEqual(alphatop.skipped(details).to_dict("records"),
                         scan_skipped(self.path("ints.pt")))

    def test_npy_and_npz_equal_scan(self):
        # analyze(path) reads numpy's files as scan does: a .npy is one layer named after the
        # file (a 3-D one a Conv1d); a positional .npz (arr_0, ...) has every 2-D or 4-D array
        # a layer, one saved from a state dict its "*weight" arrays.
        rng = np.random.default_rng(12)
        t = lambda *s: (rng.standard_t(3, size=s) * 0.1).astype(np.float32)  # noqa: E731
        w, conv, c1 = t(60, 40), t(16, 8, 3, 3), t(16, 8, 5)
        np.save(self.path("proj.npy"), w)
        np.save(self.path("c1.npy"), c1)
        np.save(self.path("fortran.npy"), np.asfortranarray(t(30, 50)))
        np.savez(self.path("pos.npz"), w, t(40), conv, c1)
        np.savez_compressed(self.path("sd.npz"), **{"fc.weight": w, "fc.bias": t(60),
                                                    "conv.weight": conv, "q": t(8, 8),
                                                    "ids": np.arange(8)[None, :]})
        for name in ("proj.npy", "c1.npy", "fortran.npy", "pos.npz", "sd.npz"):
            path = self.path(name)
            details = alphatop.analyze(path)
            rows, (summary,) = scan(path)
            self.assertTrue(rows, name)
            self.assert_rows_equal(details, rows)
            self.assert_summary_equal(details, summary)
            self.assertEqual(alphatop.skipped(details).to_dict("records"), scan_skipped(path),
                             name)
        self.assertEqual(list(alphatop.analyze(self.path("pos.npz"))["name"]), ["arr_0", "arr_2"])
        self.assertEqual(alphatop.analyze(self.path("c1.npy"))["layer_type"].item(), "conv1d")
        details = alphatop.analyze(self.path("sd.npz"))
        self.assertEqual(list(details["name"]), ["fc.weight", "conv.weight"])
        self.assertIn(("ids", "dtype int64: not floating point"), details.attrs["skipped"])
        # With layers=, the same selection as scan --layers.
        details = alphatop.analyze(self.path("sd.npz"), layers="^q|conv")
        rows, _ = scan("--layers", "^q|conv", self.path("sd.npz"))
        self.assert_rows_equal(details, rows)
        self.assertEqual(alphatop.skipped(details).to_dict("records"),
                         scan_skipped("--layers", "^q|conv", self.path("sd.npz")))
        with open(self.path("junk.npy"), "wb") as f:
            f.write(b"not numpy at all")
        with self.assertRaisesRegex(ValueError, "junk.npy"):
            alphatop.analyze(self.path("junk.npy"))

    def test_flax_kernels_and_names_not_weight(self):
        # Flax: a dense kernel (in, out), a conv kernel (kh, kw, in, out); a projection "w".
        rng = np.random.default_rng(8)
        t = lambda *s: (rng.standard_t(3, size=s) * 0.05).astype(np.float32)  # noqa: E731
        conv = t(12, 6, 3, 3)
        path = self.path("flax.safetensors")
        safetensors.save(path, {
            "params.Dense_0.kernel": t(40, 80), "params.Dense_0.bias": t(80),
            "params.Conv_0.kernel": conv.transpose(2, 3, 1, 0), "params.Conv_0.bias": t(12),
            "params.attn.q_proj.w": t(64, 32), "params.LayerNorm_0.scale": t(40),
            "h.0.attn.bias": np.tril(np.ones((1, 1, 16, 16), np.float32))})  # GPT-2's mask
        details = alphatop.analyze(path)
        rows, (summary,) = scan(path)
        self.assertEqual(list(details["name"]), ["params.Dense_0.kernel", "params.Conv_0.kernel"])
        self.assertEqual(list(details["longname"]), ["params.Dense_0", "params.Conv_0"])
        self.assert_rows_equal(details, rows)
        self.assert_summary_equal(details, summary)
        self.assertEqual(alphatop.skipped(details).to_dict("records"), scan_skipped(path))
        # The conv kernel is the PyTorch weight (out, in, kh, kw) it came from.
        torch_layout = alphatop.analyze({"conv.weight": conv})
        self.assertEqual(details["alpha"][1], torch_layout["alpha"][0])
        # A name not "*weight" / "*kernel", selected; a mask named bias never is a layer.
        details = alphatop.analyze(path, layers="attn")
        rows, _ = scan("--layers", "attn", path)
        self.assertEqual(list(details["name"]), ["params.attn.q_proj.w"])
        self.assert_rows_equal(details, rows)
        self.assertIn(("h.0.attn.bias", "bias: not a weight (a bias, or a buffer such as an "
                                        "attention mask)"), details.attrs["skipped"])
        # What layers= leaves out is skipped in both, in the same words: a tensor that could
        # be a layer "not selected by layers=", the others with their own reason.
        self.assertIn(("params.Dense_0.kernel", "not selected by layers="),
                      details.attrs["skipped"])
        self.assertEqual(alphatop.skipped(details).to_dict("records"),
                         scan_skipped("--layers", "attn", path))

    def test_against_numpy_svd_and_a_naive_fit(self):
        torch.manual_seed(5)
        model = heavy_tailed_(GPT2LMHeadModel(vocab=300, n_ctx=64, n_embd=64, n_layer=1), seed=5)
        details = alphatop.analyze(model).set_index("name")
        for name, w in (("transformer.h.0.mlp.c_fc.weight", model.transformer.h[0].mlp.c_fc.weight),
                        ("transformer.wte.weight", model.transformer.wte.weight)):
            row = details.loc[name]
            sv = np.linalg.svd(w.detach().double().numpy(), compute_uv=False)
            ev = sv**2
            alpha, xmin, d, tail = naive_fit(ev)
            self.assertEqual((row.N, row.M, row.num_evals), (max(w.shape), min(w.shape), len(ev)))
            for col, want in (("lambda_max", ev.max()), ("norm", ev.sum()),
                              ("log_norm", np.log10(ev.sum())), ("stable_rank", ev.sum() / ev.max()),
                              ("log_spectral_norm", np.log10(ev.max())), ("alpha", alpha),
                              ("xmin", xmin), ("D", d), ("sv_max", sv.max())):
                self.assertAlmostEqual(row[col], want, delta=1e-9 * abs(want), msg=f"{name}: {col}")
            self.assertEqual(row.num_pl_spikes, tail)
            self.assertEqual(row.matrix_rank, len(ev))

    def test_torch_checkpoints_and_directories(self):
        torch.manual_seed(6)
        model = heavy_tailed_(nn.Sequential(nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 20)), 6)
        sd = model.state_dict()
        torch.save(sd, self.path("m.pt"))
        torch.save({"epoch": 3, "state_dict": sd}, self.path("ckpt.bin"))
        safetensors.save(self.path("m.safetensors"), {k: v.numpy() for k, v in sd.items()})
        want = alphatop.analyze(self.path("m.safetensors"))
        rows, _ = scan(self.path("m.safetensors"))
        self.assert_rows_equal(want, rows)
        for source in (sd, self.path("m.pt"), self.path("ckpt.bin")):
            got = alphatop.analyze(source)
            self.assertTrue(got.equals(want), source if isinstance(source, str) else "state dict")
        # A directory of shards: its .safetensors files in name order, as one model.
        shards = self.path("shards")
        os.mkdir(shards)
        safetensors.save(os.path.join(shards, "model-2.safetensors"), {"b.weight": sd["2.weight"].numpy()})
        safetensors.save(os.path.join(shards, "model-1.safetensors"), {"a.weight": sd["0.weight"].numpy()})
        got = alphatop.analyze(shards)
        self.assertEqual(list(got["name"]), ["a.weight", "b.weight"])
        self.assertEqual(list(got["alpha"]), list(want["alpha"]))

    def test_bad_input(self):
        w = np.random.default_rng(7).standard_normal((20, 30)).astype(np.float32)
        w[3, 4] = np.nan
        path = self.path("bad.safetensors")
        safetensors.save(path, {"nan.weight": w, "zero.weight": np.zeros((20, 30), np.float32)})
        details = alphatop.analyze(path)
        rows, (summary,) = scan(path)
        self.assert_rows_equal(details, rows)
        self.assertEqual(list(details["status"]), ["error", "error"])
        self.assertEqual(list(details["error"]),
                         ["cannot analyse: weights contain 1 NaN and 0 Inf values",
                          "cannot analyse: all weights are zero"])
        self.assertEqual(list(details["num_evals"]), [-1, -1])
        self.assertEqual(alphatop.get_summary(details)["layers"], summary["layers"])
        # The same from a model: the row says what is wrong, the other layers still come.
        model = nn.Sequential(nn.Linear(30, 20), nn.Linear(20, 30))
        with torch.no_grad():
            model[0].weight[0, 0] = float("inf")
        details = alphatop.analyze(model)
        self.assertEqual(list(details["status"]), ["error", "success"])
        self.assertEqual(details["error"][0], "cannot analyse: weights contain 0 NaN and 1 Inf values")
        # Tensors no matrix view fits, non-float ones: never analysed, each with its reason.
        details = alphatop.analyze({"x.weight": np.ones((2, 2, 2, 2, 2, 2, 2), np.float32),
                                    "ids.weight": np.ones((4, 4), np.int64)}, layers=".")
        self.assertEqual(len(details), 0)
        self.assertEqual(details.attrs["skipped"], [
            ("x.weight", "7-D: no matrix view of more than 5 dimensions"),
            ("ids.weight", "dtype int64: not floating point")])
        with self.assertRaisesRegex(TypeError, "expected a torch nn.Module, a state dict or a path"):
            alphatop.analyze(42)
        with self.assertRaisesRegex(FileNotFoundError, "no such file"):
            alphatop.analyze(self.path("missing.safetensors"))
        with open(self.path("weights.txt"), "w"):
            pass
        with self.assertRaisesRegex(ValueError, "not a .safetensors, .pt"):
            alphatop.analyze(self.path("weights.txt"))
        torch.save(nn.Linear(3, 3), self.path("module.pt"))  # a pickled module, not weights
        with self.assertRaisesRegex(ValueError, "not a plain state dict"):
            alphatop.analyze(self.path("module.pt"))
        with self.assertRaisesRegex(TypeError, "layers= must be a regex"):
            alphatop.analyze(model, layers=[1, 2])


class LibraryTest(unittest.TestCase):
    def test_exports_exactly_what_the_binding_declares(self):
        lib = _core.library()
        out = subprocess.run(["nm", "-D", "--defined-only", lib._name], capture_output=True,
                             text=True, check=True).stdout
        exported = {line.split()[-1] for line in out.splitlines()
                    if not re.match(r"_*(asan|odr_asan|ubsan|sanitizer|lsan)", line.split()[-1])}
        declared = set(re.findall(r'"(at_[a-z0-9_]+)":', read(CORE_PY)))
        self.assertEqual(exported, declared)
        header = set(re.findall(r"AT_EXPORT[^;(]*[ *](at_[a-z0-9_]+)\(", read(ANALYZE_H)))
        self.assertTrue(header, "no AT_EXPORT in analyze.h: parse error?")
        self.assertLessEqual(header, declared)

    def test_library_from_another_header_is_refused(self):
        code = ("import ctypes, alphatop._core as C\n"
                "class Short(ctypes.Structure):\n"
                " _fields_ = C.Metrics._fields_[:-1]\n"
                "C.Metrics = Short\n"
                "try:\n C._load()\nexcept C._lib.LibraryNotFound as e:\n print(e)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        size = _core.library().at_metrics_size()
        self.assertIn(f"built from another analyze.h: at_metrics is {size} bytes there, "
                      f"{size - 8} here", out.stdout)

    def test_missing_library_says_how_to_build_it(self):
        env = dict(os.environ, ALPHATOP_CORE_LIB="/nonexistent/libalphatop_core.so")
        code = ("import alphatop\ntry:\n alphatop.analyze({})\n"
                "except alphatop.LibraryNotFound as e:\n print(e)")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        self.assertIn("/nonexistent/libalphatop_core.so (missing)", out.stdout)
        self.assertIn("it lands in build/core/", out.stdout)


if __name__ == "__main__":
    unittest.main()
