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

How: a snapshot is a pass over the layers. The agent copies each layer that fits its byte
budget now and sends it at once; when the model is larger than the budget, or the monitor reads
slowly, the snapshot goes on at the following steps, each pass sending the layers still missing
from the weights of that step (docs/protocol.md section 6). A pass copies nothing twice: a layer
already sent is passed over, and a tensor that needs a copy of its own before the agent's (on a
GPU, non-contiguous, another dtype) gets it only when the agent wants the layer now; GPU layers
go through one pinned host buffer, reused, one layer at a time.

Distributed: under plain data parallelism (torch.distributed initialized, or RANK/WORLD_SIZE
set, and no shards=) every rank holds the same weights and only rank 0 publishes: the others'
watchers do nothing. With shards= (tensor or fully sharded parallelism) every rank publishes
its own slice of each sharded layer, which the monitor assembles, rank 0 the layers every rank
holds whole, all under rank 0's run id.
"""

import logging
import os
import socket
import types

import torch

from . import agent as _agent
from .layers import LORA_KINDS, Layer, describe_skipped, find_layers, select

__all__ = ["Layer", "Watcher", "find_layers"]

_DTYPE = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
_log = logging.getLogger("alphatop")


def _initialized():
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _distributed():
    """(rank, world_size) of a torch.distributed run, else from the usual environment."""
    if _initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _shared_run(run):
    """The run id every rank of a sharded run publishes under: run, else rank 0's default."""
    if run is not None:
        return run
    if not _initialized():
        raise ValueError("alphatop: watch(shards=...) without torch.distributed needs run=, the "
                         "same on every rank")
    ids = [f"{socket.gethostname()}-{os.getpid()}"]
    torch.distributed.broadcast_object_list(ids, src=0)
    return ids[0]


def _piece(shards, layer):
    """(full_shape, offset) of this rank's slice of layer, or None: not sharded."""
    p = shards(layer) if callable(shards) else shards.get(layer.name)
    if p is None:
        return None
    full, offset = tuple(int(d) for d in p[0]), tuple(int(d) for d in p[1])
    if len(full) != len(layer.shape) or len(offset) != len(full):
        raise ValueError(f"alphatop: shards[{layer.name!r}]: full_shape {full} and offset "
                         f"{offset} must have the {len(layer.shape)} dimensions of its slice")
    return full, offset


