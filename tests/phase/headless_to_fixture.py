#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Converts `alphatop watch --headless` output (JSON lines) into a phase fixture (the format of
tests/phase/fixture.h), so a run watched live can be replayed through phase_replay and the
tests. Layer records of view "w" become L lines, scalars S lines; other lines are skipped. The
monitor's analysis threads may interleave the layers of neighbouring snapshots: records are
grouped by step, in step order.

usage: headless_to_fixture.py WATCH_OUTPUT [--scalars train_acc,test_acc] > fixture.txt
"""
import argparse
import json
import os


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("path")
    p.add_argument("--scalars", default="train_acc,test_acc")
    p.add_argument("--every", type=int, default=0, help="keep only steps divisible by this")
    a = p.parse_args()
    keep = set(a.scalars.split(","))
    by_step = {}
    for line in open(a.path):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        step = rec.get("step")
        if step is None or (a.every and step % a.every):
            continue
        out = by_step.setdefault(step, [])
        if rec.get("type") == "scalars":
            for k, v in sorted(rec["values"].items()):
                if k in keep and v is not None:
                    out.append(f"S {step} {k} {v:.4f}")
        elif rec.get("type") == "layer" and rec.get("view", "w") == "w":
            if rec.get("status") == "skipped":
                continue
            alpha = rec["alpha"] if rec.get("status") == "success" else -1
            ratio = rec.get("trap_max_ratio") or 0.0
            traps = rec.get("num_traps")
            out.append(f"L {step} {rec['name']} {rec['num_evals']} {alpha:.4f} "
                       f"{rec['log_norm']:.5f} {rec['log_spectral_norm']:.4f} "
                       f"{rec.get('max_abs', float('nan')):.4f} "
                       f"{-1 if traps is None else traps} {ratio:.3f}")
    print(f"# from alphatop watch --headless: {os.path.basename(a.path)}")
    for step in sorted(by_step):
        for line in by_step[step]:
            print(line)


if __name__ == "__main__":
    main()
