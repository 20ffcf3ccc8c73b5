# SPDX-License-Identifier: Apache-2.0
"""Which weights alphatop analyses: one selection for watch() (live) and analyze() (offline).

Every parameter of a PyTorch model (or tensor of a state dict), in model order and named as
model.named_parameters() names it, either becomes a Layer -- a matrix, or a stack of kernel
matrices, in one of the wire protocol's kinds -- or a (name, reason) pair in the skipped list.
docs/python.md ("Which layers") has the table of classes; in short:

  nn.Linear and every class whose name contains "linear" (Megatron's ColumnParallelLinear ...)
  and nn.Embedding / "embedding" classes: the 2-D weight (kinds linear, embedding);
  Hugging Face's Conv1D (GPT-2; weight stored (in, out)): the weight transposed to (out, in);
  nn.Conv1d/2d/3d and "conv1d"/"conv2d"/"conv3d" classes: (out, in, k) as conv1d, (out, in,
  kh, kw) as conv2d, (out, in, kd, kh, kw) as the conv2d (out, in, kd, kh*kw) -- the same
  kd*kh*kw kernel-position matrices; nn.ConvTranspose1d/2d/3d: (in, out, ...) swapped to
  (out, in, ...) first;
  nn.MultiheadAttention: in_proj_weight split into its q, k, v rows (named q_proj_weight,
  k_proj_weight, v_proj_weight, as PyTorch names unpacked projections); out_proj is a Linear;
  nn.LSTM / GRU / RNN: every weight_ih_l*, weight_hh_l* (and LSTM's weight_hr_l*) as linear;
  LoRA factors lora_A / lora_B (loralib parameters, PEFT modules), only as pairs.

A state dict (a file's tensors) is read as `alphatop scan` reads a file: every 2-D or 4-D float
tensor whose name ends in "weight" or "kernel" (Flax's layouts: a dense kernel (in, out) as
stored -- its transpose has the same spectrum -- a conv kernel (kh, kw, in, out) as (out, in,
kh, kw)); a 3-D one (a Conv1d weight) only when selected; LoRA pairs by name.

layers= steers it: a regex (searched in the layer name) or a predicate (called with the Layer)
replaces the default choice among every candidate, i.e. every float tensor of 2 to 5
dimensions (of a state dict: 2 to 4, as scan), recognised or not; an unrecognised one is
analysed by its number of dimensions.
Biases, norm scales and other 1-D tensors are never candidates.
"""

import collections
import re

LORA_KINDS = ("lora_A", "lora_B")
# scan's rule for a LoRA factor's name: its last "lora_A" / "lora_B".
_LORA_NAME = re.compile(r"lora_[AB]")
# PEFT: the adapter is a module inside a ModuleDict called lora_A / lora_B.
_LORA_MODULE = re.compile(r"(^|\.)(lora_[AB])(\.|$)")

Selection = collections.namedtuple("Selection", "layers skipped")
Selection.__doc__ = """layers: the Layers to analyse, in model order; skipped: (name, reason)
for every other parameter, each once."""


class Layer:
    """One weight to analyse.

    name: as published and reported ("h.0.attn.c_attn.weight"); kind: the protocol's kind
    ("linear", "conv1d", "conv2d", "embedding", "lora_A", "lora_B"); param: the tensor it
    comes from (a torch Parameter, or a state dict's tensor or array); module: the owning
    nn.Module (None for a state dict); longname: the module's name (a state dict: the name
    without ".weight"); layer_id: the reference's layer id (a model: the module's index in
    model.named_modules(); a state dict: the tensor's position, from 1); recognised: chosen by
    default; why: the reason when it is not. tensor() gives the weights as published.
    """

    __slots__ = ("name", "kind", "param", "module", "longname", "layer_id", "recognised", "why",
                 "_view")

    def __init__(self, name, kind, param, module=None, longname="", layer_id=0, view=None,
                 recognised=True, why=""):
        self.name, self.kind, self.param, self.module = name, kind, param, module
        self.longname, self.layer_id, self._view = longname, layer_id, view
        self.recognised, self.why = recognised, why

    def tensor(self, t=None):
        """The weights as published (a view where possible): of the parameter, or of t, a copy
        of it taken earlier (watch's base weights)."""
        t = self.param if t is None else t
        if hasattr(t, "detach"):
            t = t.detach()
        return self._view(t) if self._view else t

    @property
    def shape(self):
        return tuple(self.tensor().shape)

    def __repr__(self):
        return f"Layer({self.name!r}, {self.kind!r}, {self.shape})"


