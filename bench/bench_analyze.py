#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""alphatop.analyze() on a GPT-2-small-shaped model, side by side with `alphatop scan` of the
same weights and with a float64 numpy reference (SVD + power-law fit, the reference's method).

The model is the GPT-2-style module tree of tests/python/gpt2_tree.py at GPT-2 small's sizes
(12 blocks, 768 wide, vocabulary 50257, context 1024: 124M parameters; Hugging Face Conv1D
layers, lm_head tied to the token embedding) with seeded Student-t (df 2.5) weights, so the fits
land where trained weights do. WeightWatcher itself is not installable here; the numpy reference
does what it does per layer: np.linalg.svd (LAPACK dgesdd) of the float64 matrix, then the
O(n^2) xmin scan of docs/metrics.md section 3, over the layers it analyses (max_N 50000: the
token embedding is skipped). Everything runs on one thread (OPENBLAS_NUM_THREADS=1).

    PYTHONPATH=python:tests/python ALPHATOP_CORE_LIB=build/core ALPHATOP_BIN=build/tui/alphatop \\
        /usr/bin/python3 bench/bench_analyze.py
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import alphatop  # noqa: E402
from alphatop import safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
from gpt2_tree import GPT2LMHeadModel, heavy_tailed_  # noqa: E402


def reference_alpha(w):
    """alpha of one matrix the reference's way: float64 dgesdd, then the xmin scan."""
    ev = np.linalg.svd(np.asarray(w, np.float64), compute_uv=False) ** 2
    x = np.sort(ev[ev > 1e-5])
    n = len(x)
    logs = np.log(x)
    suffix = np.cumsum(logs[::-1])[::-1]
    best_d, best_alpha = np.inf, np.nan
    for i in range(n - 1):
        k = n - i
        alpha = 1 + k / (suffix[i] - k * logs[i])
        if not alpha > 1:
            continue
        d = np.max(np.abs(1 - (x[i:] / x[i]) ** (1 - alpha) - np.arange(k) / k))
        if d < best_d:
            best_d, best_alpha = d, alpha
    return best_alpha


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=12, help="transformer blocks [12]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-reference", action="store_true", help="skip the numpy reference")
    args = p.parse_args()
    torch.set_num_threads(1)
    bin_ = os.environ.get("ALPHATOP_BIN", "alphatop")

    t_build, model = timed(lambda: heavy_tailed_(
        GPT2LMHeadModel(vocab=50257, n_ctx=1024, n_embd=768, n_layer=args.layers, n_head=12),
        seed=args.seed))
    params = sum(p.numel() for p in model.parameters())
    print(f"model: GPT-2-style, {args.layers} blocks, {params / 1e6:.1f}M parameters "
          f"(built in {t_build:.1f} s); load average {os.getloadavg()[0]:.1f}")

    rows = []
    t, exact = timed(lambda: alphatop.analyze(model))
    rows.append(("alphatop.analyze(model)", t, exact))
    t, fast = timed(lambda: alphatop.analyze(model, fast=True))
    rows.append(("alphatop.analyze(model, fast=True)", t, fast))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "gpt2.safetensors")
        layers = alphatop.find_layers(model)
        safetensors.save(path, {l.name: l.tensor().contiguous().numpy() for l in layers})
        t, from_file = timed(lambda: alphatop.analyze(path))
        rows.append(("alphatop.analyze(path)", t, from_file))
        for extra in ([], ["--fast"]):
            cmd = [bin_, "scan", "--json", *extra, path]
            t, _ = timed(lambda: subprocess.run(cmd, capture_output=True, check=False))
            rows.append(("alphatop scan --json " + " ".join(extra + ["FILE"]), t, None))
    analysed = exact[exact.status == "success"]
    if not args.no_reference:
        by_name = {l.name: l for l in layers}
        t, ref = timed(lambda: {n: reference_alpha(by_name[n].tensor().numpy())
                                for n in analysed.name})
        rows.append(("numpy float64 SVD + fit (reference)", t, None))
        diff = max(abs(ref[n] - a) for n, a in zip(analysed.name, analysed.alpha))
        print(f"largest |alpha - reference alpha| over {len(ref)} layers: {diff:.2e}")
    print(f"layers analysed: {len(analysed)} (skipped: "
          f"{', '.join(exact[exact.status == 'skipped'].name)})")
    print(f"fast vs exact: largest |alpha difference| "
          f"{(fast.alpha - exact.alpha)[exact.status == 'success'].abs().max():.2e}")
    print(f"\n{'':40s} {'seconds':>8s} {'per layer':>10s}")
    for what, seconds, _ in rows:
        print(f"{what:40s} {seconds:8.2f} {1000 * seconds / len(analysed):8.0f} ms")
    print("\nsummary:", {k: round(v, 4) for k, v in alphatop.get_summary(exact).items()})


if __name__ == "__main__":
    main()
