# SPDX-License-Identifier: Apache-2.0
"""Loads libalphatop_core.so and declares the analyzer API of core/include/alphatop/analyze.h
(at_analyzer_*: a layer job in, at_metrics out), for alphatop.analyze(). The library is looked up
as alphatop._lib looks up both: $ALPHATOP_CORE_LIB (the .so or its directory), next to this
package, the installed prefix's library directory, build*/core/ of a source checkout, the dynamic
loader's search for its SONAME.

The ctypes structs below mirror the C ones field for field; the library's own sizeof checks
(at_analyzer_opts_size, at_metrics_size) refuse a library built from another header.
"""

import ctypes

from . import _lib

LIBNAME = "libalphatop_core.so"

# at_dtype and at_layer_kind (core/include/alphatop/htsr.h).
DTYPES = {"f32": 0, "f16": 1, "bf16": 2}
KINDS = {"linear": 0, "conv2d": 1, "embedding": 2, "conv1d": 3}
FIT_SKIPPED = 2  # at_fit_status


class HtsrOpts(ctypes.Structure):
    """Mirror of at_htsr_opts."""

    _fields_ = [
        ("min_evals", ctypes.c_int64),
        ("max_evals", ctypes.c_int64),
        ("max_N", ctypes.c_int64),
        ("detx", ctypes.c_int),
        ("mp_fit", ctypes.c_int),
        ("traps", ctypes.c_int),
        ("seed", ctypes.c_uint64),
    ]


class FastOpts(ctypes.Structure):
    """Mirror of at_fast_opts."""

    _fields_ = [
        ("skip_rel", ctypes.c_double),
        ("two_pass_rel", ctypes.c_double),
        ("max_passes", ctypes.c_int),
        ("converge_tol", ctypes.c_double),
        ("max_warm_rel", ctypes.c_double),
        ("k_min", ctypes.c_int64),
        ("max_block_frac", ctypes.c_double),
        ("tail_change", ctypes.c_double),
        ("refresh_every", ctypes.c_int),
        ("horizon", ctypes.c_int),
        ("min_evals", ctypes.c_int64),
        ("seed", ctypes.c_uint64),
        ("panel_bytes", ctypes.c_size_t),
    ]


class AnalyzerOpts(ctypes.Structure):
    """Mirror of at_analyzer_opts."""

    _fields_ = [
        ("fast", ctypes.c_int),
        ("htsr", HtsrOpts),
        ("fast_opts", FastOpts),
        ("delta_exact", ctypes.c_int),
        ("keep_evals", ctypes.c_int),
    ]


