#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Snapshots of a model larger than the agent's budget, streamed into `alphatop watch --fast`.

A Llama-3.2-1B-shaped model (16 blocks of q/o 2048x2048, k/v 512x2048, gate/up 8192x2048,
down 2048x8192: 112 layers, 0.97 G parameters, 1.95 GB in bfloat16) with heavy-tailed seeded
weights (Gaussian noise plus 96 spikes of power-law strengths per layer: alpha near 3) is
trained by
a Python loop: each step SGD applies a small rank-one update to one block (the blocks in turn,
so every layer moves between two snapshots) and then sleeps --step-sleep seconds, standing for
the forward and backward an accelerator would run while the CPU idles. alphatop.watch(model,
every=N, optimizer=opt) with every other option at its default (the automatic byte budget)
publishes into `alphatop watch --headless --fast --no-record` with its default options (every
core), then the same with --threads 1.

Per monitor thread count it reports: each snapshot's time from its due step until every layer
has a result of it, or of a newer snapshot (fast mode analyses the newest waiting snapshot of a
layer; with an interval that lets the analysis keep up, it is its own). The first is cold (a
full Gram spectrum per layer), the others warm. Also the
layers' modes, the monitor's peak RSS (VmHWM); per run: snapshots dropped, the trainer's extra
RSS over its RSS before watch() against the agent's budget (and at its peak, the agent's bytes
and how much more freed heap glibc's malloc kept than before), and the trainer's time inside the
hook per snapshot against one plain copy of the same bytes into warm buffers.

    PYTHONPATH=python ALPHATOP_LIB=build/agent /usr/bin/python3 bench/bench_stream.py \\
        --alphatop build/tui/alphatop