def lora_partner(name):
    """(partner, module, is_a) for a LoRA factor's name, as `alphatop scan` pairs them: the last
    "lora_A" / "lora_B" in the name swapped ("x.lora_A.weight" <-> "x.lora_B.weight"); module:
    what precedes it, without the dot ("x"). None when the name has neither."""
    hits = list(_LORA_NAME.finditer(name))
    if not hits:
        return None
    m = hits[-1]
    is_a = m.group() == "lora_A"
    partner = name[: m.start()] + ("lora_B" if is_a else "lora_A") + name[m.end() :]
    module = name[: m.start()]
    return partner, module[:-1] if module.endswith(".") else module, is_a


def _swap(t):
    return t.swapaxes(0, 1)


def _conv3d(t):
    s = t.shape
    return t.reshape(s[0], s[1], s[2], s[3] * s[4])


def _by_ndim(ndim):
    """(kind, view) of a weight of ndim dimensions in PyTorch's (out, in, kernel...) order."""
    return {2: ("linear", None), 3: ("conv1d", None), 4: ("conv2d", None),
            5: ("conv2d", _conv3d)}.get(ndim)


def _then(first, second):
    if first is None or second is None:
        return first or second
    return lambda t: second(first(t))


def _rows(begin, end):
    return lambda t: t[begin:end]


def _matcher(layers):
    if layers is None:
        return None
    if isinstance(layers, (str, re.Pattern)):
        pattern = re.compile(layers)
        return lambda layer: pattern.search(layer.name) is not None
    if callable(layers):
        return lambda layer: bool(layers(layer))
    raise TypeError(
        f"alphatop: layers= must be a regex (str or re.Pattern) or a function of a Layer, not "
        f"{type(layers).__name__}"
    )


def _not_a_matrix(name, t):
    ndim = len(t.shape)
    if ndim < 2:
        what = "bias" if "bias" in name.rsplit(".", 1)[-1] else f"{ndim}-D"
        return f"{what}: not a matrix"
    if not _is_float(t):
        # numpy's name, which torch's drops "torch." to give: scan says the same ("int8").
        return f"dtype {str(t.dtype).removeprefix('torch.')}: not floating point"
    if _numel(t) == 0:
        return "empty: no elements"
    if ndim > 5:
        return f"{ndim}-D: no matrix view of more than 5 dimensions"
    return None


def _is_float(t):
    if hasattr(t, "is_floating_point"):
        return t.is_floating_point()
    return getattr(t.dtype, "kind", "") == "f"


def _numel(t):
    n = 1
    for d in t.shape:
        n *= int(d)
    return n


def _memory_keys(t):
    """Keys under which a tensor counts as tied to another: the object, and for a torch tensor
    with data, its memory (so a transposed or re-wrapped tie is caught too)."""
    keys = [("id", id(t))]
    if hasattr(t, "data_ptr") and t.device.type != "meta" and t.numel() > 0:
        keys.append(("mem", str(t.device), t.dtype, t.data_ptr(), t.numel()))
    return keys


class _Ties:
    """First name of every tensor seen, so a later name of the same storage is reported once."""

    def __init__(self):
        self.first = {}
        # The tensors seen, kept alive: a mapping that makes each on access (a file's) would
        # otherwise free one and give the next the same id(), a false tie.
        self.seen = []

    def skip_reason(self, name, t):
        """Why t (named name) is no layer -- tied to an earlier tensor, or not a matrix -- or
        None when it may be one."""
        self.seen.append(t)
        keys = _memory_keys(t)
        for k in keys:
            if k in self.first:
                return f"tied: the same storage as {self.first[k]}, analysed once"
        for k in keys:
            self.first[k] = name
        return _not_a_matrix(name, t)


# -- PyTorch models -------------------------------------------------------------------------


