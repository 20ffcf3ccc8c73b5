# SPDX-License-Identifier: Apache-2.0
"""End to end: the grokking example publishes to a real `alphatop watch --stop-on collapse`.

The no-weight-decay run must be stopped by the monitor after its test-accuracy peak and before
a 5-point drop (watch exits 3, the trainer prints "stopped at step N"); the weight-decay 0.01
control and an ordinary healthy run (PyTorch's defaults: init x1, AdamW lr 1e-3, weight decay
0.01, whose weight norm grows steadily) must run their course without a stop (watch exits 0
after --max-snapshots). A snapshot every 1000 steps, as in docs/detection.md. Needs
ALPHATOP_BIN (the alphatop program), the binding on PYTHONPATH, ALPHATOP_LIB, torch and
sklearn; about 5 minutes of one core.
"""
import os
import sys
import tempfile
import unittest

from e2e_monitor import run

TRAINER = "torch_grokking.py"


@unittest.skipUnless(os.environ.get("ALPHATOP_BIN"), "ALPHATOP_BIN not set")
class CollapseEndToEnd(unittest.TestCase):
    def test_no_weight_decay_run_is_stopped_during_the_decline(self):
        with tempfile.TemporaryDirectory() as tmp:
            rc, err, curve, stop, stopped, _, _ = run(
                tmp, "nowd", TRAINER, ["--every", "1000", "--seed", "0", "--steps", "80000"],
                ["--stop-on", "collapse", "--max-snapshots", "80"], timeout=1200)
        self.assertEqual(rc, 3, f"watch should exit 3 after a stop\n{err}")
        self.assertIsNotNone(stop, "the monitor should report a stop event")
        self.assertEqual(stop["rule"], "collapse")
        stop_step = stop["step"]
        peak_step, peak = max(((s, te) for s, _, te in curve), key=lambda x: x[1])
        at_stop = [te for s, _, te in curve if s <= stop_step][-1]
        print(f"\nno WD: peak {peak:.3f} at {peak_step}, stop at {stop_step} "
              f"(test {at_stop:.3f}): {stop['evidence']}", file=sys.stderr)
        self.assertGreater(stop_step, peak_step)
        self.assertGreater(at_stop, peak - 0.05)
        # the trainer honours the stop unless it had finished before the monitor caught up
        if stopped is not None:
            self.assertGreaterEqual(int(stopped.group(1)), stop_step)
            self.assertIn("collapse", stopped.group(2))
        else:
            self.assertEqual(curve[-1][0], 80000, "the trainer neither stopped nor finished")

    def check_not_stopped(self, name, trainer_args):
        with tempfile.TemporaryDirectory() as tmp:
            rc, err, curve, stop, stopped, _, analysed = run(
                tmp, name, TRAINER, trainer_args + ["--every", "1000", "--steps", "100000"],
                ["--stop-on", "collapse", "--max-snapshots", "100"], timeout=1500)
        self.assertIsNone(stop, f"{name} was stopped: {stop}")
        self.assertIsNone(stopped)
        self.assertEqual(rc, 0, err)
        self.assertGreaterEqual(len(curve), 100)
        # the monitor did judge the run (a few snapshots may drop on a loaded machine)
        self.assertGreaterEqual(analysed, 90)

    def test_weight_decay_control_is_not_stopped(self):
        self.check_not_stopped("wd", ["--seed", "0", "--weight-decay", "0.01"])

    def test_ordinary_healthy_run_is_not_stopped(self):
        self.check_not_stopped("healthy", ["--seed", "0", "--init-scale", "1", "--lr", "1e-3",
                                           "--weight-decay", "0.01"])


if __name__ == "__main__":
    unittest.main()
