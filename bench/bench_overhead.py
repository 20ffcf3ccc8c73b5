#!/usr/bin/python3
"""Overhead of alphatop.watch() on a PyTorch training loop (issue 4: goal <= 2% of step time).

An MLP of ~6.4M parameters (64-2048-2048-1024-10) trained with SGD on scikit-learn's digits,
one thread, seeded. Runs alternate -- plain, watched with a monitor draining, watched with no
monitor at all -- in rotating order over several rounds, so drifts in machine load hit every
variant alike. Reports the median step time of each and the overhead as a ratio, plus the cost
of one snapshot measured directly (its share of `every` steps).

    /usr/bin/python3 bench/bench_overhead.py [--steps 200] [--rounds 3] [--every 50]

Needs PYTHONPATH=python and ALPHATOP_LIB=build/agent (or an installed package).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from sklearn.datasets import load_digits

import alphatop

SINK = r"""
import sys, zmq
ctx = zmq.Context(); s = ctx.socket(zmq.ROUTER); s.bind(sys.argv[1])
print("ready", flush=True)
n = 0
while True:
    frames = s.recv_multipart()
    n += sum(len(f) for f in frames)
"""


def make_model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 2048), torch.nn.ReLU(),
        torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
        torch.nn.Linear(2048, 1024), torch.nn.ReLU(),
        torch.nn.Linear(1024, 10),
    )


def run(args, data, endpoint):
    """Trains `args.steps` steps; returns (seconds per step, watcher stats or None)."""
    x, y = data
    model = make_model(args.seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    watcher = None
    if endpoint:
        watcher = alphatop.watch(model, every=args.every, endpoint=endpoint, optimizer=opt,
                                 run="bench", linger_ms=0)
    gen = torch.Generator().manual_seed(args.seed)
    warmup = 5
    for step in range(args.steps + warmup):
        if step == warmup:
            t0 = time.perf_counter()
        idx = torch.randint(0, len(x), (args.batch,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    dt = (time.perf_counter() - t0) / args.steps
    stats = None
    if watcher:
        stats = watcher.stats
        watcher.close()
    return dt, stats


def snapshot_cost(args, endpoint, repeats=10):
    """Seconds for one snapshot (copy of every weight into the agent, queued to ZeroMQ)."""
    model = make_model(args.seed)
    with alphatop.watch(model, every=1, endpoint=endpoint, hook=None, linger_ms=0) as w:
        w.snapshot(0)
        t0 = time.perf_counter()
        for i in range(repeats):
            w.snapshot(i + 1)
        return (time.perf_counter() - t0) / repeats


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200, help="timed steps per run [200]")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the three variants [3]")
    p.add_argument("--every", type=int, default=50, help="snapshot interval [50]")
    p.add_argument("--batch", type=int, default=64, help="batch size [64]")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)

    digits = load_digits()
    data = (torch.tensor(digits.data / 16.0, dtype=torch.float32), torch.tensor(digits.target))
    nparams = sum(p.numel() for p in make_model(args.seed).parameters())
    print(f"MLP 64-2048-2048-1024-10: {nparams / 1e6:.2f}M parameters, batch {args.batch}, "
          f"{args.steps} steps per run, snapshot every {args.every}, 1 thread")

    tmp = tempfile.mkdtemp(prefix="alphatop-bench-")
    drained = "ipc://" + os.path.join(tmp, "sink.ipc")
    absent = "ipc://" + os.path.join(tmp, "nobody.ipc")
    sink = subprocess.Popen([sys.executable, "-c", SINK, drained], stdout=subprocess.PIPE, text=True)
    sink.stdout.readline()
    variants = {"plain": None, "drained": drained, "absent": absent}
    times = {name: [] for name in variants}
    last = {}
    try:
        for r in range(args.rounds):
            names = list(variants)
            names = names[r % 3:] + names[: r % 3]
            for name in names:
                dt, stats = run(args, data, variants[name])
                times[name].append(dt)
                last[name] = stats
                print(f"  round {r} {name:8s} {dt * 1e3:8.2f} ms/step", flush=True)
        cost = snapshot_cost(args, drained)
    finally:
        sink.kill()
        sink.wait()

    base = statistics.median(times["plain"])
    print(f"\nmedian step time: plain {base * 1e3:.2f} ms")
    for name in ("drained", "absent"):
        t = statistics.median(times[name])
        s = last[name]
        print(f"  watched, monitor {name:8s}: {t * 1e3:.2f} ms/step, overhead ratio "
              f"{t / base - 1:+.4f} ({(t / base - 1) * 100:+.2f}%); snapshots sent "
              f"{s['snapshots_sent']}, dropped {s['snapshots_dropped']}")
    print(f"one snapshot ({nparams * 4 / 1e6:.1f} MB): {cost * 1e3:.2f} ms = "
          f"{cost / (args.every * base) * 100:.3f}% of {args.every} steps (goal <= 2%)")


if __name__ == "__main__":
    main()
