# SPDX-License-Identifier: Apache-2.0
"""watch(): stream a PyTorch model's weight snapshots to the alphatop monitor.

Which weights: alphatop.layers decides (docs/python.md, "Which layers"): every nn.Linear,
Conv1d/2d/3d, ConvTranspose, Embedding, Hugging Face Conv1D (transposed to (out, in)),
MultiheadAttention projection, LSTM/GRU/RNN matrix and class named like one ("*Linear*",
"*Embedding*", ...), and LoRA pairs; tied weights once; layers= (a regex or a predicate)
chooses otherwise. Names as in model.named_parameters(), e.g. "fc1.weight". watcher.skipped
says why each other parameter is not sent.

When: every `every` optimizer steps, counted by one of
  - "optimizer": a hook on optimizer.step (torch >= 2.0: register_step_post_hook; torch 1.13
    has no step hooks, so the optimizer instance's step method is wrapped);
  - "forward": a forward pre-hook on the model that counts training forwards (model.training
    and grad enabled); forward k+1 sees the weights after k steps. Without gradient
    accumulation that is one forward per optimizer step;
  - explicit watcher.step() calls (hook=None, or the first step() call removes the hook).
"""

import logging
import os
import types

import torch

from . import agent as _agent
from .layers import LORA_KINDS, Layer, describe_skipped, find_layers, select

__all__ = ["Layer", "Watcher", "find_layers"]

_DTYPE = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
_log = logging.getLogger("alphatop")