"""

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import torch

import alphatop

SHAPES = (
    ("q_proj", 2048, 2048),
    ("k_proj", 512, 2048),
    ("v_proj", 512, 2048),
    ("o_proj", 2048, 2048),
    ("gate_proj", 8192, 2048),
    ("up_proj", 8192, 2048),
    ("down_proj", 2048, 8192),
)


def spiked(rows, cols, gen):
    """Heavy-tailed weights: N(0, 1/cols) noise plus 96 orthogonal spikes whose singular values
    fall off as 4 e k^-0.35 (e: the noise's largest singular value), which puts the fitted
    alpha near 3 with 50 to 100 eigenvalues in the tail."""
    w = torch.randn(rows, cols, generator=gen) / cols**0.5
    k = torch.arange(1, 97, dtype=torch.float32)
    u = torch.linalg.qr(torch.randn(rows, 96, generator=gen))[0]
    v = torch.linalg.qr(torch.randn(cols, 96, generator=gen))[0].T
    edge = 1 + (max(rows, cols) / cols) ** 0.5
    w += (u * (4.0 * edge * k**-0.35)) @ v
    return w.to(torch.bfloat16)


def make_model(blocks, seed):
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Module()
    model.layers = torch.nn.ModuleList()
    for _ in range(blocks):
        block = torch.nn.Module()
        for name, rows, cols in SHAPES:
            lin = torch.nn.Linear(cols, rows, bias=False, dtype=torch.bfloat16)
            with torch.no_grad():
                lin.weight.copy_(spiked(rows, cols, gen))
            setattr(block, name, lin)
        model.layers.append(block)
    return model


def rss(pid="self", field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


class Monitor:
    """`alphatop watch --headless --fast` as a child; its layer lines timed as they arrive."""

    def __init__(self, binary, endpoint, threads):
        args = [binary, "watch", "--headless", "--fast", "--no-record"]
        if threads:
            args += ["--threads", str(threads)]
        env = dict(os.environ, ALPHATOP_ENDPOINT=endpoint)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, env=env, text=True)
        self.lock = threading.Lock()
        self.results = {}  # layer name -> [(column step, arrival time)] of its results
        self.modes = {}
        self.drops = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            rec = json.loads(line)
            with self.lock:
                if rec["type"] == "layer":
                    self.results.setdefault(rec["name"], []).append((rec["step"], time.monotonic()))
                    self.modes[rec.get("mode")] = self.modes.get(rec.get("mode"), 0) + 1
                elif rec["type"] == "event" and rec["kind"] == "drop":
                    self.drops.append(rec["text"])

    def finished(self, step, layers):
        """When every one of the layers had a result of the snapshot at step or a newer one (fast
        mode analyses the newest waiting snapshot of a layer), else None."""
        with self.lock:
            if len(self.results) < layers:
                return None
            times = [min((t for s, t in r if s >= step), default=None) for r in self.results.values()]
        return None if None in times else max(times)

    def stop(self):
        peak = rss(self.proc.pid, "VmHWM")
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        return peak


class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


_libc = ctypes.CDLL(None)
_libc.mallinfo2.restype = Mallinfo2


def heap_free():
    """Bytes glibc's malloc holds free in its heaps (freed blocks it has not given back)."""
    return _libc.mallinfo2().fordblks


def plain_copy_seconds(model):
    """One copy of every weight into buffers allocated and touched beforehand, in the thread's
    CPU time (what the copy costs the training loop, whatever else runs): best of 3."""
    params = [p for p in model.parameters()]
    bufs = [torch.empty_like(p) for p in params]
    for b, p in zip(bufs, params):
        b.copy_(p)
    best = float("inf")
    for _ in range(3):
        t = time.thread_time()
        for b, p in zip(bufs, params):
            b.copy_(p)
        best = min(best, time.thread_time() - t)
    return best


def cpu_seconds(pid):
    """User + system CPU time of process pid so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def train_step(model, opt, step, gen):
    """One SGD step: a small rank-one update of block step % blocks (its gradient a random
    outer product, scaled like the weights' noise)."""
    for p in model.layers[step % len(model.layers)].parameters():
        rows, cols = p.shape
        u = torch.randn(rows, generator=gen).to(p.dtype)
        v = (torch.randn(cols, generator=gen) / cols**0.5).to(p.dtype)
        p.grad = torch.outer(u, v)
    opt.step()
    opt.zero_grad(set_to_none=True)


def run(args, model, threads, endpoint):
    mon = Monitor(args.alphatop, endpoint, threads)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    layers = sum(1 for _ in model.parameters())
    gen = torch.Generator().manual_seed(1)
    # The loop's own memory settles first (its gradients come and go): the agent's is what
    # watching adds beyond the largest RSS of a round of plain steps, sampled alike (mid-step,
    # a block's gradients are alive: up to 116 MiB that a sample between steps never sees).
    peak = [0, 0, 0]  # the trainer's peak RSS; the agent's bytes and malloc's free then
    stop = threading.Event()
    agent = [None]

    def sample():
        while not stop.is_set():
            r = rss()
            if r > peak[0]:
                # After close() the stats have no agent's counters left.
                a = agent[0]
                held = a.stats.get("bytes_in_flight", 0) if a is not None else 0
                peak[:] = [r, held, heap_free()]
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for step in range(len(model.layers)):
        train_step(model, opt, step, gen)
    base = max(peak[0], rss())
    base_free = heap_free()
    watcher = alphatop.watch(model, every=args.every, optimizer=opt, endpoint=endpoint)
    agent[0] = watcher.agent
    in_hook = [0.0]
    advance = watcher._advance

    def timed(step):
        t = time.thread_time()
        try:
            return advance(step)
        finally:
            in_hook[0] += time.thread_time() - t

    watcher._advance = timed  # the optimizer hook looks it up at each step
    sweeps = []  # (column step, seconds to its last result, hook CPU seconds, monitor CPU s)
    step, unmeasured = 0, 0
    t_due, hook_at_due, column, hook_open, cpu_due = None, 0.0, None, None, 0.0
    while len(sweeps) < 1 + args.warm:
        before, t_before = in_hook[0], time.monotonic()
        # The hook in opt.step() counts the step and publishes when a snapshot is due or open.
        train_step(model, opt, step, gen)
        step += 1
        if step % args.every == 0:
            if t_due is None:
                t_due, hook_at_due, column, hook_open = t_before, before, step, None
                cpu_due = cpu_seconds(mon.proc.pid)
            else:
                unmeasured += 1  # due while the last one was still being analysed
        if t_due is not None:
            s = watcher.stats
            if s["sweep_layers"] == 0 and hook_open is None:
                hook_open = in_hook[0] - hook_at_due  # the snapshot has gone out
            done = mon.finished(column, layers)
            if done is not None:
                sweeps.append((column, done - t_due, hook_open, cpu_seconds(mon.proc.pid) - cpu_due))
                t_due = None
        time.sleep(args.step_sleep)
    stats = watcher.stats
    watcher.close()
    stop.set()
    sampler.join()
    mon_peak = mon.stop()
    extra = (peak[0] - base, peak[1], peak[2] - base_free)
    return sweeps, stats, extra, mon_peak, dict(mon.modes), mon.drops, unmeasured


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--alphatop", required=True, help="the alphatop binary")
    p.add_argument("--threads", default="0,1",
                   help="monitor thread counts to run, 0 = its default, every core [0,1]")
    p.add_argument("--blocks", type=int, default=16, help="transformer blocks [16]")
    p.add_argument("--every", type=int, default=96, help="snapshot interval in steps [96]")
    p.add_argument("--warm", type=int, default=2, help="warm snapshots after the cold one [2]")
    p.add_argument("--step-sleep", type=float, default=0.5,
                   help="seconds each step idles, standing for accelerator work [0.5]")
    p.add_argument("--lr", type=float, default=1e-3, help="SGD step [1e-3]")
    args = p.parse_args()
    torch.set_num_threads(1)
    t = time.perf_counter()
    model = make_model(args.blocks, seed=7)
    nbytes = sum(q.numel() * q.element_size() for q in model.parameters())
    print(f"model: {args.blocks} blocks, {sum(1 for _ in model.parameters())} layers, "
          f"{nbytes / 1e9:.2f} GB bf16, built in {time.perf_counter() - t:.0f} s")
    with open("/proc/loadavg") as f:
        print("load average before:", " ".join(f.read().split()[:3]))
    copy = plain_copy_seconds(model)
    print(f"one plain copy of the weights: {copy:.3f} s CPU ({nbytes / copy / 1e9:.1f} GB/s)")
    endpoint = f"ipc://{tempfile.gettempdir()}/at-bench-stream-{os.getpid()}.ipc"
    results = {}
    for threads in [int(x) for x in args.threads.split(",")]:
        sweeps, stats, extra, mon_peak, modes, drops, unmeasured = run(args, model, threads, endpoint)
        results[threads] = sweeps
        label = "default (every core)" if threads == 0 else str(threads)
        print(f"\nmonitor threads: {label}")
        for i, (column, secs, hook, cpu) in enumerate(sweeps):
            kind = "cold" if i == 0 else "warm"
            print(f"  snapshot at step {column} ({kind}): analysed {secs:.1f} s after its due step"
                  f" (monitor CPU {cpu:.1f} s); trainer CPU in the hook while it went out"
                  f" {hook:.3f} s = {hook / copy:.2f} plain copies")
        print(f"  modes: {modes}; due steps while the analysis of the last was running: "
              f"{unmeasured}")
        print(f"  snapshots sent {stats['snapshots_sent']}, dropped {stats['snapshots_dropped']},"
              f" layers deferred {stats['layers_deferred']}, monitor drop events {len(drops)}")
        budget = stats["budget_bytes"]
        extra, held, kept = extra
        print(f"  trainer extra RSS {extra / 2**20:.0f} MiB, budget {budget / 2**20:.0f} MiB"
              f" (+64 MiB allowed: {'ok' if extra <= budget + (64 << 20) else 'OVER'});"
              f" agent peak in flight {stats['peak_in_flight'] / 2**20:.0f} MiB; at the RSS peak"
              f" the agent held {held / 2**20:.0f} MiB and malloc kept {kept / 2**20:+.0f} MiB"
              f" more freed heap than before watch()")
        print(f"  monitor peak RSS {mon_peak / 2**20:.0f} MiB")
        with open("/proc/loadavg") as f:
            print("  load average after:", " ".join(f.read().split()[:3]))
    if 0 in results and 1 in results and results[0] and results[1]:
        for i, name in ((0, "cold"), (len(results[0]) - 1, "warm")):
            r = results[1][i][1] / results[0][i][1]
            print(f"\n{name}: every core vs 1 thread: {results[1][i][1]:.1f} s / "
                  f"{results[0][i][1]:.1f} s = {r:.2f}x throughput (monitor CPU "
                  f"{results[0][i][3]:.1f} s / {results[1][i][3]:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