def _family(nn, module):
    """What a module's .weight is, by class (the reference's rule: isinstance, or the class
    name contains "linear", "conv1d", "conv2d", "embedding", "norm"; alphatop adds "conv3d"
    and "convtranspose"): "hf_conv1d", "transposed", "linear", "conv", "embedding", "norm"."""
    cls = type(module).__name__
    low = cls.lower()
    if cls == "Conv1D":  # Hugging Face's (transformers.pytorch_utils): weight (in, out)
        return "hf_conv1d"
    transposed = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    if isinstance(module, transposed) or "convtranspose" in low:
        return "transposed"
    if isinstance(module, nn.Linear) or "linear" in low:
        return "linear"
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) or any(
        c in low for c in ("conv1d", "conv2d", "conv3d")
    ):
        return "conv"
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) or "embedding" in low:
        return "embedding"
    if "norm" in low:
        return "norm"
    return None


def _module_weight(nn, module, mname, ndim):
    """(kind, view, why) of a module's .weight; kind None: not recognised, why says so."""
    lora = _LORA_MODULE.search(mname)
    if lora and ndim == 2:
        return lora.group(2), None, ""
    family = _family(nn, module)
    cls = type(module).__name__
    if family == "hf_conv1d" and ndim == 2:
        return "linear", _swap, ""
    if family == "transposed" and ndim in (3, 4, 5):
        kind, view = _by_ndim(ndim)
        return kind, _then(_swap, view), ""
    if family == "conv" and ndim in (3, 4, 5):
        return _by_ndim(ndim) + ("",)
    if family in ("linear", "embedding") and ndim == 2:
        return family, None, ""
    if family == "norm":
        return None, None, f"normalization layer: {cls} is not analysed (as in the reference)"
    if family:
        return None, None, f"unrecognised: {cls} has a {ndim}-D weight (select it with layers=)"
    return None, None, (f"unrecognised: {cls} is no layer type alphatop knows (select it with "
                        f"layers=)")


def _torch_layers(nn, module, mname, pname, p, name, layer_id):
    """The Layers one parameter gives (several for a packed projection)."""
    prefix = mname + "." if mname else ""
    ndim = p.dim()

    def layer(lname, kind, view=None, recognised=True, why=""):
        return Layer(lname, kind, p, module, mname, layer_id, view, recognised, why)

    if pname in LORA_KINDS and ndim == 2:  # loralib: parameters on the adapted module
        return [layer(name, pname)]
    if isinstance(module, nn.MultiheadAttention) and ndim == 2:
        if pname == "in_proj_weight":
            rows = p.shape[0] // 3
            return [layer(f"{prefix}{x}_proj_weight", "linear", _rows(i * rows, (i + 1) * rows))
                    for i, x in enumerate("qkv")]
        if pname in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
            return [layer(name, "linear")]
    if isinstance(module, nn.RNNBase) and pname.startswith("weight_") and ndim == 2:
        return [layer(name, "linear")]
    if pname == "weight":
        kind, view, why = _module_weight(nn, module, mname, ndim)
        if kind:
            return [layer(name, kind, view)]
    else:
        why = (f"unrecognised: parameter {pname} of {type(module).__name__} "
               f"(select it with layers=)")
    kind, view = _by_ndim(ndim)
    return [layer(name, kind, view, recognised=False, why=why)]


def _torch_items(model):
    """Layers and (name, reason) pairs of every parameter of model, in model order."""
    import torch

    nn = torch.nn
    # The reference numbers layers by their module's index in named_modules().
    ids = {id(m): i for i, (_, m) in enumerate(model.named_modules())}
    ties = _Ties()
    # remove_duplicate=False: a shared module's parameters show up under each name, so the
    # later names are reported as tied instead of vanishing.
    for mname, module in model.named_modules(remove_duplicate=False):
        prefix = mname + "." if mname else ""
        for pname, p in module.named_parameters(recurse=False):
            name = prefix + pname
            reason = ties.skip_reason(name, p)
            if reason:
                yield name, reason
                continue
            yield from _torch_layers(nn, module, mname, pname, p, name, ids.get(id(module), -1))


# -- state dicts ----------------------------------------------------------------------------


# Why a file's tensor is not a layer by default: the texts of `alphatop scan` (tui/checkpoint).
_WHY_NAME = ("unrecognised: the name ends in neither 'weight' nor 'kernel' (select it with scan "
             "--layers, or layers= in Python)")
_WHY_3D = ("3-D: a Conv1d weight (out, in, k) is analysed when selected (scan --layers, or "
           "layers= in Python)")


