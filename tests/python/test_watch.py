# SPDX-License-Identifier: Apache-2.0
"""alphatop.watch() on a real PyTorch model and optimizer loop, received by a test monitor."""

import itertools
import os
import tempfile
import time
import unittest
import zlib

import torch
from torch import nn

import alphatop
from alphatop.torch_watch import find_layers
from receiver import Receiver

torch.set_num_threads(1)


class Net(nn.Module):
    """Every layer kind the watcher knows, plus things it must ignore (norm, bias)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.conv1 = nn.Conv1d(8, 12, 3)
        self.conv2 = nn.Conv2d(1, 6, (3, 2))
        self.norm = nn.LayerNorm(12)
        self.fc = nn.Linear(12 + 6 * 6 * 3, 5)

    def forward(self, tokens, image):
        h = self.conv1(self.emb(tokens).transpose(1, 2)).mean(-1)
        g = self.conv2(image).flatten(1)
        return self.fc(torch.cat([self.norm(h), g], 1))


class LoraLinear(nn.Linear):
    """loralib style: W x + B A x with parameters named lora_A (r, in) and lora_B (out, r)."""

    def __init__(self, n_in, n_out, r):
        super().__init__(n_in, n_out)
        self.weight.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.randn(r, n_in) / n_in**0.5)
        self.lora_B = nn.Parameter(torch.zeros(n_out, r))

    def forward(self, x):
        return super().forward(x) + x @ self.lora_A.t() @ self.lora_B.t()


class PeftStyle(nn.Module):
    """PEFT style: the adapters are nn.Linear modules inside ModuleDicts."""

    def __init__(self):
        super().__init__()
        self.base_layer = nn.Linear(10, 6)
        self.lora_A = nn.ModuleDict({"default": nn.Linear(10, 4, bias=False)})
        self.lora_B = nn.ModuleDict({"default": nn.Linear(4, 6, bias=False)})
        self.lonely_lora_A = nn.Parameter(torch.zeros(4, 10))


def batch(seed):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, 20, (4, 9), generator=g),
        torch.randn(4, 1, 8, 4, generator=g),
        torch.randint(0, 5, (4,), generator=g),
    )


class WatchTest(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.tmp = tempfile.TemporaryDirectory()
        self.rx = Receiver("ipc://" + os.path.join(self.tmp.name, "m.ipc"))

    def tearDown(self):
        self.rx.close()
        self.tmp.cleanup()

    def train(self, model, opt, steps, watcher=None, manual=False, every=3):
        """Runs `steps` SGD steps; returns {step: {name: weight bytes}} at snapshot steps."""
        expected = {}
        for step in range(1, steps + 1):
            tokens, image, y = batch(step)
            loss = nn.functional.cross_entropy(model(tokens, image), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if manual:
                watcher.step()
            if step % every == 0:
                expected[step] = {
                    layer.name: layer.param.detach().numpy().tobytes()
                    for layer in find_layers(model)
                }
        return expected

    def received(self, n_snapshots):
        self.assertTrue(
            self.rx.wait_for(lambda m: len(self.rx.of_type("snapshot_end")) >= n_snapshots),
            "snapshots did not arrive",
        )
        got = {}
        for m in self.rx.of_type("layer"):
            got.setdefault(m["step"], {})[m["name"]] = m
        return got

    def check_round_trip(self, got, expected, model):
        self.assertEqual(sorted(got), sorted(expected))
        kinds = {layer.name: layer.kind for layer in find_layers(model)}
        shapes = {n: list(p.shape) for n, p in model.named_parameters()}
        for step, layers in expected.items():
            self.assertEqual(list(got[step]), list(layers))  # model order
            for name, raw in layers.items():
                m = got[step][name]
                self.assertEqual(m["raw"], raw, f"{name} at step {step}")
                self.assertEqual((m["kind"], m["shape"], m["base"]), (kinds[name], shapes[name], False))

    def test_layers_found(self):
        self.assertEqual(
            [(layer.name, layer.kind) for layer in find_layers(Net())],
            [("emb.weight", "embedding"), ("conv1.weight", "conv1d"),
             ("conv2.weight", "conv2d"), ("fc.weight", "linear")],
        )
        lora = nn.Sequential(LoraLinear(10, 6, 4), PeftStyle())
        self.assertEqual(
            [(layer.name, layer.kind) for layer in find_layers(lora)],
            [("0.weight", "linear"), ("0.lora_A", "lora_A"), ("0.lora_B", "lora_B"),
             ("1.base_layer.weight", "linear"), ("1.lora_A.default.weight", "lora_A"),
             ("1.lora_B.default.weight", "lora_B")],
        )

    def test_optimizer_hook_round_trip(self):
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        with alphatop.watch(model, every=3, endpoint=self.rx.endpoint, run="hook", optimizer=opt) as w:
            expected = self.train(model, opt, 10)
            self.assertEqual(w.steps, 10)
            got = self.received(3)
        self.check_round_trip(got, expected, model)
        hello = self.rx.of_type("hello")[0]
        self.assertEqual((hello["model"], hello["interval"]), ("Net", 3))
        self.assertTrue(hello["framework"].startswith("pytorch"))
        self.assertEqual([e["layers"] for e in self.rx.of_type("snapshot_end")], [4, 4, 4])
        # close() unhooked the optimizer: its step is the class method again.
        self.assertNotIn("step", opt.__dict__)

    def test_tcp_loopback_with_checksums(self):
        self.rx.close()
        self.rx = Receiver("tcp://127.0.0.1:*")
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with alphatop.watch(model, every=3, endpoint=self.rx.endpoint, optimizer=opt, checksum=True):
            expected = self.train(model, opt, 6)
            got = self.received(2)
        self.check_round_trip(got, expected, model)
        layer = self.rx.of_type("layer")[0]
        self.assertEqual(layer["checksum"], "crc32:%08x" % zlib.crc32(layer["raw"]))

    def test_scheduler_created_after_watch(self):
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with alphatop.watch(model, every=3, endpoint=self.rx.endpoint, optimizer=opt) as w:
            sched = torch.optim.lr_scheduler.StepLR(opt, 2)
            for step in range(1, 7):
                tokens, image, y = batch(step)
                opt.zero_grad()
                nn.functional.cross_entropy(model(tokens, image), y).backward()
                opt.step()
                sched.step()
            self.assertEqual(w.steps, 6)
            self.assertEqual(len(self.received(2)), 2)

    def test_forward_hook_round_trip(self):
        model = Net()
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        with alphatop.watch(model, every=3, endpoint=self.rx.endpoint, run="fwd"):
            expected = self.train(model, opt, 9)
            with torch.no_grad():  # evaluation forwards are not steps
                model.eval()
                model(*batch(0)[:2])
                model.train()
            model(*batch(0)[:2])  # forward 10: the weights after step 9 are taken now
            got = self.received(3)
        self.check_round_trip(got, expected, model)

    def test_explicit_step_round_trip(self):
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with alphatop.watch(model, every=3, endpoint=self.rx.endpoint, hook=None) as w:
            expected = self.train(model, opt, 9, watcher=w, manual=True)
            got = self.received(3)
        self.check_round_trip(got, expected, model)

    def test_half_and_bfloat16_are_sent_as_such(self):
        for dtype, wire in ((torch.float16, "f16"), (torch.bfloat16, "bf16")):
            model = nn.Sequential(nn.Linear(16, 12), nn.Linear(12, 4)).to(dtype)
            with alphatop.watch(model, every=1, endpoint=self.rx.endpoint, hook=None) as w:
                w.step()
                self.received(1)
            layers = self.rx.of_type("layer")[-2:]
            self.assertEqual([m["dtype"] for m in layers], [wire, wire])
            for m, p in zip(layers, (model[0].weight, model[1].weight)):
                self.assertEqual(m["raw"], p.detach().view(torch.int16).numpy().tobytes())
            self.rx.messages.clear()

    def test_non_contiguous_and_double_weights_are_converted(self):
        model = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 3))
        model[0].weight = nn.Parameter(torch.randn(6, 5).t())  # a transposed view
        model[1].double()
        with alphatop.watch(model, every=1, endpoint=self.rx.endpoint, hook=None) as w:
            w.step()
            self.received(1)
        a, b = self.rx.of_type("layer")
        self.assertEqual(a["raw"], model[0].weight.detach().contiguous().numpy().tobytes())
        self.assertEqual(b["raw"], model[1].weight.detach().float().numpy().tobytes())
        self.assertEqual((a["dtype"], b["dtype"]), ("f32", "f32"))

    def test_lora_with_base_weights_sent_once(self):
        model = nn.Sequential(LoraLinear(10, 6, 4), nn.ReLU(), LoraLinear(6, 3, 2))
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
        base = {n: p.detach().clone() for n, p in model.named_parameters()}
        with alphatop.watch(model, every=2, endpoint=self.rx.endpoint, optimizer=opt, send_base=True):
            for step in range(4):
                x = torch.randn(8, 10)
                opt.zero_grad()
                model(x).square().mean().backward()
                opt.step()
            self.received(3)
        layers = self.rx.of_type("layer")
        bases = [m for m in layers if m["base"]]
        self.assertEqual([m["name"] for m in bases], ["0.weight", "2.weight"])
        for m in bases:
            self.assertEqual(m["raw"], base[m["name"]].numpy().tobytes())
            self.assertEqual(m["step"], 0)
        latest = {m["name"]: m for m in layers if m["step"] == 4}
        # The frozen base weights went once, as the base; snapshots carry only the adapters.
        self.assertEqual(sorted(latest), ["0.lora_A", "0.lora_B", "2.lora_A", "2.lora_B"])
        self.assertEqual(latest["0.lora_A"]["kind"], "lora_A")
        self.assertEqual(latest["2.lora_B"]["shape"], [3, 2])
        self.assertEqual(latest["2.lora_B"]["raw"], model[2].lora_B.detach().numpy().tobytes())
        self.assertTrue(model[2].lora_B.detach().abs().sum() > 0)

    def test_absent_monitor_training_completes(self):
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        nobody = "ipc://" + os.path.join(self.tmp.name, "nobody.ipc")
        w = alphatop.watch(model, every=1, endpoint=nobody, optimizer=opt,
                           budget_bytes=20000, linger_ms=0)
        for step in range(1, 31):
            tokens, image, y = batch(step)
            opt.zero_grad()
            nn.functional.cross_entropy(model(tokens, image), y).backward()
            opt.step()
            alphatop.log(step, loss=1.0)
            self.assertIsNone(alphatop.should_stop())
        s = w.stats
        w.close()
        self.assertEqual(s["steps"], 30)
        self.assertGreater(s["snapshots_dropped"], 0)
        # Every due step either went out whole, was dropped, or began the snapshot still open.
        self.assertEqual(s["snapshots_sent"] + s["snapshots_dropped"] + (s["sweep_layers"] != 0),
                         30)
        self.assertIn("still being sent", s["drop_reason"])
        # The weights stay within the budget; the logged numbers go into the small messages'
        # 64 KiB reserve above it, and none is dropped for the budget the snapshot holds.
        self.assertLessEqual(s["peak_in_flight"], 20000 + (64 << 10))
        self.assertEqual(s["messages_dropped"], 0)
        self.assertEqual((s["errors"], s["watcher_errors"]), (0, 0))

    def test_should_stop_through_the_module_functions(self):
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with alphatop.watch(model, every=5, endpoint=self.rx.endpoint, run="st", optimizer=opt):
            self.assertTrue(self.rx.wait_for(lambda m: self.rx.of_type("hello")))
            stopped_at = None
            deadline = time.monotonic() + 30
            for step in itertools.count(1):
                tokens, image, y = batch(step)
                opt.zero_grad()
                nn.functional.cross_entropy(model(tokens, image), y).backward()
                opt.step()
                alphatop.log(step, loss=0.5)
                if step == 3:
                    self.rx.send("st", {"type": "stop", "reason": "traps in fc"})
                reason = alphatop.should_stop()
                if reason or time.monotonic() > deadline:
                    stopped_at = step
                    break
                self.rx.poll(0.01)
            self.assertEqual(reason, "traps in fc")
            self.assertGreaterEqual(stopped_at, 3)
            self.assertTrue(self.rx.wait_for(lambda m: self.rx.of_type("stop_ack")))


if __name__ == "__main__":
    unittest.main()
