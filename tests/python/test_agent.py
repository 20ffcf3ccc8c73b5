# SPDX-License-Identifier: Apache-2.0
"""alphatop.Agent with plain numpy arrays, scalars, control messages and an absent monitor."""

import math
import os
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

import alphatop
from receiver import Receiver


def ipc_endpoint(tmp):
    return "ipc://" + os.path.join(tmp, "monitor.ipc")


class AgentTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.rx = Receiver(ipc_endpoint(self.tmp.name))

    def tearDown(self):
        self.rx.close()
        self.tmp.cleanup()

    def layers(self):
        return self.rx.of_type("layer")

    def test_numpy_arrays_arrive_byte_for_byte(self):
        rng = np.random.default_rng(1)
        w32 = rng.standard_normal((7, 5)).astype(np.float32)
        w16 = rng.standard_normal((3, 4, 2)).astype(np.float16)
        w64 = rng.standard_normal((6, 4, 3, 3))
        # bfloat16 as its bits: the top half of the float32 pattern (truncation).
        bf = (w32.view(np.uint32) >> 16).astype(np.uint16)
        with alphatop.Agent(endpoint=self.rx.endpoint, run="np-run", model="m") as a:
            self.assertTrue(a.publish("a.weight", w32, step=10))
            self.assertTrue(a.begin(20))
            self.assertTrue(a.add("b.weight", w16))
            self.assertTrue(a.add("c.weight", w64))
            self.assertTrue(a.add("d.weight", bf, kind="embedding", dtype="bf16"))
            self.assertTrue(a.end())
            self.assertTrue(self.rx.wait_for(lambda m: len(self.rx.of_type("snapshot_end")) == 2))
        got = {m["name"]: m for m in self.layers()}
        self.assertEqual(list(got), ["a.weight", "b.weight", "c.weight", "d.weight"])
        self.assertEqual(got["a.weight"]["raw"], w32.tobytes())
        self.assertEqual((got["a.weight"]["kind"], got["a.weight"]["dtype"]), ("linear", "f32"))
        self.assertEqual(got["b.weight"]["raw"], w16.tobytes())
        self.assertEqual((got["b.weight"]["kind"], got["b.weight"]["dtype"]), ("conv1d", "f16"))
        self.assertEqual(got["c.weight"]["raw"], w64.astype(np.float32).tobytes())
        self.assertEqual((got["c.weight"]["kind"], got["c.weight"]["shape"]), ("conv2d", [6, 4, 3, 3]))
        self.assertEqual(got["d.weight"]["raw"], bf.tobytes())
        self.assertEqual((got["d.weight"]["kind"], got["d.weight"]["dtype"]), ("embedding", "bf16"))
        self.assertEqual([m["step"] for m in self.layers()], [10, 20, 20, 20])
        ends = self.rx.of_type("snapshot_end")
        self.assertEqual([(e["step"], e["layers"]) for e in ends], [(10, 1), (20, 3)])
        self.assertLess(ends[0]["seq"], ends[1]["seq"])
        hello = self.rx.of_type("hello")[0]
        self.assertEqual((hello["run"], hello["model"], hello["framework"]), ("np-run", "m", "numpy"))

    def test_scalars_and_tags(self):
        with alphatop.Agent(endpoint=self.rx.endpoint, run="s", tags={"lr": 0.1, "who": "t"}) as a:
            self.assertTrue(a.log(5, loss=0.25, acc=1, bad=math.nan))
            self.assertTrue(self.rx.wait_for(lambda m: self.rx.of_type("scalars")))
        s = self.rx.of_type("scalars")[0]
        self.assertEqual(s["step"], 5)
        self.assertEqual(s["values"], {"loss": 0.25, "acc": 1.0, "bad": None})
        # The tags travel in the options: the very first hello carries them.
        self.assertEqual(self.rx.of_type("hello")[0]["tags"], {"lr": "0.1", "who": "t"})

    def test_bad_tag_fails_at_creation(self):
        with self.assertRaisesRegex(OSError, "opts tag 0"):
            alphatop.Agent(endpoint=self.rx.endpoint, run="t", tags={"k" * 64: "v"})

    def test_should_stop_after_a_stop_message(self):
        with alphatop.Agent(endpoint=self.rx.endpoint, run="stopme") as a:
            self.assertIsNone(a.should_stop())
            self.assertTrue(self.rx.wait_for(lambda m: self.rx.of_type("hello")))
            self.rx.send("stopme", {"type": "stop", "reason": "layer fc1 burnt"})
            reason, deadline = None, time.monotonic() + 30
            while reason is None and time.monotonic() < deadline:
                self.rx.poll(0.01)
                reason = a.should_stop()
            self.assertEqual(reason, "layer fc1 burnt")
            self.assertTrue(self.rx.wait_for(lambda m: self.rx.of_type("stop_ack")))

    def test_interval_from_the_monitor(self):
        with alphatop.Agent(endpoint=self.rx.endpoint, run="iv", every=10) as a:
            self.assertTrue(a.due(20))
            self.assertFalse(a.due(5))
            self.assertTrue(self.rx.wait_for(lambda m: self.rx.of_type("hello")))
            self.rx.send("iv", {"type": "interval", "interval": 5})
            deadline = time.monotonic() + 30
            while a.interval != 5 and time.monotonic() < deadline:
                self.rx.poll(0.01)
            self.assertEqual(a.interval, 5)
            self.assertTrue(a.due(5))

    def test_bad_input_is_counted_not_raised(self):
        with alphatop.Agent(endpoint=self.rx.endpoint, run="bad") as a:
            self.assertTrue(a.begin(1))
            self.assertFalse(a.add("x" * 300, np.zeros((3, 3), np.float32)))
            self.assertFalse(a.add("v", np.zeros((3, 3, 3), np.float32), kind="linear"))
            self.assertTrue(a.add("ok", np.ones((3, 3), np.float32)))
            self.assertTrue(a.end())
            self.assertEqual(a.stats["errors"], 2)
            self.assertNotEqual(a.last_error, "")
            with self.assertRaises(ValueError):
                a.add("s", np.zeros(3, np.float32))


