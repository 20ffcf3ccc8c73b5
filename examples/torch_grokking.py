#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Grokking and generalization collapse ("anti-grokking") on a CPU in minutes.

The setting is the CPU-sized version of Prakash & Martin (2025) given in
docs/metrics.md section 7: scikit-learn digits, 50 training images per class (the rest
is the test set), MLP 64-200-200-10 with ReLU, every weight and bias multiplied by 8 after
PyTorch's default init, MSE on one-hot targets, AdamW (lr 1e-2, default betas, no weight
decay), batch 100, float32, one thread, 400k steps. Test accuracy rises late (grokking),
peaks, then declines while training accuracy stays perfect. With --weight-decay 0.01 the
decline stops at a plateau: the control a collapse detector must not stop.

Monitoring:  --publish      publish weight snapshots and scalars through `import alphatop`
                            (the monitor's stop rules end the loop via alphatop.should_stop())
Offline:     --dump DIR     every --every steps save fc1/fc2/fc3 weights (.npz) and a JSON line
                            of step, train_acc, test_acc, weight_norm to DIR/log.jsonl
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from sklearn.datasets import load_digits


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--seed", type=int, default=0, help="seed of split, init and batches (0)")
    p.add_argument("--per-class", type=int, default=50, help="training images per class (50)")
    p.add_argument("--width", type=int, default=200, help="hidden width (200)")
    p.add_argument("--lr", type=float, default=1e-2, help="AdamW learning rate (1e-2)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (0)")
    p.add_argument("--init-scale", type=float, default=8.0,
                   help="multiply every parameter after default init (8; 1 = ordinary run)")
    p.add_argument("--steps", type=int, default=400_000, help="optimizer steps (400000)")
    p.add_argument("--every", type=int, default=1000,
                   help="steps between snapshots / evaluations (1000)")
    p.add_argument("--endpoint", default=None,
                   help="monitor endpoint for --publish (default: the binding's default)")
    p.add_argument("--publish", action="store_true",
                   help="publish snapshots and scalars to an alphatop monitor")
    p.add_argument("--dump", metavar="DIR", default=None,
                   help="save weights and a JSON log line every --every steps into DIR")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    a = p.parse_args(argv)
    if a.steps < 1 or a.every < 1 or a.per_class < 1 or a.width < 1:
        p.error("--steps, --every, --per-class and --width must be positive")
    return a


def split_digits(per_class, seed):
    """First per_class images of each class (in a seeded shuffle) train; the rest test."""
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.RandomState(seed).permutation(len(y))
    train = np.zeros(len(y), dtype=bool)
    for c in range(10):
        train[order[y[order] == c][:per_class]] = True
    return (torch.from_numpy(x[train]), torch.from_numpy(y[train]),
            torch.from_numpy(x[~train]), torch.from_numpy(y[~train]))


def build_model(width, init_scale):
    model = torch.nn.Sequential()
    model.add_module("fc1", torch.nn.Linear(64, width))
    model.add_module("relu1", torch.nn.ReLU())
    model.add_module("fc2", torch.nn.Linear(width, width))
    model.add_module("relu2", torch.nn.ReLU())
    model.add_module("fc3", torch.nn.Linear(width, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(init_scale)
    return model


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def weight_norm(model):
    """L2 norm of all parameters (weights and biases) together."""
    with torch.no_grad():
        return float(torch.sqrt(sum((p.double() ** 2).sum() for p in model.parameters())))


def open_monitor(args, model, opt):
    """Watches model through the alphatop binding: a snapshot every --every optimizer steps."""
    try:
        import alphatop
    except ImportError as e:
        sys.exit(f"--publish needs the alphatop Python binding ({e}); "
                 "set PYTHONPATH to the repo's python/ directory")
    tags = {"example": "torch_grokking", "model": f"mlp-64-{args.width}-{args.width}-10",
            "seed": str(args.seed), "weight_decay": str(args.weight_decay),
            "init_scale": str(args.init_scale)}
    watcher = alphatop.watch(model, every=args.every, endpoint=args.endpoint, optimizer=opt,
                             tags=tags)
    return alphatop, watcher


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = split_digits(args.per_class, args.seed)
    ttr = torch.nn.functional.one_hot(ytr, 10).float()
    model = build_model(args.width, args.init_scale)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loss_fn = torch.nn.MSELoss()
    gen = torch.Generator().manual_seed(args.seed)
    at, watcher = open_monitor(args, model, opt) if args.publish else (None, None)
    log = None
    if args.dump:
        os.makedirs(args.dump, exist_ok=True)
        log = open(os.path.join(args.dump, "log.jsonl"), "w")
        json.dump(vars(args), open(os.path.join(args.dump, "args.json"), "w"))

    n = len(ytr)
    batch = min(100, n)
    perm, pos = torch.randperm(n, generator=gen), 0
    t0 = time.time()
    for step in range(1, args.steps + 1):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos:pos + batch]
        pos += batch
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xtr[idx]), ttr[idx])
        loss.backward()
        opt.step()
        if step % args.every == 0 or step == args.steps:
            tr, te = accuracy(model, xtr, ytr), accuracy(model, xte, yte)
            rec = {"step": step, "loss": loss.item(), "train_acc": tr, "test_acc": te,
                   "weight_norm": weight_norm(model)}
            if log is not None:
                np.savez(os.path.join(args.dump, f"w{step:07d}.npz"),
                         **{name: model.get_submodule(name).weight.detach().numpy()
                            for name in ("fc1", "fc2", "fc3")})
                log.write(json.dumps(rec) + "\n")
                log.flush()
            if at is not None:
                at.log(step, train_acc=tr, test_acc=te, loss=rec["loss"])
            if not args.quiet:
                print(f"step {step:7d}  train {tr:.3f}  test {te:.3f}  "
                      f"|w| {rec['weight_norm']:.1f}  {time.time() - t0:.0f}s",
                      file=sys.stderr, flush=True)
        if at is not None:
            reason = at.should_stop()
            if reason:
                print(f"stopped at step {step}: {reason}", file=sys.stderr, flush=True)
                break
    if log is not None:
        log.close()
    if watcher is not None:
        watcher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
