# SPDX-License-Identifier: Apache-2.0
"""Shared by the end-to-end phase tests: one PyTorch example publishing to a real
`alphatop watch --headless`. Needs ALPHATOP_BIN (the alphatop program), the binding on
PYTHONPATH and ALPHATOP_LIB."""
import json
import os
import re
import subprocess
import sys

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")
PROGRESS = re.compile(r"step\s+(\d+)\s+train ([\d.]+)\s+test ([\d.]+)")


def run(tmp, name, trainer, trainer_args, watch_args, timeout):
    """Runs examples/TRAINER against a headless monitor. Returns (watch exit code, watch stderr,
    the trainer's [(step, train_acc, test_acc)], the monitor's stop event or None, the
    trainer's "stopped at step N" match or None, the monitor's events, the number of
    snapshots analysed). The monitor writes to files, not pipes: a pipe nobody reads until
    the end fills after ~20 snapshots and stalls the monitor, which then drops snapshots
    ("analysis is behind the trainer")."""
    endpoint = f"ipc://{tmp}/{name}.ipc"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out_path, err_path = os.path.join(tmp, f"{name}.out"), os.path.join(tmp, f"{name}.err")
    with open(out_path, "w") as wout_f, open(err_path, "w") as werr_f:
        watch = subprocess.Popen(
            [os.environ["ALPHATOP_BIN"], "watch", "--headless", "--no-record", "--listen",
             endpoint] + watch_args, stdout=wout_f, stderr=werr_f, text=True, env=env)
    trainer = subprocess.Popen(
        [sys.executable, os.path.join(EXAMPLES, trainer), "--publish", "--endpoint", endpoint]
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
    return watch.returncode, werr, curve, stop, stopped, events, len(analysed)
