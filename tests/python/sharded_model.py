# SPDX-License-Identifier: Apache-2.0
"""The seeded model of test_stream.py's sharded run, whole and as rank r of 2 holds it."""

import torch
from torch import nn


def full():
    """fc1 (128 x 96), fc2 (80 x 96), head (10 x 80): heavy-tailed seeded weights."""
    gen = torch.Generator().manual_seed(11)
    model = nn.Sequential()
    for name, (rows, cols) in (("fc1", (128, 96)), ("fc2", (80, 96)), ("head", (10, 80))):
        lin = nn.Linear(cols, rows, bias=False)
        with torch.no_grad():
            w = torch.randn(rows, cols, generator=gen) / cols**0.5
            k = min(rows, cols)
            s = torch.arange(1, k + 1, dtype=torch.float32) ** -0.6 * 3
            u, _, v = torch.linalg.svd(torch.randn(rows, cols, generator=gen), full_matrices=False)
            lin.weight.copy_(w + (u * s) @ v)
        model.add_module(name, lin)
    return model


def part(rank):
    """Rank rank's part of full(): rows of fc1, columns of fc2, all of head; and the shards=
    mapping that says where each slice lies in the whole."""
    whole = full()
    model = nn.Sequential()
    shards = {}
    for name, lin in whole.named_children():
        w = lin.weight.detach()
        if name == "fc1":
            piece, off = w[64 * rank : 64 * (rank + 1)], (64 * rank, 0)
        elif name == "fc2":
            piece, off = w[:, 48 * rank : 48 * (rank + 1)], (0, 48 * rank)
        else:
            piece, off = w, None
        local = nn.Linear(piece.shape[1], piece.shape[0], bias=False)
        with torch.no_grad():
            local.weight.copy_(piece)
        model.add_module(name, local)
        if off is not None:
            shards[name + ".weight"] = (tuple(w.shape), off)
    return model, shards
