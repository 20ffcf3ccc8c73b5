# SPDX-License-Identifier: Apache-2.0
"""alphatop.analyze(): a model's HTSR metrics as a pandas DataFrame, in-process.

For WeightWatcher users, one line changes:

    details = ww.WeightWatcher(model=model).analyze()      # before
    details = alphatop.analyze(model)                       # after
    summary = alphatop.get_summary(details)                 # watcher.get_summary()

The rows are `alphatop scan --json`'s (the reference's column names, docs/metrics.md), computed
by the C core in this process through libalphatop_core.so (alphatop._core): no subprocess, no
file written. Layers are chosen as watch() chooses them (alphatop.layers).
"""

import collections.abc
import logging
import os
import zipfile

import numpy as np
import pandas as pd

from . import _core
from .layers import Arrays, describe_skipped, lora_partner, select

_log = logging.getLogger("alphatop")

# `scan --json`'s columns, in its order (tui/checkpoint/metrics_fmt.c), as (column, at_metrics
# field); the optional ones only when asked for.
_COLUMNS = [(c, c) for c in (
    "N", "M", "rf", "Q", "num_evals", "alpha", "xmin", "xmax", "D", "sigma", "num_pl_spikes",
    "status", "warning", "alpha_weighted", "log_norm", "log_spectral_norm", "spectral_norm",
    "norm", "log_alpha_norm", "stable_rank", "matrix_rank", "entropy", "sv_max", "sv_min",
    "lambda_max", "rank_loss", "weak_rank_loss")]
_DETX = [("detX_num", "detx_num"), ("detX_val", "detx_val")]
_MP = [("num_spikes", "mp_num_spikes"), ("sigma_mp", "mp_sigma"), ("mp_softrank", "mp_softrank"),
       ("bulk_max", "mp_bulk_max")]
_TRAPS = [("num_traps", "num_traps"), ("trap_max_ratio", "trap_max_ratio")]
_LEAD = ["layer_id", "name", "longname", "layer_type"]
# The model summary: docs/metrics.md section 4.
SUMMARY_COLUMNS = ("log_norm", "alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm",
                   "stable_rank")
# What a LoRA pair (B A) is called in the rows, as scan calls it.
LORA_SUFFIX = ".lora_BA"
_FILE_KINDS = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_NUMPY_KINDS = (".npy", ".npz")


