"""End to end: the grokking example publishes to a real `alphatop watch --stop-on collapse`.

The no-weight-decay run must be stopped by the monitor after its test-accuracy peak and before
a 5-point drop (watch exits 3, the trainer prints "stopped at step N"); the weight-decay 0.01
control and an ordinary healthy run (PyTorch's defaults: init x1, AdamW lr 1e-3, weight decay
0.01, whose weight norm grows steadily) must run their course without a stop (watch exits 0
after --max-snapshots). A snapshot every 1000 steps, as in docs/detection.md. Needs
ALPHATOP_BIN (the alphatop program), the binding on PYTHONPATH, ALPHATOP_LIB, torch and
sklearn; about 5 minutes of one core.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TRAINER = os.path.join(HERE, "..", "..", "examples", "torch_grokking.py")
PROGRESS = re.compile(r"step\s+(\d+)\s+train ([\d.]+)\s+test ([\d.]+)")


def run(tmp, name, trainer_args, watch_args, timeout):
    """Runs the trainer against a headless monitor. The monitor writes to files, not pipes: a
    pipe nobody reads until the end fills after ~20 snapshots and stalls the monitor, which
    then drops snapshots ("analysis is behind the trainer")."""
    endpoint = f"ipc://{tmp}/{name}.ipc"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out_path, err_path = os.path.join(tmp, f"{name}.out"), os.path.join(tmp, f"{name}.err")
    with open(out_path, "w") as wout_f, open(err_path, "w") as werr_f:
        watch = subprocess.Popen(
            [os.environ["ALPHATOP_BIN"], "watch", "--headless", "--no-record", "--listen",
             endpoint] + watch_args, stdout=wout_f, stderr=werr_f, text=True, env=env)
    trainer = subprocess.Popen(
        [sys.executable, TRAINER, "--publish", "--endpoint", endpoint, "--every", "1000"]
        + trainer_args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # the trainer ends first (stopped, or done); then the monitor exits on its own
        _, terr = trainer.communicate(timeout=timeout)
        if trainer.returncode != 0:
            raise AssertionError(f"trainer failed ({trainer.returncode}):\n{terr[-3000:]}")
        try:
            watch.wait(timeout=120)
        except subprocess.TimeoutExpired:
            # The monitor still waits for --max-snapshots (a loaded machine dropped some):
            # end it; SIGTERM keeps its exit code (3 once a rule fired) and printed lines.
            watch.terminate()
            watch.wait(timeout=60)
    finally:
        for p in (watch, trainer):
            if p.poll() is None:
                p.kill()
                p.wait()
    with open(out_path) as f:
        wout = f.read()
    with open(err_path) as f:
        werr = f.read()
    curve = [(int(s), float(tr), float(te)) for s, tr, te in PROGRESS.findall(terr)]
    stopped = re.search(r"stopped at step (\d+): (.*)", terr)
    events = [json.loads(line) for line in wout.splitlines() if line.startswith("{")]
    stop = next((e for e in events if e.get("type") == "event" and e.get("kind") == "stop"), None)
    analysed = {e["step"] for e in events if e.get("type") == "layer"}
    return watch.returncode, werr, curve, stop, stopped, len(analysed)


@unittest.skipUnless(os.environ.get("ALPHATOP_BIN"), "ALPHATOP_BIN not set")
class CollapseEndToEnd(unittest.TestCase):
    def test_no_weight_decay_run_is_stopped_during_the_decline(self):
        with tempfile.TemporaryDirectory() as tmp:
            rc, err, curve, stop, stopped, _ = run(
                tmp, "nowd", ["--seed", "0", "--steps", "80000"],
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
            rc, err, curve, stop, stopped, analysed = run(
                tmp, name, trainer_args + ["--steps", "100000"],
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