class Tensor(ctypes.Structure):
    """Mirror of at_tensor: a borrowed view of row-major weights."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int),
        ("kind", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("shape", ctypes.c_int64 * 4),
    ]


class LayerJob(ctypes.Structure):
    """Mirror of at_layer_job."""

    _fields_ = [
        ("w", ctypes.POINTER(Tensor)),
        ("base", ctypes.POINTER(Tensor)),
        ("lora_a", ctypes.POINTER(Tensor)),
        ("lora_scale", ctypes.c_double),
        ("state", ctypes.c_void_p),
    ]


_I64 = ("N", "M", "rf", "num_evals", "rank_loss", "weak_rank_loss", "num_pl_spikes",
        "matrix_rank", "detx_num", "mp_num_spikes", "num_traps")
_ENUMS = ("status", "warning", "mode")
_METRIC_FIELDS = (
    "N", "M", "rf", "Q", "num_evals",
    "sv_max", "sv_min", "lambda_max", "rank_loss", "weak_rank_loss",
    "status", "warning", "alpha", "xmin", "xmax", "D", "sigma", "num_pl_spikes",
    "norm", "log_norm", "spectral_norm", "log_spectral_norm", "alpha_weighted",
    "log_alpha_norm", "stable_rank", "entropy", "matrix_rank",
    "detx_num", "detx_val", "mp_num_spikes", "mp_sigma", "mp_softrank", "mp_bulk_max",
    "num_traps", "trap_max_ratio",
    "mode",
)


class Metrics(ctypes.Structure):
    """Mirror of at_metrics (integers -1 and doubles NaN where a value does not exist)."""

    _fields_ = [
        (name, ctypes.c_int64 if name in _I64 else ctypes.c_int if name in _ENUMS
         else ctypes.c_double)
        for name in _METRIC_FIELDS
    ]


def _declare(lib):
    c = ctypes
    p = c.c_void_p
    opts, metrics = c.POINTER(AnalyzerOpts), c.POINTER(Metrics)
    return _lib.declare(lib, {
        "at_analyzer_opts_default": (None, [opts]),
        "at_analyzer_opts_size": (c.c_size_t, []),
        "at_metrics_size": (c.c_size_t, []),
        "at_analyzer_new": (p, [opts, c.POINTER(c.c_int)]),
        "at_analyzer_free": (None, [p]),
        "at_analyzer_opts_get": (opts, [p]),
        "at_analyzer_run": (c.c_int, [p, c.POINTER(LayerJob), metrics, p]),
        "at_analyzer_evals": (c.POINTER(c.c_double), [p, c.POINTER(c.c_size_t)]),
        "at_analyzer_last_error": (c.c_char_p, [p]),
        "at_metrics_init": (None, [metrics, c.c_int]),
        "at_fit_status_name": (c.c_char_p, [c.c_int]),
        "at_warning_reference_name": (c.c_char_p, [c.c_int]),
        "at_mode_name": (c.c_char_p, [c.c_int]),
        "at_strerror": (c.c_char_p, [c.c_int]),
    })


def _load():
    return _lib.load_library(LIBNAME, "ALPHATOP_CORE_LIB", "core", _declare,
                             {"at_analyzer_opts_size": AnalyzerOpts,
                              "at_metrics_size": Metrics}, "analyze.h")


# The loaded core library (loaded on first use). Raises alphatop.LibraryNotFound.
library = _lib.cached(_load)


def tensor(pointer, dtype, kind, shape):
    """An at_tensor over memory at `pointer` (an int): dtype "f32"/"f16"/"bf16", the protocol's
    kind ("linear", "embedding", "conv2d", "conv1d") and shape as the trainer sends them. A 3-D
    conv1d (out, in, k) becomes the conv2d (out, in, 1, k), as the monitor analyses it."""
    shape = tuple(int(d) for d in shape)
    if kind == "conv1d" and len(shape) == 3:
        kind, shape = "conv2d", (shape[0], shape[1], 1, shape[2])
    if len(shape) > 4:
        raise ValueError(f"alphatop: a {len(shape)}-D tensor has no at_tensor view")
    t = Tensor(data=pointer, dtype=DTYPES[dtype], kind=KINDS[kind], ndim=len(shape))
    t.shape[: len(shape)] = shape
    return t


class Analyzer(_lib.Owner):
    """One at_analyzer: every layer analysed on it reuses its workspaces. One thread at a time.
    close() (or a with block) frees it.

    fast: fast mode (docs/fast.md; each call a cold, one-off analysis); min_evals, max_evals,
    max_N: which layers are skipped; detx, mp_fit, traps, seed: the optional metrics.
    """

    def __init__(self, fast=False, min_evals=10, max_evals=15000, max_N=50000, detx=False,
                 mp_fit=False, traps=False, seed=0):
        self._lib = library()
        o = AnalyzerOpts()
        self._lib.at_analyzer_opts_default(ctypes.byref(o))
        o.fast = 1 if fast else 0
        h = o.htsr
        h.min_evals, h.max_evals, h.max_N = int(min_evals), int(max_evals), int(max_N)
        h.detx, h.mp_fit, h.traps = int(bool(detx)), int(bool(mp_fit)), int(bool(traps))
        h.seed = int(seed)
        status = ctypes.c_int(0)
        self._handle = self._lib.at_analyzer_new(ctypes.byref(o), ctypes.byref(status))
        if not self._handle:
            raise MemoryError("alphatop: " + self._lib.at_strerror(status.value).decode())

    def run(self, w, lora_a=None, lora_scale=1.0):
        """Analyses w (a Tensor; for LoRA the B factor, with lora_a the A factor). Returns
        (Metrics, None), or (Metrics of an absent layer, the error's detail) when the layer
        cannot be analysed (NaN/Inf, bad shape, out of memory, ...)."""
        job = LayerJob(w=ctypes.pointer(w), lora_scale=float(lora_scale))
        if lora_a is not None:
            job.lora_a = ctypes.pointer(lora_a)
        m = Metrics()
        rc = self._lib.at_analyzer_run(self._handle, ctypes.byref(job), ctypes.byref(m), None)
        if rc >= 0:
            return m, None
        detail = self._lib.at_analyzer_last_error(self._handle)
        return self.absent(), detail.decode(errors="replace")

    def absent(self):
        """Metrics of a layer that has none (integers -1, doubles NaN)."""
        m = Metrics()
        self._lib.at_metrics_init(ctypes.byref(m), 0)
        return m

    def names(self, m):
        """(status, warning, mode) of m as text; the warning as `scan --json` writes it (the
        reference's labels: a failed fit is "over-trained"; a skipped layer has none)."""
        lib = self._lib
        status = lib.at_fit_status_name(m.status).decode()
        warning = lib.at_warning_reference_name(m.warning).decode()
        if m.status == FIT_SKIPPED:
            warning = ""
        return status, warning, lib.at_mode_name(m.mode).decode()

    def _free(self, handle):
        self._lib.at_analyzer_free(handle)