class Watcher:
    """Publishes snapshots of a model's weights; see watch() for the arguments.

    Attributes: agent (the alphatop.Agent; None on a data-parallel rank other than 0, which
    publishes nothing), layers (list of Layer), skipped ((name, reason) for every parameter not
    sent, each once), steps (optimizer steps counted so far), errors (exceptions swallowed in
    the training path), last_error.
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
        shards=None,
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
        self._pieces = {id(x): _piece(shards, x) for x in self.layers} if shards else {}
        self._rank = rank
        if self.skipped:
            _log.info("alphatop: watching %d layers of %s; not sent: %s (watcher.skipped says "
                      "why, per parameter)", len(self.layers), type(model).__name__,
                      describe_skipped(self.skipped))
        self._current = self.layers
        if shards and world > 1:
            run = _shared_run(run)
        # Data parallel: every rank holds the same weights, rank 0 speaks for them all.
        publishes = rank == 0 or (shards and world > 1)
        self.agent = None if not publishes else _agent.Agent(
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
        self._staging = None  # a GPU layer's host copy, the largest layer's size, reused
        self._base = None
        self._forwards = 0
        self._hook = None
        self._unwrap = None
        if send_base and self.agent is not None:
            # Frozen base weights never change, so they need no copy; trained ones do (as
            # published: transposed, split), until their base snapshot has been queued.
            self._base = [
                (layer, layer.tensor().clone(memory_format=torch.contiguous_format)
                 if layer.param.requires_grad else None)
                for layer in self.layers
                if layer.kind not in LORA_KINDS
            ]
            self._send_base()
        if self.agent is None:
            return
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
        """Counts one optimizer step (or sets the count to `step`) and publishes when a snapshot
        is due or still going out. Call it after optimizer.step(). The first call removes the
        automatic hook, so steps are never counted twice. Returns True when a snapshot went out
        whole at this step."""
        self._remove_hook()
        return self._advance(step)

    def _advance(self, step):
        self.steps = self.steps + 1 if step is None else int(step)
        try:
            if self.agent is not None and self.agent.due(self.steps):
                # The base weights go first, whole, before the snapshots begin.
                if self._base is not None and not self._send_base():
                    return False
                return self.snapshot(self.steps)
        except Exception as e:  # a monitor problem must never stop the training loop
            self._swallow(e)
        return False

    def _swallow(self, e):
        self.errors += 1
        self.last_error = f"{type(e).__name__}: {e}"

    # -- publishing ------------------------------------------------------------------------

    def _send_base(self):
        """One pass of the base snapshot; True once it went out whole."""
        tensors = [copy if copy is not None else layer.tensor() for layer, copy in self._base]
        if not self._publish([layer for layer, _ in self._base], tensors, self.steps, base=True):
            return False
        # Frozen weights equal their base: later snapshots leave them out (their update would
        # be all zero), which also spares a LoRA run sending its whole base model.
        frozen = {id(layer) for layer, copy in self._base if copy is None}
        self._current = [layer for layer in self.layers if id(layer) not in frozen]
        self._base = None
        return True

    def snapshot(self, step=None):
        """A pass of the snapshot at `step` (default: the step count), over all the layers
        except frozen weights already sent as the base: a new snapshot, or the next pass of the
        one going out. Returns True when the snapshot went out whole; False while it goes on at
        the next steps, or when it was dropped (monitor slow or absent: counted)."""
        if self.agent is None:
            return False
        step = self.steps if step is None else int(step)
        return self._publish(self._current, [layer.tensor() for layer in self._current], step)

    def _publish(self, layers, tensors, step, base=False):
        """One pass over tensors (the layers' weights as published, detached)."""
        with torch.no_grad():
            if not self.agent.begin(step):
                self.agent.end()
                return False
            for layer, t in zip(layers, tensors):
                # A refused layer (say, a name too long) is counted; the others still go.
                self._publish_one(layer, t, base)
            return self.agent.end()

    def _publish_one(self, layer, t, base):
        piece = self._pieces.get(id(layer))
        dtype = _DTYPE.get(t.dtype, "f32")
        args = (layer.name, layer.kind, dtype, tuple(t.shape))
        if not piece and self._rank != 0 and self._pieces:
            # A layer every rank holds whole: rank 0 sends it.
            self.agent.publish_pointer(*args, None, base, elsewhere=True)
            return
        if t.device.type == "cpu" and t.dtype in _DTYPE and t.is_contiguous():
            # The C library copies it once, straight from the tensor's memory, if it wants it.
            self.agent.publish_pointer(*args, t.data_ptr(), base, piece)
            return
        # A copy of its own first: only when the agent will take it now.
        nbytes = t.numel() * (4 if dtype == "f32" else 2)
        if not self.agent.wanted(nbytes):
            self.agent.publish_pointer(*args, None, base, piece)
            return
        if t.dtype not in _DTYPE:
            t = t.float()
        if t.device.type != "cpu":
            t = self._to_host(t)
        t = t.contiguous()
        self.agent.publish_pointer(*args, t.data_ptr(), base, piece)

    def _to_host(self, t):
        """t copied into the pinned host buffer that every GPU layer shares, one at a time:
        the agent copies it before the next one needs the buffer. Designed for CUDA; untested
        here (no GPU in CI)."""
        nbytes = t.numel() * t.element_size()
        if self._staging is None or self._staging.numel() < nbytes:
            most = max(x.tensor().numel() * x.tensor().element_size() for x in self.layers)
            self._staging = torch.empty(max(most, nbytes), dtype=torch.uint8, pin_memory=True)
        buf = self._staging[:nbytes].view(t.dtype).view(t.shape)
        buf.copy_(t)
        return buf

    # -- scalars, control, lifetime --------------------------------------------------------

    def log(self, step=None, **scalars):
        """Sends named numbers (loss=..., acc=..., lr=...) at `step` (default: the step count).
        Tensors are converted with float(). Never raises for monitor trouble."""
        if self.agent is None:
            return False
        try:
            return self.agent.log(self.steps if step is None else step, **scalars)
        except Exception as e:
            self._swallow(e)
            return False

    def should_stop(self):
        """The monitor's stop reason (a string) once it asked the run to stop, else None (always
        None on a data-parallel rank other than 0: broadcast rank 0's answer)."""
        if self.agent is None:
            return None
        try:
            return self.agent.should_stop()
        except Exception as e:
            self._swallow(e)
            return None

    @property
    def drops(self):
        """Snapshots dropped because the monitor was slow or absent."""
        return self.stats.get("snapshots_dropped", 0)

    @property
    def stats(self):
        """The agent's counters (see Agent.stats) plus this watcher's steps and errors."""
        agent = self.agent.stats if self.agent is not None else {}
        return dict(agent, steps=self.steps, watcher_errors=self.errors)

    def close(self):
        """Removes the hooks and closes the agent (sends goodbye, flushes within linger_ms)."""
        self._remove_hook()
        if self.agent is not None:
            self.agent.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
