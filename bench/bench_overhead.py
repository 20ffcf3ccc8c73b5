#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Overhead of alphatop.watch() on a PyTorch training loop (issue 4: goal <= 2% of step time).

An MLP of ~6.4M parameters (64-2048-2048-1024-10) trained with SGD on scikit-learn's digits,
one thread, seeded. One training run alternates blocks of `every` steps between three
variants -- plain, watched with a monitor draining (a pyzmq sink process), watched with no
monitor at all -- rotating their order every round, so that drifts in machine load hit every
variant alike. Each watched block ends with one snapshot, so a watched block costs exactly
what watch(every=N) costs per N steps: the per-step hook plus one snapshot.

Reports, per variant, the median step time and the overhead as a ratio against plain (also
per round, against the plain block of the same round), in three clocks: the trainer thread's
CPU time (what watching costs the training loop; insensitive to other processes on a busy
machine), the process's CPU time (adds ZeroMQ's I/O thread, which runs beside the loop on
another core) and wall time (what a user sees on an idle machine). Plus the cost of one
snapshot, measured directly.

    PYTHONPATH=python ALPHATOP_LIB=build/agent /usr/bin/python3 bench/bench_overhead.py
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

# The sink exits when its parent does (its parent id changes), even if the bench is killed.
SINK = r"""
import os, sys, zmq
parent = os.getppid()
ctx = zmq.Context(); s = ctx.socket(zmq.ROUTER); s.bind(sys.argv[1])
print("ready", flush=True)
while os.getppid() == parent:
    if s.poll(500):
        s.recv_multipart()
"""


def make_model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 2048), torch.nn.ReLU(),
        torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
        torch.nn.Linear(2048, 1024), torch.nn.ReLU(),
        torch.nn.Linear(1024, 10),
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=8, help="rounds of the three variants [8]")
    p.add_argument("--every", type=int, default=50, help="snapshot interval = block size [50]")
    p.add_argument("--batch", type=int, default=64, help="batch size [64]")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    model = make_model(args.seed)
    nparams = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(args.seed)
    print(f"MLP 64-2048-2048-1024-10: {nparams / 1e6:.2f}M parameters, batch {args.batch}, "
          f"blocks of {args.every} steps, {args.rounds} rounds, 1 thread", flush=True)

    tmp = tempfile.mkdtemp(prefix="alphatop-bench-")
    drained = "ipc://" + os.path.join(tmp, "sink.ipc")
    sink = subprocess.Popen([sys.executable, "-c", SINK, drained], stdout=subprocess.PIPE, text=True)
    sink.stdout.readline()
    watchers = {
        "plain": None,
        "drained": alphatop.watch(model, every=args.every, endpoint=drained, hook=None,
                                  run="bench-drained", linger_ms=0),
        "absent": alphatop.watch(model, every=args.every, endpoint="ipc://" + os.path.join(
            tmp, "nobody.ipc"), hook=None, run="bench-absent", linger_ms=0),
    }
    names = list(watchers)

    clocks = {"thread CPU": time.thread_time, "process CPU": time.process_time,
              "wall": time.perf_counter}

    def block(watcher):
        t0 = {name: clock() for name, clock in clocks.items()}
        for _ in range(args.every):
            idx = torch.randint(0, len(x), (args.batch,), generator=gen)
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if watcher is not None:
                watcher.step()  # counts; the block's last step is a multiple of `every`
        return {name: (clock() - t0[name]) / args.every for name, clock in clocks.items()}

    times = {name: [] for name in names}
    try:
        block(None)  # warm-up: first-touch allocations, caches
        for r in range(args.rounds):
            for name in names[r % 3:] + names[: r % 3]:
                times[name].append(block(watchers[name]))
            print(f"  round {r} (thread CPU / wall ms per step): " + "  ".join(
                f"{n} {times[n][-1]['thread CPU'] * 1e3:.1f} / {times[n][-1]['wall'] * 1e3:.1f}"
                for n in names), flush=True)
        # One snapshot measured directly against the drained monitor, with a pause between
        # repeats as in training (the sink drains, the agent frees the previous buffers).
        w = watchers["drained"]
        costs = []
        for i in range(5):
            time.sleep(1.0)
            t0 = time.thread_time()
            w.snapshot(10**9 + i)
            costs.append(time.thread_time() - t0)
        cost = statistics.median(costs)
        stats = {name: watchers[name].stats for name in names[1:]}
    finally:
        for w in watchers.values():
            if w is not None:
                w.close()
        sink.kill()
        sink.wait()

    for clock in clocks:
        series = {n: [t[clock] for t in times[n]] for n in names}
        base = statistics.median(series["plain"])
        print(f"\n{clock}: plain {base * 1e3:.2f} ms/step (median)")
        for name in names[1:]:
            t = statistics.median(series[name])
            paired = statistics.median(a / b - 1 for a, b in zip(series[name], series["plain"]))
            print(f"  watched, monitor {name:7s}: {t * 1e3:.2f} ms/step, overhead ratio "
                  f"{t / base - 1:+.4f} (median of per-round ratios {paired:+.4f})")
    for name in names[1:]:
        s = stats[name]
        print(f"monitor {name}: snapshots sent {s['snapshots_sent']}, "
              f"dropped {s['snapshots_dropped']}")
    base = statistics.median(t["thread CPU"] for t in times["plain"])
    print(f"one snapshot ({nparams * 4 / 1e6:.1f} MB): {cost * 1e3:.2f} ms trainer CPU = "
          f"{cost / (args.every * base):.4f} of {args.every} plain steps (goal <= 0.02)")


if __name__ == "__main__":
    main()