def analyze(model, layers=None, fast=False, min_evals=10, max_evals=15000, max_N=50000,
            detX=False, mp_fit=False, traps=False, seed=0, lora_scale=1.0):
    """HTSR metrics of every layer of `model`, one row per layer, as a pandas DataFrame.

    model: a torch nn.Module; a state dict (mapping name -> torch tensor or numpy array); or
    a path: a .safetensors file, a torch checkpoint (.pt, .pth, .bin, .ckpt: a state dict,
    read with torch.load(weights_only=True) where torch has it), a numpy .npy (one layer, named
    after the file) or .npz file, or a directory of safetensors or torch files (its
    *.safetensors, else its torch files, in name order). A file's tensors are chosen, named
    and skipped as `alphatop scan` does.

    layers: which weights (None: as watch() and `alphatop scan` choose; a regex searched in
    each name; a function of an alphatop.layers.Layer). fast: fast mode (float32 spectra,
    docs/fast.md); otherwise exact, the reference's method. min_evals, max_evals, max_N:
    layers outside are rows with status "skipped" (the reference leaves them out: filter with
    details[details.status != "skipped"]). detX, mp_fit, traps (+ seed): the optional columns
    (scan --detx, --mp, --traps). lora_scale: LoRA pairs' scaling (PEFT's lora_alpha / r).

    Columns: layer_id, name, longname, layer_type, then scan --json's (N, M, rf, Q, num_evals,
    alpha, xmin, xmax, D, sigma, num_pl_spikes, status, warning, alpha_weighted, log_norm,
    log_spectral_norm, spectral_norm, norm, log_alpha_norm, stable_rank, matrix_rank, entropy,
    sv_max, sv_min, lambda_max, rank_loss, weak_rank_loss, the optional ones, mode), then error
    and skipped. Absent values are NaN (floats) and -1 (integers), as in scan. A layer that
    cannot be analysed (NaN/Inf or all-zero weights, a bad shape) is a row with status "error"
    and the reason in `error`; a layer skipped for its size has status "skipped" and the reason
    in `skipped` (scan --json's "skipped", e.g. "too few eigenvalues for a fit (4 <
    --min-evals 10)"). details.attrs["skipped"] lists (name, reason) for every parameter not
    analysed (biases, norms, tied weights, unrecognised tensors); alphatop.skipped(details)
    gives them as a DataFrame, scan --json's skipped rows.

    Raises TypeError (model of another type), FileNotFoundError, ValueError (a file alphatop
    cannot read), alphatop.LibraryNotFound (libalphatop_core.so missing).
    """
    sel = select(_open(model), layers)
    if sel.skipped:
        _log.info("alphatop: analysing %d layers; not analysed: %s (details.attrs['skipped'] "
                  "says why, per parameter)", len(sel.layers), describe_skipped(sel.skipped))
    columns = _COLUMNS + (_DETX if detX else []) + (_MP if mp_fit else []) + \
        (_TRAPS if traps else []) + [("mode", "mode")]
    by_name = {layer.name: layer for layer in sel.layers}
    rows = []
    with _core.Analyzer(fast=fast, min_evals=min_evals, max_evals=max_evals, max_N=max_N,
                        detx=detX, mp_fit=mp_fit, traps=traps, seed=seed) as an:
        for layer in sel.layers:
            if layer.kind == "lora_B":  # reported with its A, as one layer B A
                continue
            if layer.kind == "lora_A":
                partner, module, _ = lora_partner(layer.name)
                lead = [layer.layer_id, module + LORA_SUFFIX, module, "lora"]
                b, keep_b = _c_tensor(by_name[partner], "linear")
                a, keep_a = _c_tensor(layer, "linear")
                m, error = an.run(b, lora_a=a, lora_scale=lora_scale)
                del keep_a, keep_b
            else:
                lead = [layer.layer_id, layer.name, layer.longname, layer.kind]
                w, keep = _c_tensor(layer, layer.kind)
                m, error = an.run(w)
                del keep
            rows.append(lead + _row(an, m, error, columns) +
                        [_skip_reason(m, min_evals, max_evals, max_N) if error is None else ""])
    details = pd.DataFrame(rows, columns=_LEAD + [c for c, _ in columns] + ["error", "skipped"])
    details.attrs["skipped"] = sel.skipped
    return details


def skipped(details):
    """The parameters analyze() did not analyse (details.attrs["skipped"]) as a DataFrame with
    columns name, status ("skipped") and skipped (the reason): `alphatop scan --json`'s rows of
    the tensors that are not layers, for a file."""
    pairs = details.attrs.get("skipped", [])
    return pd.DataFrame([(name, "skipped", why) for name, why in pairs],
                        columns=["name", "status", "skipped"])


def _skip_reason(m, min_evals, max_evals, max_N):
    """Why a layer was skipped for its size, in scan's words ("" when it was not)."""
    if m.status != _core.FIT_SKIPPED:
        return ""
    if m.num_evals < min_evals:
        return f"too few eigenvalues for a fit ({m.num_evals} < --min-evals {min_evals})"
    if m.num_evals > max_evals:
        return f"{m.num_evals} eigenvalues > --max-evals {max_evals}"
    return f"N = {m.N} > max_N {max_N}"


def get_summary(details):
    """The model summary of a details DataFrame (docs/metrics.md section 4), as the reference's
    get_summary() and scan's summary line give it: {"layers": analysed layers, and the mean
    of log_norm, alpha, alpha_weighted, log_alpha_norm, log_spectral_norm, stable_rank}.
    Skipped and error rows are left out; failed fits enter with alpha = -1; a non-finite value
    is left out of its column's mean only (NaN when a column has none)."""
    analysed = details[~details["status"].isin(["skipped", "error"])]
    summary = {"layers": len(analysed)}
    for c in SUMMARY_COLUMNS:
        values = analysed[c].replace([np.inf, -np.inf], np.nan)
        summary[c] = float(values.mean()) if values.notna().any() else float("nan")
    return summary


def _row(an, m, error, columns):
    """The metric columns of one layer and its error ("" when none)."""
    if error is None and m.status != _core.FIT_SKIPPED and m.lambda_max == 0.0:
        m, error = an.absent(), "all weights are zero"  # as scan reports it: no spectrum
    status, warning, mode = an.names(m)
    text = {"status": "error" if error else status, "warning": "" if error else warning,
            "mode": mode}
    return [text[f] if f in text else getattr(m, f) for _, f in columns] + \
        ["cannot analyse: " + error if error else ""]


