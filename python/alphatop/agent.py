# SPDX-License-Identifier: Apache-2.0
"""Agent: the trainer side of alphatop for any framework, over the C library (ctypes).

Publishes weight snapshots (numpy arrays or raw pointers) and scalars to a monitor, and reports
the monitor's stop requests. Monitor trouble (absent, slow, restarted) never raises: a layer
that does not fit the byte budget now goes at a later step, a snapshot due while the last one
is still going out is dropped, and both are counted (see `stats`).
"""

import ctypes
import os
import socket
import warnings

try:
    import numpy as np
except ImportError as e:  # an extra, not a dependency (python/pyproject.toml says why)
    raise ImportError("alphatop needs numpy: apt install python3-numpy (Debian), or pip install "
                      "numpy") from e

from . import _lib

# The loaded agent library (loaded on first use). Raises _lib.LibraryNotFound.
library = _lib.cached(_lib.load)


def default_endpoint():
    """The endpoint used when none is given: $ALPHATOP_ENDPOINT, else a per-user ipc path."""
    buf = ctypes.create_string_buffer(1024)
    library().at_proto_default_endpoint(buf, len(buf))
    return buf.value.decode()


def keygen(path):
    """Writes a CurveZMQ key pair to `path` (secret, mode 0600) and `path`.pub (public)."""
    lib = library()
    rc = lib.at_agent_keygen(os.fsencode(path))
    if rc != _lib.AT_OK:
        raise OSError(f"alphatop: keygen {path}: {lib.at_strerror(rc).decode()}")


_NUMPY_DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16"}


def _run_id():
    return f"{socket.gethostname()}-{os.getpid()}"


