#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Fine-tuning under alphatop: the base-vs-update view, full and LoRA (issue 7).

Pre-trains an MLP 64-W-W-10 on scikit-learn digits 0-4, then fine-tunes it on digits 5-9, once
fully and once with LoRA adapters written in plain torch (A: r x in, B: out x r, B zero-init,
W_base frozen). Fine-tuning batches get Gaussian pixel noise (--noise, augmentation): its
gradient noise spreads the update over many directions, without which this small model's
updates stay concentrated on a few (alpha < 2 at every learning rate; README, "Fine-tunes").
Both fine-tunes stream to the monitor in delta mode: the base weights are sent once, and the
monitor analyses every later snapshot as W and as the update W - W_base. Scalars per --every
steps: loss, accuracy on the new digits (5-9) and on the old ones (0-4, forgetting).

    alphatop watch &                                   # or: alphatop watch --headless
    /usr/bin/python3 examples/torch_finetune.py        # healthy: update alphas 2.2-2.4
    /usr/bin/python3 examples/torch_finetune.py --lr 1e-5  # far too low: learns nothing
    /usr/bin/python3 examples/torch_finetune.py --lr 1     # far too high: diverges

Offline: --save DIR writes DIR/base.safetensors, DIR/full.safetensors (fully fine-tuned),
DIR/lora.safetensors (W_base + B A merged) and DIR/lora_adapters.safetensors (A and B as
"fcN.lora_A.weight" / "fcN.lora_B.weight"), for
    alphatop scan DIR/full.safetensors --base DIR/base.safetensors
    alphatop scan DIR/lora_adapters.safetensors          # B A analysed from its factors
