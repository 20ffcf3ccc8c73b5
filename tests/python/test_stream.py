# SPDX-License-Identifier: Apache-2.0
"""alphatop.watch() into the real monitor (`alphatop watch --headless`): models larger than the
byte budget, a layer that never fits, bf16 on the wire, and a torch.distributed run whose ranks
hold slices of the same layers (docs/python.md, "Models of any size", "Distributed training")."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings

import torch
from torch import nn

import alphatop
from alphatop import safetensors
from sharded_model import full

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 120


class Monitor:
    """`alphatop watch --headless --no-record` with extra args; its JSON lines collected."""

    def __init__(self, endpoint, *args):
        self.proc = subprocess.Popen(
            [os.environ["ALPHATOP_BIN"], "watch", "--headless", "--no-record", "--listen",
             endpoint, *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def finish(self):
        """Waits for the monitor to exit by itself (--max-snapshots); its exit code."""
        rc = self.proc.wait(timeout=TIMEOUT)
        self.reader.join(timeout=10)
        return rc

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=TIMEOUT)
        self.reader.join(timeout=10)

    def layers(self):
        return [r for r in self.lines if r["type"] == "layer"]

    def events(self, kind):
        return [r for r in self.lines if r["type"] == "event" and r["kind"] == kind]


def numbers(rec):
    """The record's metric columns: every number but the steps."""
    return {k: v for k, v in rec.items()
            if isinstance(v, (int, float)) and k not in ("step", "weights_step")}


def spiked(rows, cols, seed):
    """Seeded weights with a power-law tail of spikes (alpha near 3)."""
    g = torch.Generator().manual_seed(seed)
    u, _, v = torch.linalg.svd(torch.randn(rows, cols, generator=g), full_matrices=False)
    s = torch.arange(1, min(rows, cols) + 1, dtype=torch.float32) ** -0.5 * 4
    return torch.randn(rows, cols, generator=g) / cols**0.5 + (u * s) @ v


def stack(n, rows, cols, dtype):
    model = nn.Sequential()
    for i in range(n):
        lin = nn.Linear(cols, rows, bias=False)
        with torch.no_grad():
            lin.weight.copy_(spiked(rows, cols, 100 + i))
        model.add_module(f"l{i}", lin.to(dtype))
    return model


def publish_until_sent(watcher, count, step_sleep=0.005):
    """Explicit steps until `count` snapshots went out whole (30 s at most)."""
    deadline = time.monotonic() + 30
    while watcher.stats["snapshots_sent"] < count and time.monotonic() < deadline:
        watcher.step()
        time.sleep(step_sleep)
    return watcher.stats


class StreamTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.endpoint = "ipc://" + os.path.join(self.tmp.name, "mon.ipc")

    def tearDown(self):
        self.tmp.cleanup()

    def test_larger_than_the_budget_streams_through(self):
        # 12 layers of 256 x 192 bfloat16 (96 KiB each, 1.1 MiB a snapshot) through 256 KiB: every
        # snapshot goes out over several steps, nothing is dropped, and each result equals
        # `alphatop scan` of the same weights widened to float32 (bf16 widens exactly).
        model = stack(12, 256, 192, torch.bfloat16)
        mon = Monitor(self.endpoint, "--max-snapshots", "2")
        w = alphatop.watch(model, every=1000, hook=None, endpoint=self.endpoint,
                           budget_bytes=256 << 10)
        w.step(step=999)
        stats = publish_until_sent(w, 1)
        w.step(step=1999)
        stats = publish_until_sent(w, 2)
        w.close()
        self.assertEqual(mon.finish(), 0)
        self.assertEqual(stats["snapshots_sent"], 2)
        self.assertEqual(stats["snapshots_dropped"], 0)
        self.assertEqual(stats["layers_sent"], 24)
        self.assertLessEqual(stats["peak_in_flight"], 256 << 10)
        self.assertEqual(mon.events("drop"), [])
        path = os.path.join(self.tmp.name, "model.safetensors")
        safetensors.save(path, {n: p.detach().float().numpy() for n, p in model.named_parameters()})
        out = subprocess.run([os.environ["ALPHATOP_BIN"], "scan", "--json", path],
                             capture_output=True, text=True, check=True).stdout
        scan = {r["name"]: r for r in map(json.loads, out.splitlines()) if r["type"] == "layer"}
        got = mon.layers()
        self.assertEqual(len(got), 24)
        for rec in got:
            self.assertIn(rec["step"], (1000, 2000))
            want = numbers(scan[rec["name"]])
            have = {k: v for k, v in numbers(rec).items() if k in want}
            self.assertGreaterEqual(len(have), 20)
            self.assertEqual(have, {k: want[k] for k in have}, rec["name"])
        # Later passes copied later weights: some layers say their own step.
        self.assertTrue(any(r.get("weights_step", r["step"]) > r["step"] for r in got))

    def test_a_layer_larger_than_the_budget_is_said_once(self):
        model = nn.Sequential(nn.Linear(16, 16, bias=False), nn.Linear(512, 256, bias=False))
        mon = Monitor(self.endpoint, "--max-snapshots", "2")
        w = alphatop.watch(model, every=1, hook=None, endpoint=self.endpoint,
                           budget_bytes=64 << 10)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            publish_until_sent(w, 2)
        stats = w.stats
        w.close()
        self.assertEqual(mon.finish(), 0)
        said = [c for c in caught if issubclass(c.category, RuntimeWarning)]
        self.assertEqual(len(said), 1)
        self.assertIn("1.weight", str(said[0].message))
        self.assertIn("larger than the byte budget (65536)", str(said[0].message))
        self.assertGreaterEqual(stats["layers_skipped"], 2)
        self.assertEqual(stats["snapshots_dropped"], 0)
        info = [e for e in mon.events("info") if e.get("layer") == "1.weight"]
        self.assertEqual(len(info), 1)
        self.assertIn("left out of every snapshot", info[0]["text"])
        self.assertEqual({r["name"] for r in mon.layers()}, {"0.weight"})

    def _ranks(self, mode, endpoint):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.environ["PYTHONPATH"]]))
        procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "sharded_rank.py"),
                                   str(r), str(port), endpoint, mode],
                                  stdout=subprocess.PIPE, text=True, env=env)
                 for r in range(2)]
        outs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
        for p in procs:
            self.assertEqual(p.returncode, 0)
        return [json.loads(o.strip().splitlines()[-1]) for o in outs]

    def test_sharded_ranks_equal_the_unsharded_model(self):
        # Two processes (gloo, localhost) hold rows of fc1, columns of fc2 and head whole; the
        # monitor assembles each layer: every result equals the unsharded model's.
        mon = Monitor(self.endpoint, "--max-snapshots", "1")
        ranks = self._ranks("tp", self.endpoint)
        self.assertEqual(mon.finish(), 0)
        self.assertTrue(all(r["publishes"] for r in ranks))
        self.assertEqual(mon.events("drop"), [])
        sharded = {r["name"]: r for r in mon.layers()}
        self.assertEqual(sorted(sharded), ["fc1.weight", "fc2.weight", "head.weight"])
        self.assertEqual(sharded["fc1.weight"]["shape"], [128, 96])
        self.assertEqual(sharded["fc2.weight"]["shape"], [80, 96])
        ref_ep = "ipc://" + os.path.join(self.tmp.name, "ref.ipc")
        ref = Monitor(ref_ep, "--max-snapshots", "1")
        w = alphatop.watch(full(), every=1, hook=None, endpoint=ref_ep)
        publish_until_sent(w, 1)
        w.close()
        self.assertEqual(ref.finish(), 0)
        whole = {r["name"]: r for r in ref.layers()}
        self.assertEqual(sorted(whole), sorted(sharded))
        for name, rec in whole.items():
            self.assertEqual(numbers(sharded[name]), numbers(rec), name)

    def test_data_parallel_rank_1_publishes_nothing(self):
        mon = Monitor(self.endpoint, "--max-snapshots", "1")
        ranks = self._ranks("dp", self.endpoint)
        self.assertEqual(mon.finish(), 0)
        self.assertEqual([r["publishes"] for r in ranks], [True, False])
        hellos = mon.events("hello")
        self.assertEqual(len(hellos), 1)
        self.assertEqual((hellos[0]["rank"], hellos[0]["world_size"]), (0, 2))
        self.assertEqual(len(mon.layers()), 3)


if __name__ == "__main__":
    unittest.main()