class Agent(_lib.Owner):
    """One run's connection to the monitor.

    endpoint: "ipc://..." or "tcp://host:port"; None: $ALPHATOP_ENDPOINT or the local default.
    run: the run id shown by the monitor (default host-pid). model, framework: shown in the
    monitor. every: the snapshot interval announced (the monitor may change it, see `due`).
    tags: dict of str -> str sent with the hello. rank/world_size: for distributed runs.
    budget_bytes: most bytes the agent holds (default None: automatic, 256 MiB or twice the
    largest layer, so every layer fits; a layer larger than an explicit budget is never sent,
    said once by a RuntimeWarning and counted in stats["layers_skipped"]). linger_ms: how long
    close() waits to flush. checksum: send a CRC-32 of every payload. verbose: let the library
    print its errors on stderr (silent by default). curve_server_key / curve_client_keyfile:
    CurveZMQ encryption (docs/protocol.md).

    A snapshot is a pass over the layers, begin(), publish*() or add() per layer, end(); a
    snapshot the budget cannot hold at once goes out over several steps: due() stays True and
    every pass sends the layers still missing (docs/protocol.md section 6).

    Raises alphatop.LibraryNotFound if the C library is missing (or built from another
    agent.h) and OSError if the agent cannot be opened (bad endpoint, key file or tag: a key of
    1..63 bytes, a value under 1024, at most 32 tags); nothing after that raises for monitor
    trouble.
    Not fork-aware by itself: in a forked child every call is a no-op (the C library sees to it).
    """

    def __init__(
        self,
        endpoint=None,
        run=None,
        model="",
        framework="numpy",
        every=100,
        tags=None,
        rank=0,
        world_size=1,
        budget_bytes=None,
        linger_ms=None,
        checksum=False,
        verbose=False,
        curve_server_key=None,
        curve_client_keyfile=None,
    ):
        self._lib = library()
        opts = _lib.Opts()
        self._lib.at_agent_opts_default(ctypes.byref(opts))
        # ctypes keeps only the pointers: the bytes objects must outlive at_agent_new, which
        # copies the strings.
        keep = [s.encode() if s else None for s in (model, framework, curve_server_key)]
        keyfile = os.fsencode(curve_client_keyfile) if curve_client_keyfile else None
        opts.model, opts.framework, opts.curve_server_key = keep
        opts.curve_client_keyfile = keyfile
        opts.rank, opts.world_size, opts.interval = int(rank), int(world_size), int(every)
        if budget_bytes is not None:
            opts.budget_bytes = int(budget_bytes)
        if linger_ms is not None:
            opts.linger_ms = int(linger_ms)
        opts.checksum = 1 if checksum else 0
        opts.verbose = 1 if verbose else 0
        self.run = run or _run_id()
        for key in tags or {}:
            if not isinstance(key, str):
                raise TypeError("alphatop: tag keys must be strings")
        # The tags travel in the options, so the first hello already carries them.
        items = list((tags or {}).items())
        tag_keys = (ctypes.c_char_p * len(items))(*(k.encode() for k, _ in items))
        tag_values = (ctypes.c_char_p * len(items))(*(str(v).encode() for _, v in items))
        opts.tag_keys = ctypes.cast(tag_keys, ctypes.POINTER(ctypes.c_char_p))
        opts.tag_values = ctypes.cast(tag_values, ctypes.POINTER(ctypes.c_char_p))
        opts.ntags = len(items)
        self._handle = self._lib.at_agent_new(
            self.run.encode(), endpoint.encode() if endpoint else None, ctypes.byref(opts)
        )
        if not self._handle:
            raise OSError("alphatop: " + self._lib.at_agent_last_error(None).decode())
        self.errors = 0  # calls the library refused for a reason other than a full budget
        self.last_error = ""
        self._never_fit = set()  # layers said to be larger than the budget

    # -- helpers ---------------------------------------------------------------------------

    def _check(self, rc):
        """True when rc is AT_OK. A full budget (AT_ERR_AGAIN) is counted by the library; any
        other failure is counted here and its message kept in last_error."""
        if rc == _lib.AT_OK:
            return True
        if rc != _lib.AT_ERR_AGAIN:
            self.errors += 1
            self.last_error = self._lib.at_agent_last_error(self._handle).decode(errors="replace")
        return False

    @property
    def closed(self):
        return self._handle is None

    # -- snapshots -------------------------------------------------------------------------

    def due(self, step):
        """True when a pass over the layers should be made at `step`: a snapshot is due (a
        multiple of the current interval, which the monitor may change) or one is still going
        out, and snapshots are not paused."""
        if self._handle is None:
            return False
        return bool(self._lib.at_agent_snapshot_due(self._handle, int(step)))

    @property
    def interval(self):
        return int(self._lib.at_agent_interval(self._handle)) if self._handle else 0

    def begin(self, step):
        """Starts a pass at `step`: a new snapshot, or the next pass of the one going out.
        Returns False when nothing will be sent (paused or closed); publish() and end() are then
        cheap no-ops."""
        if self._handle is None:
            return False
        return self._check(self._lib.at_agent_snapshot_begin(self._handle, int(step)))

    def wanted(self, nbytes):
        """True when the pass's next layer, of nbytes bytes, would be copied now: ask before a
        costly copy (a GPU tensor to host memory), and publish None when it is not."""
        return self._handle is not None and bool(
            self._lib.at_agent_layer_wanted(self._handle, int(nbytes))
        )

    def publish_pointer(self, name, kind, dtype, shape, pointer, base=False, piece=None,
                        elsewhere=False):
        """Adds the pass's next layer from raw memory: `pointer` (int address) holds
        prod(shape) elements of `dtype` ("f32", "f16", "bf16"), row-major, native byte order.
        The library copies it before returning, if it fits now; the memory stays the caller's.
        kind: "linear", "conv1d", "conv2d", "embedding", "lora_A", "lora_B". base=True: base
        weights of a fine-tune. pointer None: a layer wanted() said no to (its place is kept).
        piece=(full_shape, offset): this is a rank's slice of a sharded layer, starting at
        offset in the whole. elsewhere=True: another rank publishes this layer. Returns True
        when the layer went out now (or is another rank's)."""
        if self._handle is None:
            return False
        n = len(shape)
        dims = (ctypes.c_int64 * n)(*shape)
        full = (ctypes.c_int64 * n)(*piece[0]) if piece else None
        offset = (ctypes.c_int64 * n)(*piece[1]) if piece else None
        flags = (_lib.AT_AGENT_BASE if base else 0) | (_lib.AT_AGENT_ELSEWHERE if elsewhere else 0)
        rc = self._lib.at_agent_publish_slice(
            self._handle, name.encode(), _lib.KINDS[kind], _lib.DTYPES[dtype], n, dims, pointer,
            flags, full, offset,
        )
        if rc == _lib.AT_ERR_SIZE:
            drop = self._lib.at_agent_last_drop(self._handle).decode(errors="replace")
            if drop.startswith(name + " ("):
                # Never sent, and said once: the library counts it, the monitor names it.
                if name not in self._never_fit:
                    self._never_fit.add(name)
                    warnings.warn("alphatop: " + drop, RuntimeWarning, stacklevel=2)
                return False
        return self._check(rc)

    def end(self):
        """Ends the pass. True when the snapshot went out whole (with its end); False while it
        goes on at the next steps (layers still to send), or when it was dropped or paused."""
        if self._handle is None:
            return False
        return self._check(self._lib.at_agent_snapshot_end(self._handle))

    def publish(self, name, array, step, kind=None, dtype=None, base=False):
        """Sends one numpy array as a one-layer snapshot at `step` (begin, add, end).

        array: float32 or float16 (other float types are converted to float32); a uint16 array
        with dtype="bf16" is sent as bfloat16. kind defaults by ndim: 2 linear, 3 conv1d,
        4 conv2d. To send several layers as one snapshot, use begin(), add() and end().
        Returns True when queued."""
        if not self.begin(step):
            self.end()
            return False
        self.add(name, array, kind=kind, dtype=dtype, base=base)
        return self.end()

    def add(self, name, array, kind=None, dtype=None, base=False):
        """Adds a numpy array to the open snapshot (see publish for the types). Returns True
        when added."""
        a = np.asarray(array)
        if dtype == "bf16":
            if a.dtype != np.uint16:
                raise TypeError("alphatop: bf16 data must be given as a uint16 array of bits")
        else:
            dtype = _NUMPY_DTYPES.get(a.dtype)
            if dtype is None:
                a, dtype = a.astype(np.float32), "f32"
        a = np.ascontiguousarray(a)
        if kind is None:
            kind = {2: "linear", 3: "conv1d", 4: "conv2d"}.get(a.ndim)
            if kind is None:
                raise ValueError(f"alphatop: {name}: cannot publish a {a.ndim}-D array")
        return self.publish_pointer(name, kind, dtype, a.shape, a.ctypes.data, base=base)

    # -- scalars and control ---------------------------------------------------------------

    def log(self, step, **scalars):
        """Sends named numbers at `step` (loss, accuracy, lr, ...). Values are converted with
        float(); non-finite ones travel as null. True when queued."""
        if self._handle is None or not scalars:
            return False
        items = list(scalars.items())
        ok = True
        for i in range(0, len(items), _lib.MAX_SCALARS):
            chunk = items[i : i + _lib.MAX_SCALARS]
            names = (ctypes.c_char_p * len(chunk))(*[k.encode() for k, _ in chunk])
            values = (ctypes.c_double * len(chunk))(*[float(v) for _, v in chunk])
            ok &= self._check(self._lib.at_agent_log(self._handle, int(step), len(chunk), names, values))
        return ok

    def should_stop(self):
        """The monitor's stop reason (a string) once it has asked the run to stop, else None."""
        if self._handle is None:
            return None
        buf = ctypes.create_string_buffer(1024)
        if self._lib.at_agent_should_stop(self._handle, buf, len(buf)):
            return buf.value.decode(errors="replace") or "stop requested"
        return None

    @property
    def paused(self):
        return bool(self._lib.at_agent_paused(self._handle)) if self._handle else False

    @property
    def stats(self):
        """Counters as a dict: snapshots_sent, snapshots_dropped (due while the last one was
        still going out, or abandoned), snapshots_skipped (paused), messages_dropped,
        bytes_queued, bytes_in_flight, peak_in_flight, budget_bytes, controls_received,
        layers_sent, layers_deferred (did not fit then, went later), layers_skipped (larger
        than the budget: never sent), sweep_layers / sweep_done (the snapshot going out: its
        layers, -1 before its first pass ended, and those done; 0 when none is), drop_reason
        (why the last snapshot was dropped or a layer left out, in words), plus errors (calls
        refused for a reason other than a full budget)."""
        out = {"errors": self.errors}
        if self._handle is not None:
            s = _lib.Stats()
            self._lib.at_agent_stats_get(self._handle, ctypes.byref(s))
            out.update({name: getattr(s, name) for name, _ in _lib.Stats._fields_})
            out["drop_reason"] = self._lib.at_agent_last_drop(self._handle).decode(
                errors="replace"
            )
        return out

    def close(self):
        """Sends goodbye and waits at most linger_ms for queued messages. Idempotent."""
        super().close()

    def _free(self, handle):
        self._lib.at_agent_free(handle)