class Arrays(dict):
    """name -> numpy array, read as `alphatop scan` reads a .npy or .npz file: every name counts
    as a weight's (a positional archive's arr_0, arr_1, ...), and single (a .npy file's one
    array): that array is chosen as if selected (a 3-D one is a Conv1d weight)."""

    def __init__(self, arrays, single=False):
        super().__init__(arrays)
        self.single = single


def _flax_conv(t):
    """A Flax conv kernel, (kh, kw, in, out) or (k, in, out), in PyTorch's (out, in, ...)."""
    axes = (3, 2, 0, 1) if len(t.shape) == 4 else (2, 1, 0)
    return t.permute(*axes) if hasattr(t, "permute") else t.transpose(axes)


def _state_items(tensors):
    """Layers and (name, reason) pairs of a mapping name -> tensor (torch or numpy), as
    `alphatop scan` reads a file: 2-D and 4-D float tensors named "*weight" or "*kernel" (Flax:
    a dense kernel (in, out) as stored, its transpose's spectrum; a conv kernel (kh, kw, in,
    out) turned to (out, in, kh, kw)); a 3-D tensor (a Conv1d weight) when selected; LoRA pairs
    by name."""
    names = set(tensors)
    any_name = isinstance(tensors, Arrays)
    single = any_name and tensors.single
    ties = _Ties()
    for position, (name, t) in enumerate(tensors.items(), 1):
        if not hasattr(t, "shape") or not hasattr(t, "dtype"):
            yield name, f"not a tensor: {type(t).__name__}"
            continue
        reason = ties.skip_reason(name, t)
        if reason:
            yield name, reason
            continue
        ndim = len(t.shape)
        flax = name.endswith("kernel")
        named = flax or name.endswith("weight") or any_name
        if not named and "bias" in name.rsplit(".", 1)[-1]:  # GPT-2's attn.bias: a 4-D mask
            yield name, "bias: not a weight (a bias, or a buffer such as an attention mask)"
            continue
        if ndim > 4:
            yield name, f"{ndim}-D: a file's tensors of 2 to 4 dimensions are analysed"
            continue
        kind, view = _by_ndim(ndim)
        if flax and ndim > 2:
            view = _flax_conv
        recognised = named and (ndim in (2, 4) or single and ndim == 3)
        pair = lora_partner(name) if recognised and ndim == 2 else None
        if pair and pair[0] in names:
            kind = "lora_A" if pair[2] else "lora_B"
        why = "" if recognised else _WHY_3D if named else _WHY_NAME
        longname = next((name[: -len(s)] for s in (".weight", ".kernel") if name.endswith(s)),
                        name)
        yield Layer(name, kind, t, None, longname, position, view, recognised, why)


# -- selection ------------------------------------------------------------------------------


def _is_module(source):
    return hasattr(source, "named_modules") and hasattr(source, "named_parameters")


def select(source, layers=None):
    """The Selection of source (an nn.Module, or a mapping name -> tensor/array): what is
    analysed and why the rest is not. layers: None (the default choice), a regex searched in
    each candidate's name, or a function of a Layer returning True to analyse it."""
    match = _matcher(layers)
    items = _torch_items(source) if _is_module(source) else _state_items(source)
    chosen, skipped = [], []
    for item in items:
        if isinstance(item, tuple):
            skipped.append(item)
        elif match(item) if match else item.recognised:
            chosen.append(item)
        else:
            skipped.append((item.name, item.why if match is None else "not selected by layers="))
    # LoRA factors are analysed as pairs (B A): a factor whose partner is not chosen is not.
    names = {layer.name for layer in chosen}
    layers_out = []
    for layer in chosen:
        partner = lora_partner(layer.name)[0] if layer.kind in LORA_KINDS else None
        if partner is not None and partner not in names:
            skipped.append((layer.name, f"lora: its partner {partner} is not analysed"))
        else:
            layers_out.append(layer)
    return Selection(layers_out, skipped)


def find_layers(model, layers=None):
    """The Layers of model (an nn.Module, or a state dict) alphatop analyses, in model order.
    select() also says why the other parameters are not analysed."""
    return select(model, layers).layers


def describe_skipped(skipped):
    """One line counting the skipped parameters by reason ("12 bias, 1 tied")."""
    counts = collections.Counter(reason.split(":")[0] for _, reason in skipped)
    return ", ".join(f"{n} {what}" for what, n in counts.most_common())
