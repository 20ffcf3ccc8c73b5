#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Grokking modular addition with a one-layer transformer, on a CPU in minutes.

The canonical experiment (Power et al. 2022; Nanda et al. 2023): inputs "a b =", the model
predicts (a + b) mod p at "="; a seeded share of the p*p pairs trains, the rest tests;
full-batch AdamW with weight decay 1; test accuracy jumps from chance to ~1 long after the
training pairs are memorised. Model as in Nanda et al.: token embedding (p + 1 tokens) plus a
learned position embedding, one attention layer (4 heads, no LayerNorm), a ReLU MLP, an
unembedding; every weight drawn N(0, 1/d_model). W_Q, W_K, W_V, W_O are separate bias-free
Linear layers (attention written by hand: Debian's torch 1.13 has no
scaled_dot_product_attention), so each is a layer alphatop sees, as are the embedding
(kind embedding), mlp.W_in, mlp.W_out and the unembedding.

Sizing. Nanda's run (p 113, 30 % of pairs, d_model 128, MLP 512, lr 1e-3) takes ~0.24 s per
full-batch step on one core here and groks after ~10k steps: over 40 minutes. The defaults keep
the architecture, the training share and the weight decay, and change two things:
  --p 59          1044 training pairs instead of 3830: 0.03-0.05 s per step;
  --lr 3e-3       AdamW's decay per step is lr * weight_decay, and grokking under weight decay
                  is driven by it: 3x the decay groks in roughly a third of the steps, still
                  long after memorisation (lr 1e-3 was at test accuracy 0.08 after 4500 steps).
  (40 % of the pairs at lr 3e-3 generalises almost with memorisation: test accuracy 0.35 at
  step 200, 0.996 at 800: no visible delay.) d_model 128, MLP 512 and 4 heads are unchanged, so
  the layers keep 128 eigenvalues (embedding and unembedding p + 1 and p) for a stable
  power-law fit.
Only the "=" position is read out, so queries, the attention output and the MLP are computed
there alone (keys and values at all three positions): the same loss and gradients as the full
causal model at a third of the cost. With these defaults a run memorises (train accuracy 1.0)
by step 100 and groks (test accuracy >= 0.9) at 2400 (seed 0) or 5400 (seed 1) steps, a few
minutes of one core; some seeds take longer (seed 3: test accuracy 0.45 at 8000).
docs/detection.md has the measurements.

