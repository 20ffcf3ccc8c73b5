#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Per-snapshot HTSR metrics of a torch_grokking.py --dump directory, as a phase fixture.

Reads DIR/log.jsonl and DIR/wSTEP.npz (fc1, fc2, fc3 weights) and writes the text format the
phase tests and the replay tool read (tests/phase/fixture.h):

    # comment
    S <step> <name> <value>                        a logged scalar
    L <step> <layer> <num_evals> <alpha> <log_norm> <log_spectral_norm> <max_abs> <num_traps>
      <trap_max_ratio>

one S line per scalar and one L line per layer, snapshot by snapshot. alpha is -1 for a failed
fit. The metrics are computed here with numpy, independently of core, from the formulas in
docs/metrics.md (sections 2-5): the power-law fit by the naive O(n^2) scan; traps from a
mean-centred, seeded shuffle with the bulk edge s2 (sqrt(N) + sqrt(M))^2 plus the Tracy-Widom
margin of section 5 in the same units.

usage: dump_metrics.py DIR [--every STEPS] [--max-step STEP] [--seed S] [--scalars A,B]
                       > fixture.txt
"""
import argparse
import json
import os
import sys

import numpy as np


def powerlaw_alpha(evals):
    x = np.sort(evals[evals > 1e-5]).astype(np.float64)
    n = len(x)
    if n < 2:
        return -1.0
    logs = np.log(x)
    suffix = np.cumsum(logs[::-1])[::-1]
    best_d, best_a = np.inf, -1.0
    for i in range(n - 1):
        k = n - i
        denom = suffix[i] - k * logs[i]
        a = 1.0 + k / denom if denom > 0 else np.inf
        if not np.isfinite(a):
            continue
        if a <= 1:
            d = 1.0
        else:
            t = np.arange(k)
            d = np.max(np.abs(1.0 - (x[i:] / x[i]) ** (1.0 - a) - t / k))
        if d < best_d:
            best_d, best_a = d, a
    return best_a


def traps(w, rng):
    """Centred, shuffled copy of w: (count beyond the edge + TW margin, largest / edge)."""
    n, m = max(w.shape), min(w.shape)
    c = (w.astype(np.float64) - w.mean()).ravel()
    s2 = c.var()
    shuffled = rng.permutation(c).reshape(w.shape)
    lam = np.linalg.svd(shuffled, compute_uv=False) ** 2
    edge = s2 * (np.sqrt(n) + np.sqrt(m)) ** 2
    q = n / m
    bulk = (1.0 + 1.0 / np.sqrt(q)) ** 2
    tw = q ** -0.5 * bulk ** (2.0 / 3.0) * m ** (-2.0 / 3.0)
    threshold = s2 * n * (bulk + np.sqrt(tw))
    count = int(np.sum(lam > threshold))
    return count, (float(lam.max() / edge) if count else 0.0)


def layer_line(step, name, w, rng):
    lam = np.linalg.svd(w.astype(np.float64), compute_uv=False) ** 2
    alpha = powerlaw_alpha(lam)
    nt, ratio = traps(w, rng)
    return (f"L {step} {name} {min(w.shape)} {alpha:.4f} {np.log10(lam.sum()):.5f} "
            f"{np.log10(lam.max()):.4f} {np.abs(w).max():.4f} {nt} {ratio:.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir")
    p.add_argument("--every", type=int, default=0, help="keep only steps divisible by this")
    p.add_argument("--max-step", type=int, default=0, help="stop after this step")
    p.add_argument("--seed", type=int, default=0, help="seed of the traps' shuffle")
    p.add_argument("--layers", default="fc1,fc2,fc3")
    p.add_argument("--scalars", default="train_acc,test_acc,weight_norm")
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    args = json.load(open(os.path.join(a.dir, "args.json")))
    print(f"# {os.path.basename(os.path.normpath(a.dir))}: torch_grokking.py "
          + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in args.items()
                     if k in ("seed", "per_class", "width", "lr", "weight_decay",
                              "init_scale", "steps")))
    for line in open(os.path.join(a.dir, "log.jsonl")):
        rec = json.loads(line)
        step = rec["step"]
        if a.max_step and step > a.max_step:
            break
        if a.every and step % a.every:
            continue
        for key in a.scalars.split(","):
            print(f"S {step} {key} {rec[key]:.4f}")
        ws = np.load(os.path.join(a.dir, f"w{step:07d}.npz"))
        for name in a.layers.split(","):
            print(layer_line(step, name, ws[name], rng))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
