#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Weight decay's cleanup, snapshot by snapshot, in a phase fixture (docs/detection.md).

For every snapshot from the fifth on: the span the tracker judges (the latest 5 snapshots,
extended back to the latest one at or before 70 % of the step), how far the summed squared
norm fell over it (least-squares fit of its log10 times the span's length, the statistic of
the memorised path to grokking), whether every layer's log_norm fell over it, and the sum's
distance below its running maximum. The summary compares the largest drop among snapshots
with every layer shrinking and test accuracy below --pre (0.3) with the drop at the first
snapshot at or above --jump (0.5), and gives the first of `confirm` snapshots in a row past
--threshold (0.06) after --memorised STEP: where the tracker's grokking phase begins.

usage: cleanup_margin.py FIXTURE [--memorised STEP] [--threshold X] [--pre A] [--jump A]
                         [--quiet]
"""
import argparse
import math

import numpy as np

SPAN_MIN, SPAN_SHARE, CONFIRM = 5, 0.3, 3


def load(path):
    """Steps with layers, and per step {layer: log_norm} and {scalar: value}."""
    layers, scalars = {}, {}
    for line in open(path):
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        step = int(f[1])
        if f[0] == "L":
            layers.setdefault(step, {})[f[2]] = float(f[5])
        elif f[0] == "S":
            scalars.setdefault(step, {})[f[2]] = float(f[3])
    return sorted(layers), layers, scalars


def slope(steps, values):
    """Least-squares slope per 1000 steps over the finite values; NaN with fewer than 3."""
    x = np.asarray(steps, float) / 1000.0
    y = np.asarray(values, float)
    ok = np.isfinite(y)
    if ok.sum() < 3:
        return math.nan
    return float(np.polyfit(x[ok] - x[ok][0], y[ok], 1)[0])


def rows(path):
    steps, layers, scalars = load(path)
    names = list(dict.fromkeys(n for s in steps for n in layers[s]))
    total = [math.log10(sum(10.0 ** v for v in layers[s].values())) for s in steps]
    peak = np.maximum.accumulate(total)
    for k in range(SPAN_MIN - 1, len(steps)):
        i0 = k + 1 - SPAN_MIN
        while i0 > 0 and steps[i0] > steps[k] * (1.0 - SPAN_SHARE):
            i0 -= 1
        span = steps[i0:k + 1]
        kstep = (span[-1] - span[0]) / 1000.0
        per_layer = [slope(span, [layers[s].get(n, math.nan) for s in span]) for n in names]
        trended = [s for s in per_layer if math.isfinite(s)]
        yield dict(step=steps[k], test=scalars.get(steps[k], {}).get("test_acc", math.nan),
                   drop=-slope(span, total[i0:k + 1]) * kstep,
                   every=bool(trended) and all(s < 0 for s in trended),
                   below_peak=peak[k] - total[k], span=span[0])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("fixture")
    p.add_argument("--memorised", type=int, default=0,
                   help="step of the over-fit (memorised) event; earlier snapshots do not count")
    p.add_argument("--threshold", type=float, default=0.06)
    p.add_argument("--pre", type=float, default=0.3)
    p.add_argument("--jump", type=float, default=0.5)
    p.add_argument("--quiet", action="store_true", help="the summary only")
    a = p.parse_args()
    pre, at_jump, run, since = None, None, [], None
    for r in rows(a.fixture):
        if not a.quiet:
            print(f"{r['step']:8d} test_acc {r['test']:.3f} span from {r['span']:8d} "
                  f"drop {r['drop']:+.3f} every layer {'shrinks' if r['every'] else 'no'} "
                  f"below peak {r['below_peak']:.3f}")
        if r["step"] <= a.memorised:
            continue
        if r["every"] and r["test"] < a.pre and (pre is None or r["drop"] > pre["drop"]):
            pre = r
        if at_jump is None and r["test"] >= a.jump:
            at_jump = r
        run = run + [r["step"]] if r["every"] and r["drop"] >= a.threshold else []
        if len(run) == CONFIRM and since is None:
            since = run
    print("summary: largest drop with every layer shrinking and test_acc < %g: %s; "
          "at test_acc >= %g: %s; grokking (%g) %s" % (
              a.pre, f"{pre['drop']:.3f} at {pre['step']}" if pre else "-", a.jump,
              f"{at_jump['drop']:.3f} at {at_jump['step']}"
              + ("" if at_jump["every"] else " (not every layer shrinking)") if at_jump else "-",
              a.threshold, f"since {since[0]}, confirmed at {since[-1]}" if since else "never"))


if __name__ == "__main__":
    main()
