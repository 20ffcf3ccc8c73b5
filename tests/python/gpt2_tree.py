# SPDX-License-Identifier: Apache-2.0
"""A Hugging Face GPT-2-style module tree, written here so the tests need no transformers
package: the same module names, classes and parameter layouts as GPT2LMHeadModel (Conv1D with
its weight stored (in, out); lm_head tied to the token embedding; LayerNorms; the attention's
causal-mask buffer named bias)."""

import math

import numpy as np
import torch
from torch import nn


class Conv1D(nn.Module):
    """As transformers defines it (pytorch_utils.Conv1D): a linear layer of nx inputs and nf
    outputs whose weight is stored transposed, (nx, nf); forward is x @ W + b."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class GPT2Attention(nn.Module):
    def __init__(self, n_embd, n_head, n_ctx):
        super().__init__()
        self.n_head = n_head
        self.c_attn = Conv1D(3 * n_embd, n_embd)
        self.c_proj = Conv1D(n_embd, n_embd)
        self.register_buffer("bias", torch.tril(torch.ones(n_ctx, n_ctx)).view(1, 1, n_ctx, n_ctx))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (y.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for y in (q, k, v))
        att = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))
        att = att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf")).softmax(-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(b, t, c))


class GPT2MLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.c_fc = Conv1D(4 * n_embd, n_embd)
        self.c_proj = Conv1D(n_embd, 4 * n_embd)

    def forward(self, x):
        return self.c_proj(nn.functional.gelu(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, n_embd, n_head, n_ctx):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = GPT2Attention(n_embd, n_head, n_ctx)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = GPT2MLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, vocab, n_ctx, n_embd, n_layer, n_head):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(n_ctx, n_embd)
        self.h = nn.ModuleList(GPT2Block(n_embd, n_head, n_ctx) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)

    def forward(self, tokens):
        x = self.wte(tokens) + self.wpe(torch.arange(tokens.shape[1]))
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, vocab=100, n_ctx=32, n_embd=32, n_layer=2, n_head=4):
        super().__init__()
        self.transformer = GPT2Model(vocab, n_ctx, n_embd, n_layer, n_head)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as GPT-2 ties them

    def forward(self, tokens):
        return self.lm_head(self.transformer(tokens))


def expected_layers(model):
    """(name, kind, weight as published) of every layer alphatop should take from the tree."""
    t = model.transformer
    out = [("transformer.wte.weight", "embedding", t.wte.weight),
           ("transformer.wpe.weight", "embedding", t.wpe.weight)]
    for i, block in enumerate(t.h):
        for sub, conv in (("attn.c_attn", block.attn.c_attn), ("attn.c_proj", block.attn.c_proj),
                          ("mlp.c_fc", block.mlp.c_fc), ("mlp.c_proj", block.mlp.c_proj)):
            out.append((f"transformer.h.{i}.{sub}.weight", "linear", conv.weight.t()))
    return out


def heavy_tailed_(model, seed, df=2.5, scale=0.02):
    """Fills every parameter of model with seeded Student-t noise (heavy-tailed, like trained
    weights), so fits land in a realistic range."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.standard_t(df, size=tuple(p.shape)) * scale))
    return model