def _c_tensor(layer, kind):
    """(an at_tensor over the layer's weights as published, the object owning its memory)."""
    t = layer.tensor()
    if hasattr(t, "data_ptr"):  # torch: float32/16 and bfloat16 go as they are
        dtype = {"torch.float32": "f32", "torch.float16": "f16", "torch.bfloat16": "bf16"}.get(
            str(t.dtype))
        t = t.cpu()
        if dtype is None:
            t, dtype = t.float(), "f32"
        t = t.contiguous()
        return _core.tensor(t.data_ptr(), dtype, kind, t.shape), t
    a = np.asarray(t)
    dtype = {np.dtype("<f4"): "f32", np.dtype("<f2"): "f16"}.get(a.dtype)
    if dtype is None:
        a, dtype = a.astype(np.float32), "f32"
    # C reads it as row-major floats: contiguous, and aligned (a file's views may not be).
    a = np.ascontiguousarray(a)
    if not a.flags.aligned:
        a = a.copy()
    return _core.tensor(a.ctypes.data, dtype, kind, a.shape), a


def _open(model):
    """model as select() takes it: an nn.Module or a mapping name -> tensor."""
    if isinstance(model, (str, os.PathLike)):
        return _read(os.fspath(model))
    if hasattr(model, "named_modules") or hasattr(model, "items"):
        return model
    raise TypeError(
        f"alphatop.analyze: expected a torch nn.Module, a state dict or a path, not "
        f"{type(model).__name__}"
    )


def _read(path):
    """The tensors of a checkpoint file, or of every checkpoint in a directory."""
    if os.path.isdir(path):
        names = sorted(os.listdir(path))
        files = [n for n in names if n.endswith(".safetensors")] or \
            [n for n in names if n.endswith(_FILE_KINDS)]
        if not files:
            raise FileNotFoundError(f"alphatop.analyze: {path}: no {', '.join(_FILE_KINDS)} file")
        return _Chain([_read(os.path.join(path, n)) for n in files])
    if not os.path.exists(path):
        raise FileNotFoundError(f"alphatop.analyze: {path}: no such file")
    if path.endswith(".safetensors"):
        from . import safetensors

        return safetensors.open_file(path, all_dtypes=True)
    if path.endswith(_FILE_KINDS):
        return _torch_load(path)
    if path.endswith(_NUMPY_KINDS):
        return _numpy_load(path)
    raise ValueError(
        f"alphatop.analyze: {path}: not a {', '.join(_FILE_KINDS + _NUMPY_KINDS)} file")


def _numpy_load(path):
    """A .npy file's array, named after the file, or a .npz archive's arrays by key, chosen as
    `alphatop scan` chooses them (docs/scan.md): the .npy's array whatever its name; in a .npz
    saved from a state dict (a name ends in "weight" or "kernel") the layers by name, in another
    (arr_0, arr_1, ...) every 2-D or 4-D array."""
    try:
        if path.endswith(".npy"):
            name = os.path.basename(path)[: -len(".npy")] or ".npy"
            return Arrays({name: np.load(path, mmap_mode="r")}, single=True)
        with np.load(path) as npz:  # scan reads the entries named *.npy only
            arrays = {k[:-4]: npz[k] for k in npz.zip.namelist() if k.endswith(".npy")
                      and len(k) > 4}
    except (ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"alphatop.analyze: {path}: {e}") from None
    if any(k.endswith(("weight", "kernel")) for k in arrays):
        return arrays
    return Arrays(arrays)


def _torch_load(path):
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch older than 1.13: no weights_only
        obj = torch.load(path, map_location="cpu")
    except Exception as e:
        raise ValueError(f"alphatop.analyze: {path}: not a plain state dict (torch.load with "
                         f"weights_only=True: {e}); load the model and pass it instead") from None
    for key in ("state_dict", "model_state_dict", "model"):  # training checkpoints
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(
            f"alphatop.analyze: {path}: holds a {type(obj).__name__}, not a state dict")
    return obj


class _Chain(collections.abc.Mapping):
    """The tensors of several files (a sharded checkpoint) as one mapping, in file order, each
    read from its own file on access."""

    def __init__(self, parts):
        self._part = {name: part for part in parts for name in part}

    def __len__(self):
        return len(self._part)

    def __iter__(self):
        return iter(self._part)

    def __getitem__(self, name):
        return self._part[name][name]
