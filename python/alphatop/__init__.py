# SPDX-License-Identifier: Apache-2.0
"""alphatop: watch every layer of a neural network learn, live (docs/python.md).

    import alphatop
    watcher = alphatop.watch(model, every=100, optimizer=opt)   # PyTorch
    ...
    alphatop.log(step, loss=loss.item())
    if alphatop.should_stop(): break

or, with any framework, alphatop.Agent(...).publish(name, numpy_array, step).
Needs the C library libalphatop_agent.so (see alphatop._lib for where it is looked up).

Offline, in the reference's (WeightWatcher's) terms, in-process over libalphatop_core.so:

    details = alphatop.analyze(model)          # or a .safetensors / .pt / .bin path
    summary = alphatop.get_summary(details)

torch and pandas are imported only by what needs them (watch, find_layers; analyze).
"""

import importlib

from ._lib import LibraryNotFound
from .agent import Agent, default_endpoint, keygen

__version__ = "0.1.0"
__all__ = [
    "Agent",
    "LibraryNotFound",
    "Watcher",
    "analyze",
    "default_endpoint",
    "find_layers",
    "get_summary",
    "keygen",
    "log",
    "should_stop",
    "skipped",
    "watch",
]

_last = None


def watch(model, every=100, endpoint=None, run=None, tags=None, optimizer=None, hook="auto",
          send_base=False, layers=None, **options):
    """Starts streaming snapshots of a PyTorch model's weights to the alphatop monitor.

    every: snapshot interval in optimizer steps (the monitor may change it). endpoint: where the
    monitor listens (default $ALPHATOP_ENDPOINT or a local ipc path). run: run id (default
    host-pid). tags: dict shown by the monitor. optimizer + hook: how steps are counted --
    "auto" hooks optimizer.step when an optimizer is given, else counts training forwards;
    None: call watcher.step() after each optimizer step yourself. send_base=True: send the
    current weights once as the fine-tune's base, so the monitor analyses W - W_base.
    layers: which weights (None: every layer alphatop recognises; a regex searched in the
    names, or a function of an alphatop.layers.Layer returning True; see alphatop.layers).
    options: Agent options (budget_bytes, linger_ms, checksum, curve keys, ...).

    Returns a Watcher (also a context manager; watcher.skipped says why each other parameter
    is not sent); alphatop.log() and alphatop.should_stop() use the last one created.
    """
    global _last
    from .torch_watch import Watcher

    _last = Watcher(model, every=every, endpoint=endpoint, run=run, tags=tags,
                    optimizer=optimizer, hook=hook, send_base=send_base, layers=layers, **options)
    return _last


def log(step=None, **scalars):
    """Sends scalars through the last watcher (no-op without one). See Watcher.log."""
    return _last.log(step, **scalars) if _last is not None else False


def should_stop():
    """The last watcher's stop reason, or None (also None when there is no watcher)."""
    return _last.should_stop() if _last is not None else None


# Names whose module needs torch or pandas, imported on first use so numpy-only users never
# load them; and the submodules, so that alphatop.torch_watch.find_layers works after a plain
# `import alphatop`.
_LAZY = {"Watcher": "torch_watch", "find_layers": "layers", "analyze": "offline",
         "get_summary": "offline", "skipped": "offline"}
_SUBMODULES = ("layers", "offline", "safetensors", "torch_watch")


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module("." + _LAZY[name], __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'alphatop' has no attribute {name!r}")