def _distributed():
    """(rank, world_size) of a torch.distributed run, else from the usual environment."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class Watcher:
    """Publishes snapshots of a model's weights; see watch() for the arguments.

    Attributes: agent (the alphatop.Agent), layers (list of Layer), skipped ((name, reason)
    for every parameter not sent, each once), steps (optimizer steps counted so far), errors
    (exceptions swallowed in the training path), last_error.
    """

    def __init__(
        self,
        model,
        every=100,
        endpoint=None,
        run=None,
        tags=None,
        optimizer=None,
        hook="auto",
        send_base=False,
        start_step=0,
        layers=None,
        **agent_options,
    ):
        if hook == "auto":
            hook = "optimizer" if optimizer is not None else "forward"
        if hook not in ("optimizer", "forward", None):
            raise ValueError(f"alphatop: hook must be 'optimizer', 'forward' or None, not {hook!r}")
        if hook == "optimizer" and optimizer is None:
            raise ValueError("alphatop: hook='optimizer' needs optimizer=")
        rank, world = _distributed()
        self.model = model
        self.layers, self.skipped = select(model, layers)
        if self.skipped:
            _log.info("alphatop: watching %d layers of %s; not sent: %s (watcher.skipped says "
                      "why, per parameter)", len(self.layers), type(model).__name__,
                      describe_skipped(self.skipped))
        self._current = self.layers
        self.agent = _agent.Agent(
            endpoint=endpoint,
            run=run,
            model=type(model).__name__,
            framework="pytorch " + torch.__version__,
            every=every,
            tags=tags,
            rank=rank,
            world_size=world,
            **agent_options,
        )
        self.steps = int(start_step)
        self.errors = 0
        self.last_error = ""
        self._pinned = {}
        self._base = None
        self._forwards = 0
        self._hook = None
        self._unwrap = None
        if send_base:
            # Frozen base weights never change, so they need no copy; trained ones do (as
            # published: transposed, split), until their base snapshot has been queued.
            self._base = [
                (layer, layer.tensor().clone(memory_format=torch.contiguous_format)
                 if layer.param.requires_grad else None)
                for layer in self.layers
                if layer.kind not in LORA_KINDS
            ]
            self._send_base()
        if hook == "optimizer":
            self._hook_optimizer(optimizer)
        elif hook == "forward":
            self._hook = model.register_forward_pre_hook(self._on_forward)

    # -- counting steps --------------------------------------------------------------------

    def _hook_optimizer(self, optimizer):
        if hasattr(optimizer, "register_step_post_hook"):
            self._hook = optimizer.register_step_post_hook(lambda *_: self._advance(None))
            return
        original = optimizer.__dict__.get("step")
        bound = optimizer.step
        active = [True]

        # A bound method (not a plain function), so that an LR scheduler created later can
        # still wrap it: torch 1.13's scheduler reads step.__func__ and step.__self__.
        def step(opt, *args, **kwargs):
            result = bound(*args, **kwargs)
            if active[0]:
                self._advance(None)
            return result

        wrapped = types.MethodType(step, optimizer)
        optimizer.step = wrapped

        def unwrap():
            active[0] = False
            # Restore the original unless someone (a scheduler) has wrapped ours since.
            if optimizer.__dict__.get("step") is wrapped:
                if original is None:
                    del optimizer.step
                else:
                    optimizer.step = original

        self._unwrap = unwrap

    def _on_forward(self, module, inputs):
        if not (module.training and torch.is_grad_enabled()):
            return
        self._forwards += 1
        if self._forwards > 1:
            self._advance(None)

    def _remove_hook(self):
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self._unwrap is not None:
            self._unwrap()
            self._unwrap = None

    def step(self, step=None):
        """Counts one optimizer step (or sets the count to `step`) and publishes a snapshot when
        one is due. Call it after optimizer.step(). The first call removes the automatic hook,
        so steps are never counted twice. Returns True when a snapshot was queued."""
        self._remove_hook()
        return self._advance(step)

    def _advance(self, step):
        self.steps = self.steps + 1 if step is None else int(step)
        try:
            if self.agent.due(self.steps):
                if self._base is not None:
                    self._send_base()
                return self.snapshot(self.steps)
        except Exception as e:  # a monitor problem must never stop the training loop
            self._swallow(e)
        return False

    def _swallow(self, e):
        self.errors += 1
        self.last_error = f"{type(e).__name__}: {e}"

    # -- publishing ------------------------------------------------------------------------

    def _send_base(self):
        tensors = [copy if copy is not None else layer.tensor() for layer, copy in self._base]
        if self._publish([layer for layer, _ in self._base], tensors, self.steps, base=True):
            # Frozen weights equal their base: later snapshots leave them out (their update
            # would be all zero), which also spares a LoRA run sending its whole base model.
            frozen = {id(layer) for layer, copy in self._base if copy is None}
            self._current = [layer for layer in self.layers if id(layer) not in frozen]
            self._base = None

    def snapshot(self, step=None):
        """Publishes the layers now, as the snapshot of `step` (default: the step count): all
        of them, except frozen weights already sent as the base. Returns True when queued,
        False when dropped (monitor slow or absent: counted)."""
        step = self.steps if step is None else int(step)
        return self._publish(self._current, [layer.tensor() for layer in self._current], step)

    def _publish(self, layers, tensors, step, base=False):
        """Sends tensors (the layers' weights as published, detached) as one snapshot."""
        with torch.no_grad():
            tensors = self._to_cpu(layers, tensors)
            if not self.agent.begin(step):
                self.agent.end()
                return False
            for layer, t in zip(layers, tensors):
                if t.dtype not in _DTYPE:
                    t = t.float()
                # Contiguous CPU float32/16 and bfloat16 go as they are: the C library copies
                # them once, straight from the tensor's memory.
                t = t.contiguous()
                # A refused layer (say, a name too long) is counted; the others still go.
                self.agent.publish_pointer(
                    layer.name, layer.kind, _DTYPE[t.dtype], tuple(t.shape), t.data_ptr(), base
                )
            return self.agent.end()

    def _to_cpu(self, layers, tensors):
        """Copies GPU tensors into pinned host buffers (allocated once per layer, reused), all
        copies queued before one wait, so the trainer stalls for the transfer only once.
        Designed for CUDA; untested here (no GPU in CI)."""
        if all(t.device.type == "cpu" for t in tensors):
            return tensors
        out = []
        for layer, t in zip(layers, tensors):
            if t.device.type == "cpu":
                out.append(t)
                continue
            buf = self._pinned.get(layer.name)
            if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
                buf = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
                self._pinned[layer.name] = buf
            buf.copy_(t, non_blocking=True)
            out.append(buf)
        torch.cuda.synchronize()
        return out

    # -- scalars, control, lifetime --------------------------------------------------------

    def log(self, step=None, **scalars):
        """Sends named numbers (loss=..., acc=..., lr=...) at `step` (default: the step count).
        Tensors are converted with float(). Never raises for monitor trouble."""
        try:
            return self.agent.log(self.steps if step is None else step, **scalars)
        except Exception as e:
            self._swallow(e)
            return False

    def should_stop(self):
        """The monitor's stop reason (a string) once it asked the run to stop, else None."""
        try:
            return self.agent.should_stop()
        except Exception as e:
            self._swallow(e)
            return None

    @property
    def drops(self):
        """Snapshots dropped because the monitor was slow or absent."""
        return self.agent.stats.get("snapshots_dropped", 0)

    @property
    def stats(self):
        """The agent's counters (see Agent.stats) plus this watcher's steps and errors."""
        return dict(self.agent.stats, steps=self.steps, watcher_errors=self.errors)

    def close(self):
        """Removes the hooks and closes the agent (sends goodbye, flushes within linger_ms)."""
        self._remove_hook()
        self.agent.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
