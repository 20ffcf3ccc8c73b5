# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpus of the checkpoint fuzz targets (tui/checkpoint/fuzz/fuzz_ckpt.c):
torch/, npz/ and index/ beside this file. Files named ok-* must read cleanly, bad-* must be
refused (tests/scan/test_ckpt_corpus.c replays them). Real writers where there is one (torch.save,
numpy.savez); hand-made pickles for what torch.save never writes. Run with /usr/bin/python3;
seeded, so a rerun writes the same arrays (torch's zip records no timestamps in the tensors).
"""

import collections
import io
import json
import os
import pickle
import zipfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def out(sub, name, data):
    os.makedirs(os.path.join(HERE, sub), exist_ok=True)
    with open(os.path.join(HERE, sub, name), "wb") as f:
        f.write(data)


def saved(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def rezip(data, drop=None, cut=None):
    """A torch archive rewritten: entry `drop` removed, entry `cut` 4 bytes short."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if drop and info.filename.endswith(drop):
                continue
            if cut and info.filename.endswith(cut):
                body = body[:-4]
            dst.writestr(info.filename, body)
    return buf.getvalue()


class Storage:
    def __init__(self, kind, key, numel):
        self.kind, self.key, self.numel = kind, key, numel


class Tensor:
    """Pickles as torch.save writes a tensor, with any offset, size and stride."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None


def raw_pickle(obj):
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


class Evil:
    def __reduce__(self):
        return (os.system, ("true",))


def torch_seeds():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 4)
    conv = torch.nn.Conv2d(1, 2, 2)
    sd = collections.OrderedDict(
        [("fc.weight", lin.weight.detach()), ("fc.bias", lin.bias.detach()),
         ("conv.weight", conv.weight.detach())])
    out("torch", "ok-state-dict.pt", saved(sd))
    w = torch.randn(5, 4)
    out("torch", "ok-tied.pt", saved({"wte.weight": w, "lm_head.weight": w}))
    out("torch", "ok-nested.pt", saved({"model": sd, "epoch": 3, "lr": 0.5, "tag": "x",
                                        "flags": [True, None, (1, 2)]}))
    out("torch", "ok-param.pt", saved({"p.weight": torch.nn.Parameter(w)}))
    out("torch", "ok-half.pt", saved({"h.weight": w.half(), "b.weight": w.bfloat16()}))
    out("torch", "ok-double.pt", saved({"d.weight": w.double()}))
    out("torch", "ok-int8.pt", saved({"q.weight": (w * 10).to(torch.int8)}))
    out("torch", "ok-transposed.pt", saved({"t.weight": torch.randn(4, 6).t()}))
    out("torch", "ok-bare.pt", saved(w))
    out("torch", "bad-os-system.pt", saved({"x.weight": Evil()}))
    out("torch", "bad-model.pt", saved(torch.nn.Linear(2, 2)))
    good = saved(sd)
    out("torch", "bad-truncated.pt", good[: len(good) // 2])
    out("torch", "bad-storage-size.pt", rezip(good, cut="data/0"))
    out("torch", "bad-missing-storage.pt", rezip(good, drop="data/2"))
    # Raw pickles: the fuzz target puts them in an archive with storages data/0 (64 float32),
    # data/1 (16 float64) and data/2 (8 int8).
    f, d, i = (Storage(torch.FloatStorage, "0", 64), Storage(torch.DoubleStorage, "1", 16),
               Storage(torch.CharStorage, "2", 8))
    three = collections.OrderedDict(
        [("a.weight", Tensor(f, 0, (8, 8), (8, 1))), ("b.weight", Tensor(f, 8, (4, 4), (1, 4))),
         ("d.weight", Tensor(d, 0, (4, 4), (4, 1))), ("i.weight", Tensor(i, 0, (2, 4), (4, 1)))])
    out("torch", "ok-pickle-views.pkl", raw_pickle(three))
    out("torch", "bad-pickle-view-past.pkl", raw_pickle({"a.weight": Tensor(f, 60, (4, 4), (4, 1))}))
    out("torch", "bad-pickle-numel.pkl",
        raw_pickle({"a.weight": Tensor(Storage(torch.FloatStorage, "0", 65), 0, (8, 8), (8, 1))}))
    out("torch", "bad-pickle-opcode.pkl", b"\x80\x02(I1\n.")
    out("torch", "bad-pickle-os-system.pkl", b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.")
    out("torch", "bad-pickle-eval.pkl", b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93)R.")
    out("torch", "bad-pickle-no-stop.pkl", raw_pickle(three)[:-1])
    out("torch", "bad-pickle-underflow.pkl", b"\x80\x02s.")


def npz_seeds():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((2, 5))
    for name, save in (("ok-savez.npz", np.savez), ("ok-compressed.npz", np.savez_compressed)):
        buf = io.BytesIO()
        save(buf, **{"fc.weight": a, "fc.bias": a[0], "d.weight": b})
        out("npz", name, buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, a, (a * 8).astype(np.int8))
    out("npz", "ok-positional.npz", buf.getvalue())
    out("npz", "bad-truncated.npz", buf.getvalue()[:200])
    for name, arr in (("ok-f4.npy", a), ("ok-f8.npy", b), ("ok-fortran.npy", np.asfortranarray(a))):
        buf = io.BytesIO()
        np.save(buf, arr)
        out("npz", name, buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, a)
    out("npz", "bad-short.npy", buf.getvalue()[:-4])
    out("npz", "bad-header.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': 3}    \n")


def index_seeds():
    weight_map = {"model.embed.weight": "model-00001-of-00002.safetensors",
                  "model.layers.0.mlp.weight": "model-00001-of-00002.safetensors",
                  "lm_head.weight": "model-00002-of-00002.safetensors"}
    ok = {"metadata": {"total_size": 1234}, "weight_map": weight_map}
    out("index", "ok-safetensors.json", json.dumps(ok, indent=2, sort_keys=True).encode())
    out("index", "ok-bin.json", json.dumps({"weight_map": {"fc.weight": "pytorch_model-1.bin"}}).encode())
    out("index", "bad-not-json.json", b'{"weight_map": {"a.weight": "s1"')
    out("index", "bad-no-weight-map.json", b'{"metadata": {}}')
    out("index", "bad-empty-map.json", b'{"weight_map": {}}')
    out("index", "bad-escape.json", b'{"weight_map": {"a.weight": "../../etc/passwd"}}')
    out("index", "bad-absolute.json", b'{"weight_map": {"a.weight": "/etc/passwd"}}')
    out("index", "bad-value.json", b'{"weight_map": {"a.weight": 3}}')
    out("index", "bad-twice.json", b'{"weight_map": {"a.weight": "s1", "a.weight": "s2"}}')
    out("index", "bad-array.json", b'[1, 2]')


if __name__ == "__main__":
    torch_seeds()
    npz_seeds()
    index_seeds()