"""

import argparse
import os
import sys

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--mode", choices=("both", "full", "lora"), default="both",
                   help="which fine-tunes to run (both)")
    p.add_argument("--lr", type=float, default=1e-2, help="fine-tuning learning rate, Adam (1e-2)")
    p.add_argument("--lora-lr", type=float, default=None,
                   help="learning rate of the LoRA fine-tune (default: --lr)")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank r (16; < 10 cannot be fit)")
    p.add_argument("--width", type=int, default=256, help="hidden width W (256)")
    p.add_argument("--pretrain-steps", type=int, default=3000, help="steps on digits 0-4 (3000)")
    p.add_argument("--steps", type=int, default=2000, help="fine-tuning steps on 5-9 (2000)")
    p.add_argument("--batch", type=int, default=64, help="batch size (64)")
    p.add_argument("--noise", type=float, default=0.7,
                   help="std of the Gaussian noise added to the pixels (0..1) of every "
                        "fine-tuning batch (0.7; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of split, init and batches (0)")
    p.add_argument("--every", type=int, default=100, help="snapshot interval in steps (100)")
    p.add_argument("--endpoint", default=None,
                   help="monitor endpoint (default $ALPHATOP_ENDPOINT or the local ipc path)")
    p.add_argument("--no-monitor", action="store_true",
                   help="do not stream (no agent library needed)")
    p.add_argument("--save", metavar="DIR", help="write safetensors checkpoints to DIR")
    args = p.parse_args(argv)
    if args.lora_lr is None:
        args.lora_lr = args.lr
    return args


class MLP(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc1 = nn.Linear(64, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, 10)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class LoRALinear(nn.Module):
    """y = W_base x + b + B (A x): W_base and b frozen, A (r x in) random, B (out x r) zero, so
    training starts exactly at the base model. A and B are nn.Linear modules named lora_A and
    lora_B, the names alphatop (and PEFT) look for."""

    def __init__(self, base, rank):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x))

    def merged(self):
        """W_base + B A, the weight an inference server would use."""
        return self.base.weight + self.lora_B.weight @ self.lora_A.weight


def load_split(seed):
    """Digits as (x, y) tensors per part and split: {"old"/"new": {"train"/"test": (x, y)}}."""
    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    rng = np.random.default_rng(seed)
    out = {}
    for part, digits in (("old", range(0, 5)), ("new", range(5, 10))):
        idx = np.flatnonzero(np.isin(d.target, list(digits)))
        rng.shuffle(idx)
        cut = int(0.7 * len(idx))
        out[part] = {"train": (x[idx[:cut]], y[idx[:cut]]), "test": (x[idx[cut:]], y[idx[cut:]])}
    return out


def accuracy(model, data):
    with torch.no_grad():
        x, y = data
        return (model(x).argmax(1) == y).float().mean().item()


def train(model, params, data, steps, lr, batch, seed, noise=0.0, watcher=None, evals=None,
          every=100):
    """Adam on cross-entropy for `steps` steps, each batch's pixels plus N(0, noise^2) noise.
    Logs loss and the accuracies in `evals` (name -> (x, y)) every `every` steps through the
    watcher, and stops when the monitor asks."""
    opt = torch.optim.Adam(params, lr=lr)
    if watcher is not None:
        watcher.attach(opt)
    gen = torch.Generator().manual_seed(seed)
    x, y = data
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        xb = x[idx]
        if noise:
            xb = xb + noise * torch.randn(xb.shape, generator=gen)
        loss = nn.functional.cross_entropy(model(xb), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if watcher is not None and step % every == 0:
            watcher.log(step, loss=loss.item(), lr=lr,
                        **{name: accuracy(model, d) for name, d in evals.items()})
            reason = watcher.should_stop()
            if reason:
                print(f"  monitor asked to stop at step {step}: {reason}")
                break
    return loss.item()


class Stream:
    """The alphatop side of one fine-tune, or a no-op with --no-monitor."""

    def __init__(self, args, model, run, tags):
        self.args, self.model, self.run, self.tags, self.watcher = args, model, run, tags, None

    def attach(self, opt):
        if self.args.no_monitor:
            return
        import alphatop

        # send_base: the weights right now (the pre-trained model) are the base for deltas.
        self.watcher = alphatop.watch(self.model, every=self.args.every,
                                      endpoint=self.args.endpoint, run=self.run, tags=self.tags,
                                      optimizer=opt, send_base=True)

    def log(self, step, **scalars):
        if self.watcher:
            self.watcher.log(step, **scalars)

    def should_stop(self):
        return self.watcher.should_stop() if self.watcher else None

    def close(self):
        if self.watcher:
            s = self.watcher.stats
            print(f"  alphatop: {s['snapshots_sent']} snapshots sent, "
                  f"{s['snapshots_dropped']} dropped (monitor slow or absent)")
            self.watcher.close()


def weights(model):
    """{name: float32 numpy array} of the MLP's Linear weights and biases, merged for LoRA."""
    out = {}
    for name in ("fc1", "fc2", "fc3"):
        layer = getattr(model, name)
        if isinstance(layer, LoRALinear):
            out[name + ".weight"] = layer.merged().detach().numpy()
            out[name + ".bias"] = layer.base.bias.detach().numpy()
        else:
            out[name + ".weight"] = layer.weight.detach().numpy()
            out[name + ".bias"] = layer.bias.detach().numpy()
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def adapters(model):
    return {
        f"{name}.{part}.weight": getattr(getattr(model, name), part).weight.detach().numpy()
        for name in ("fc1", "fc2", "fc3")
        for part in ("lora_A", "lora_B")
    }


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    data = load_split(args.seed)
    evals = {"acc_new": data["new"]["test"], "acc_old": data["old"]["test"]}

    base = MLP(args.width)
    loss = train(base, base.parameters(), data["old"]["train"], args.pretrain_steps, 1e-3,
                 args.batch, args.seed)
    print(f"pre-trained on digits 0-4: loss {loss:.4f}, test accuracy 0-4 "
          f"{accuracy(base, data['old']['test']):.3f}, 5-9 {accuracy(base, data['new']['test']):.3f}")
    saved = {"base": (weights(base), {"digits": "0-4", "seed": args.seed})}

    modes = ("full", "lora") if args.mode == "both" else (args.mode,)
    for mode in modes:
        model = MLP(args.width)
        model.load_state_dict(base.state_dict())
        lr = args.lr if mode == "full" else args.lora_lr
        if mode == "lora":
            for name in ("fc1", "fc2", "fc3"):
                setattr(model, name, LoRALinear(getattr(model, name), args.rank))
        params = [p for p in model.parameters() if p.requires_grad]
        tags = {"mode": mode, "lr": lr, "noise": args.noise,
                "rank": args.rank if mode == "lora" else "-"}
        stream = Stream(args, model, f"finetune-{mode}-lr{lr:g}-seed{args.seed}", tags)
        print(f"fine-tuning ({mode}, lr {lr:g}, {sum(p.numel() for p in params)} trainable "
              f"parameters) on digits 5-9 ...")
        try:
            loss = train(model, params, data["new"]["train"], args.steps, lr, args.batch,
                         args.seed + 1, noise=args.noise, watcher=stream, evals=evals,
                         every=args.every)
        finally:
            stream.close()
        print(f"  loss {loss:.4f}, test accuracy 5-9 {accuracy(model, evals['acc_new']):.3f}, "
              f"0-4 {accuracy(model, evals['acc_old']):.3f} (what the base knew)")
        meta = dict(tags, digits="5-9", seed=args.seed, steps=args.steps)
        saved[mode] = (weights(model), meta)
        if mode == "lora":
            saved["lora_adapters"] = (adapters(model), meta)

    if args.save:
        from alphatop import safetensors

        os.makedirs(args.save, exist_ok=True)
        for name, (tensors, meta) in saved.items():
            path = os.path.join(args.save, name + ".safetensors")
            safetensors.save(path, tensors, metadata=meta)
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
