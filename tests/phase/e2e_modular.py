# SPDX-License-Identifier: Apache-2.0
"""End to end: the transformer on modular addition publishes to a real `alphatop watch
--stop-on collapse`.

Seed 0 with weight decay 1 memorises at once and groks at ~2400 steps (test accuracy >= 0.9):
the monitor must report the run phases pre-grokking, over-fit (memorised: burnt layers before
any generalization) and grokking, the grokking phase starting within 500 steps of the
test-accuracy jump, and must not stop the run. Seed 0 without weight decay memorises and never
generalises while its weight norm grows with flat alphas (before the run-phase gate on
collapse, this was stopped at step 1300): it must not be stopped either. A snapshot every 100
steps, as in docs/detection.md. Needs ALPHATOP_BIN, the binding on PYTHONPATH, ALPHATOP_LIB and
torch; about 3 minutes of one core.
"""
import os
import sys
import tempfile
import unittest

from e2e_monitor import run

TRAINER = "torch_modular.py"


def run_phases(events):
    return [(e["to"], e["since"]) for e in events
            if e.get("type") == "event" and e.get("kind") == "run_phase"]


@unittest.skipUnless(os.environ.get("ALPHATOP_BIN"), "ALPHATOP_BIN not set")
class ModularEndToEnd(unittest.TestCase):
    def watch(self, name, trainer_args, steps):
        with tempfile.TemporaryDirectory() as tmp:
            snaps = steps // 100
            rc, err, curve, stop, stopped, events, analysed = run(
                tmp, name, TRAINER, trainer_args + ["--seed", "0", "--every", "100",
                                                    "--steps", str(steps)],
                ["--stop-on", "collapse", "--max-snapshots", str(snaps)], timeout=1500)
        self.assertIsNone(stop, f"{name} was stopped: {stop}")
        self.assertIsNone(stopped)
        self.assertEqual(rc, 0, err)
        self.assertEqual(curve[-1][0], steps)
        # the monitor did judge the run (a snapshot may drop on a loaded machine)
        self.assertGreaterEqual(analysed, snaps - 3)
        return curve, run_phases(events)

    def test_grokking_run_is_seen_grokking_and_not_stopped(self):
        curve, phases = self.watch("wd1", [], 3000)
        memorised = next(s for s, tr, _ in curve if tr >= 0.99)
        grokked = next(s for s, _, te in curve if te >= 0.9)
        print(f"\nWD=1: memorised at {memorised}, test acc >= 0.9 at {grokked}, run phases "
              f"{phases}", file=sys.stderr)
        self.assertLess(memorised, 500)
        self.assertEqual([p for p, _ in phases], ["pre-grokking", "over-fit", "grokking"])
        self.assertLess(abs(phases[-1][1] - grokked), 500)

    def test_memorising_run_is_not_stopped(self):
        curve, phases = self.watch("wd0", ["--weight-decay", "0"], 1500)
        print(f"\nWD=0: test acc at most {max(te for _, _, te in curve):.3f}, run phases "
              f"{phases}", file=sys.stderr)
        self.assertLess(max(te for _, _, te in curve), 0.2)
        self.assertNotIn("grokking", [p for p, _ in phases])


if __name__ == "__main__":
    unittest.main()
