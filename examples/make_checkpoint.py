#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Make small real checkpoints for `alphatop scan` and `alphatop diff` (seconds on one core).

Trains an MLP 64-256-128-10 (ReLU) on scikit-learn's bundled digits (seed 0, first 1,200
images for training, the rest for testing) and writes, into OUT (default: examples/ckpt):

    init.safetensors      the untrained model (PyTorch default init)
    trained.safetensors   after --epochs of SGD (lr 0.05, momentum 0.9, batch 32)

then prints the test accuracy. Try:

    alphatop scan OUT/trained.safetensors
    alphatop scan OUT/trained.safetensors --base OUT/init.safetensors    # the training update
    alphatop diff OUT/init.safetensors OUT/trained.safetensors
"""

import argparse
import os
import sys

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from alphatop import safetensors  # noqa: E402  (numpy-only writer, next to the binding)


def state_arrays(model):
    """The model's parameters as float32 numpy arrays, named as PyTorch names them."""
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--out", default=os.path.join(here, "ckpt"), help="output directory")
    p.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    perm = torch.tensor(np.random.default_rng(args.seed).permutation(len(x)))
    x, y = x[perm], y[perm]
    xtr, ytr, xte, yte = x[:1200], y[:1200], x[1200:], y[1200:]

    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(64, 256))
    model.add_module("relu1", nn.ReLU())
    model.add_module("fc2", nn.Linear(256, 128))
    model.add_module("relu2", nn.ReLU())
    model.add_module("fc3", nn.Linear(128, 10))
    os.makedirs(args.out, exist_ok=True)
    safetensors.save(os.path.join(args.out, "init.safetensors"), state_arrays(model))

    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    for _ in range(args.epochs):
        order = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr), 32):
            idx = order[i : i + 32]
            opt.zero_grad()
            loss_fn(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    safetensors.save(os.path.join(args.out, "trained.safetensors"), state_arrays(model))
    print(f"test accuracy {acc:.3f}; wrote {args.out}/init.safetensors and trained.safetensors")


if __name__ == "__main__":
    main()