Monitoring:  --publish   publish a weight snapshot every --every steps and the scalars
                         train_loss, test_loss, train_acc, test_acc through `import alphatop`
                         (the monitor's stop rules end the loop via alphatop.should_stop())
"""
import argparse
import math
import sys
import time

import torch


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--p", type=int, default=59, help="modulus, a prime (59)")
    p.add_argument("--frac", type=float, default=0.3,
                   help="share of the p*p pairs used for training (0.3)")
    p.add_argument("--d-model", type=int, default=128, help="residual width (128)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (4)")
    p.add_argument("--d-mlp", type=int, default=512, help="MLP hidden width (512)")
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (3e-3)")
    p.add_argument("--weight-decay", type=float, default=1.0, help="AdamW weight decay (1.0)")
    p.add_argument("--warmup", type=int, default=10,
                   help="steps of linear learning-rate warm-up (10)")
    p.add_argument("--steps", type=int, default=10_000, help="optimizer steps (10000)")
    p.add_argument("--every", type=int, default=100,
                   help="steps between snapshots and evaluations (100)")
    p.add_argument("--seed", type=int, default=0, help="seed of split and init (0)")
    p.add_argument("--continue-at", type=int, default=0, metavar="STEP",
                   help="from this step on train with --continue-lr and --continue-wd (0: never):"
                        " a long continuation after grokking")
    p.add_argument("--continue-lr", type=float, default=None,
                   help="learning rate from --continue-at (default: unchanged)")
    p.add_argument("--continue-wd", type=float, default=None,
                   help="weight decay from --continue-at (default: unchanged)")
    p.add_argument("--endpoint", default=None,
                   help="monitor endpoint for --publish (default: the binding's default)")
    p.add_argument("--publish", action="store_true",
                   help="publish snapshots and scalars to an alphatop monitor")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    a = p.parse_args(argv)
    if a.p < 3 or any(a.p % k == 0 for k in range(2, int(math.isqrt(a.p)) + 1)):
        p.error("--p must be a prime >= 3")
    if not 0 < a.frac < 1:
        p.error("--frac must lie in (0, 1)")
    if a.steps < 1 or a.every < 1 or a.d_mlp < 1 or a.d_model < 1 or a.heads < 1:
        p.error("--steps, --every, --d-model, --heads and --d-mlp must be positive")
    if a.d_model % a.heads:
        p.error("--d-model must be a multiple of --heads")
    return a


class Attention(torch.nn.Module):
    """Multi-head attention of the "=" position over all three, by hand."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.W_Q = torch.nn.Linear(d, d, bias=False)
        self.W_K = torch.nn.Linear(d, d, bias=False)
        self.W_V = torch.nn.Linear(d, d, bias=False)
        self.W_O = torch.nn.Linear(d, d, bias=False)

    def forward(self, x):
        """x: (n, 3, d) residual stream; returns the attention output at position 2, (n, d)."""
        n, t, d = x.shape
        h = self.heads
        q = self.W_Q(x[:, -1]).view(n, h, 1, d // h)
        k = self.W_K(x).view(n, t, h, d // h).transpose(1, 2)
        v = self.W_V(x).view(n, t, h, d // h).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h), dim=-1)
        return self.W_O((att @ v).reshape(n, d))


class MLP(torch.nn.Module):
    def __init__(self, d, d_mlp):
        super().__init__()
        self.W_in = torch.nn.Linear(d, d_mlp)
        self.W_out = torch.nn.Linear(d_mlp, d)

    def forward(self, x):
        return self.W_out(torch.relu(self.W_in(x)))


class Transformer(torch.nn.Module):
    """One layer, no LayerNorm; the logits of the "=" position only."""

    def __init__(self, p, d, heads, d_mlp):
        super().__init__()
        self.embed = torch.nn.Embedding(p + 1, d)
        self.pos = torch.nn.Parameter(torch.empty(3, d))
        self.attn = Attention(d, heads)
        self.mlp = MLP(d, d_mlp)
        self.unembed = torch.nn.Linear(d, p, bias=False)
        with torch.no_grad():
            for name, w in self.named_parameters():
                if name.endswith("bias"):
                    w.zero_()
                else:
                    w.normal_(0.0, 1.0 / math.sqrt(d))

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos
        r = x[:, -1] + self.attn(x)
        return self.unembed(r + self.mlp(r))


def split_pairs(p, frac, seed):
    """All p*p inputs "a b =" and their labels; a seeded frac of them train, the rest test."""
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    tokens = torch.stack([a, b, torch.full_like(a, p)], dim=1)
    labels = (a + b) % p
    order = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    n = int(round(frac * p * p))
    tr, te = order[:n], order[n:]
    return tokens[tr], labels[tr], tokens[te], labels[te]


def loss_acc(model, x, y):
    """Cross-entropy in float64 (float32 rounds the loss of a memorised set to zero, the
    "slingshot" trap Nanda et al. avoid the same way) and accuracy."""
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits.double(), y)
    return loss, (logits.argmax(1) == y).float().mean().item()


def open_monitor(args, model, opt):
    """Watches model through the alphatop binding: a snapshot every --every optimizer steps."""
    try:
        import alphatop
    except ImportError as e:
        sys.exit(f"--publish needs the alphatop Python binding ({e}); "
                 "set PYTHONPATH to the repo's python/ directory")
    tags = {"example": "torch_modular", "p": str(args.p), "frac": str(args.frac),
            "model": f"transformer-1l-d{args.d_model}-h{args.heads}-mlp{args.d_mlp}",
            "seed": str(args.seed), "lr": str(args.lr), "weight_decay": str(args.weight_decay)}
    if args.continue_at:
        tags["continue"] = f"at {args.continue_at}: lr {args.continue_lr} wd {args.continue_wd}"
    watcher = alphatop.watch(model, every=args.every, endpoint=args.endpoint, optimizer=opt,
                             tags=tags)
    return alphatop, watcher


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = split_pairs(args.p, args.frac, args.seed)
    model = Transformer(args.p, args.d_model, args.heads, args.d_mlp)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                            betas=(0.9, 0.98))
    at, watcher = open_monitor(args, model, opt) if args.publish else (None, None)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        for g in opt.param_groups:
            if args.continue_at and step > args.continue_at:
                g["lr"] = args.lr if args.continue_lr is None else args.continue_lr
                if args.continue_wd is not None:
                    g["weight_decay"] = args.continue_wd
            else:
                g["lr"] = args.lr * min(1.0, step / args.warmup)
        opt.zero_grad(set_to_none=True)
        loss, _ = loss_acc(model, xtr, ytr)
        loss.backward()
        opt.step()
        if step % args.every == 0 or step == args.steps:
            with torch.no_grad():
                tr_loss, tr = loss_acc(model, xtr, ytr)
                te_loss, te = loss_acc(model, xte, yte)
            rec = {"train_loss": tr_loss.item(), "test_loss": te_loss.item(), "train_acc": tr,
                   "test_acc": te}
            if at is not None:
                at.log(step, **rec)
            if not args.quiet:
                print(f"step {step:7d}  train {tr:.3f}  test {te:.3f}  "
                      f"loss {rec['train_loss']:.2e} {rec['test_loss']:.2e}  "
                      f"{time.time() - t0:.0f}s", file=sys.stderr, flush=True)
        if at is not None:
            reason = at.should_stop()
            if reason:
                print(f"stopped at step {step}: {reason}", file=sys.stderr, flush=True)
                break
    if watcher is not None:
        watcher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