class AbsentMonitorTest(unittest.TestCase):
    def test_publishing_into_the_void_stays_within_the_budget(self):
        with tempfile.TemporaryDirectory() as tmp:
            w = np.ones((256, 256), np.float32)  # 256 KiB per layer, 512 KiB per snapshot
            a = alphatop.Agent(endpoint=ipc_endpoint(tmp), every=1, budget_bytes=2 << 20,
                               linger_ms=0)
            queued = 0
            for step in range(50):
                if a.begin(step):
                    a.add("l1", w)
                    a.add("l2", w)
                queued += a.end()
            s = a.stats
            a.close()
        # 3 snapshots queue whole, the 4th waits for room (its second layer deferred), and
        # every later due step finds it open: dropped, and said why.
        self.assertEqual(queued, 3)
        self.assertEqual(s["snapshots_sent"], 3)
        self.assertEqual(s["snapshots_dropped"], 46)
        self.assertEqual((s["sweep_layers"], s["sweep_done"]), (2, 1))
        self.assertGreater(s["layers_deferred"], 0)
        self.assertLessEqual(s["peak_in_flight"], 2 << 20)
        self.assertEqual(s["errors"], 0)


class LibraryLookupTest(unittest.TestCase):
    def test_missing_library_says_how_to_build_it(self):
        env = dict(os.environ, ALPHATOP_LIB="/nonexistent/libalphatop_agent.so")
        code = "import alphatop\ntry:\n alphatop.Agent()\nexcept alphatop.LibraryNotFound as e:\n print(e)"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        self.assertIn("/nonexistent/libalphatop_agent.so", out.stdout)
        self.assertIn("cmake", out.stdout)

    def test_library_from_another_header_is_refused(self):
        # A binding whose Opts mirror is one field short must not let at_agent_opts_default
        # write past its copy: the library is refused with the two sizes.
        code = (
            "import ctypes, alphatop._lib as L\n"
            "class Short(ctypes.Structure):\n"
            " _fields_ = L.Opts._fields_[:-1]\n"
            "L.Opts = Short\n"
            "try:\n L.load()\nexcept L.LibraryNotFound as e:\n print(e)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        self.assertIn("built from another agent.h", out.stdout)
        self.assertIn("at_agent_opts is 120 bytes there, 112 here", out.stdout)

    def test_default_endpoint_follows_the_environment(self):
        code = "import alphatop; print(alphatop.default_endpoint())"
        env = dict(os.environ, ALPHATOP_ENDPOINT="tcp://127.0.0.1:5999")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        self.assertEqual(out.stdout.strip(), "tcp://127.0.0.1:5999")


if __name__ == "__main__":
    unittest.main()
