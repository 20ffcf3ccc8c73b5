# SPDX-License-Identifier: Apache-2.0
"""Writes checkpoints with the real writers for tests/scan/test_ckpt_real.c, into argv[1].

Each case is a file (or directory) and the safetensors file of the same weights in float32,
written by python/alphatop/safetensors.py, that `alphatop scan --json` must match row for row:

  mlp.pt, hf_bin/ (config.json + pytorch_model.bin)   torch.save of a real nn.Module's state_dict
  tied.pt            a tiny GPT's state_dict: lm_head.weight is wte.weight (one storage)
  savez.npz, compressed.npz                          numpy.savez / savez_compressed
  sharded/           save_pretrained-style: model.safetensors.index.json + 2 shards
  sharded_bin/       pytorch_model.bin.index.json + 2 torch.save shards
  f64.weight.npy, f64.safetensors                    float64 weights (reference: narrowed)
  int8.pt            a state dict with an int8 tensor (skipped), next to a float one
Malformed files built from real ones: truncated.pt, badop.pt (an opcode torch.save never
writes), evil.pt (a pickled os.system), storage.pt (a storage 4 bytes short), and
missing_shard/, badindex/ (sharded/ with a shard removed, with a broken index).
Seeded: the same files every run. Run with /usr/bin/python3.
"""

import collections
import io
import json
import os
import shutil
import sys
import zipfile

import numpy as np
import torch

from alphatop import safetensors

OUT = sys.argv[1]


def path(*parts):
    return os.path.join(OUT, *parts)


def f32(sd):
    return {k: v.detach().float().numpy() for k, v in sd.items()}


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3)
        self.fc1 = torch.nn.Linear(64, 128)
        self.norm = torch.nn.LayerNorm(128)
        self.fc2 = torch.nn.Linear(128, 48)


class TinyGPT(torch.nn.Module):
    def __init__(self, vocab=96, dim=32):
        super().__init__()
        self.wte = torch.nn.Embedding(vocab, dim)
        self.block = torch.nn.Linear(dim, 4 * dim)
        self.proj = torch.nn.Linear(4 * dim, dim)
        self.lm_head = torch.nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.wte.weight


class Evil:
    def __reduce__(self):
        return (os.system, ("true",))


def rewrite_zip(src, dst, edit):
    """Copies a torch archive, passing each (name, bytes) through edit."""
    zin = zipfile.ZipFile(src)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))


def main():
    torch.manual_seed(17)
    rng = np.random.default_rng(17)
    os.makedirs(OUT, exist_ok=True)

    net = Net()
    sd = net.state_dict()
    torch.save(sd, path("mlp.pt"))
    safetensors.save(path("mlp.safetensors"), f32(sd))
    os.makedirs(path("hf_bin"), exist_ok=True)
    with open(path("hf_bin", "config.json"), "w") as f:
        json.dump({"model_type": "net", "hidden_size": 128}, f)
    torch.save(sd, path("hf_bin", "pytorch_model.bin"))

    gpt = TinyGPT()
    gsd = gpt.state_dict()
    torch.save(gsd, path("tied.pt"))
    safetensors.save(path("tied_ref.safetensors"),
                     {k: v for k, v in f32(gsd).items() if k != "lm_head.weight"})

    arrays = f32(sd)
    np.savez(path("savez.npz"), **arrays)
    np.savez_compressed(path("compressed.npz"), **arrays)

    # Sharded as save_pretrained does: shards in one order, the index's keys sorted.
    names = list(arrays)
    shards = {"model-00001-of-00002.safetensors": names[len(names) // 2:],
              "model-00002-of-00002.safetensors": names[:len(names) // 2]}
    weight_map = {}
    os.makedirs(path("sharded"), exist_ok=True)
    for shard, keys in shards.items():
        safetensors.save(path("sharded", shard), {k: arrays[k] for k in keys})
        weight_map.update({k: shard for k in keys})
    index = {"metadata": {"total_size": sum(a.nbytes for a in arrays.values())},
             "weight_map": weight_map}
    with open(path("sharded", "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
    with open(path("sharded", "config.json"), "w") as f:
        json.dump({"model_type": "net"}, f)
    safetensors.save(path("sharded_ref.safetensors"),
                     {k: arrays[k] for k in sorted(weight_map)})
    os.makedirs(path("sharded_bin"), exist_ok=True)
    bin_map = {}
    for i, keys in enumerate(shards.values()):
        shard = f"pytorch_model-0000{i + 1}-of-00002.bin"
        torch.save(collections.OrderedDict((k, sd[k]) for k in keys), path("sharded_bin", shard))
        bin_map.update({k: shard for k in keys})
    with open(path("sharded_bin", "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": bin_map}, f, indent=2, sort_keys=True)

    w64 = rng.standard_normal((80, 40))
    np.save(path("f64.weight.npy"), w64)
    safetensors.save(path("f64.safetensors"), {"f64.weight": w64})
    safetensors.save(path("f64_ref.safetensors"), {"f64.weight": w64.astype(np.float32)})

    q = torch.randint(-128, 127, (64, 32), dtype=torch.int8)
    dense = torch.randn(64, 32)
    torch.save({"q.weight": q, "dense.weight": dense}, path("int8.pt"))
    safetensors.save(path("int8_ref.safetensors"), {"dense.weight": dense.numpy()})

    data = open(path("mlp.pt"), "rb").read()
    with open(path("truncated.pt"), "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    # BINGET -> GET (text, protocol 0): an opcode torch.save never writes.
    rewrite_zip(path("mlp.pt"), path("badop.pt"),
                lambda n, b: b.replace(b"h\x03", b"g3\n", 1) if n.endswith("data.pkl") else b)
    torch.save({"x.weight": Evil()}, path("evil.pt"))
    rewrite_zip(path("mlp.pt"), path("storage.pt"),
                lambda n, b: b[:-4] if n.endswith("/data/0") else b)
    shutil.copytree(path("sharded"), path("missing_shard"))
    os.remove(path("missing_shard", "model-00002-of-00002.safetensors"))
    shutil.copytree(path("sharded"), path("badindex"))
    with open(path("badindex", "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps(index)[:-20])
    os.makedirs(path("empty_dir"), exist_ok=True)


if __name__ == "__main__":
    main()
