"""Faster copies of a network for studies that run thousands of passes on it.

Rewrites on a copy (the caller's module is never changed), each exact by
construction for every input and made only where the forward's graph
proves it so (:mod:`sklearn_relevance._copy_proof`; no hooks anywhere, a
forward that traces with ``torch.fx`` without data-dependent control flow,
and a real forward of a copy of two samples that agrees with the graph):

* BatchNorm layers in eval mode are folded into the Conv / Linear layer
  that alone feeds them and replaced by ``nn.Identity``, which removes
  their forward and backward passes;
* ReLUs that take the fresh output of a Conv / Linear layer (directly or
  through a folded BatchNorm) work in place (those layers keep no output
  for the backward pass), one activation tensor less per block;
* on the CPU, convolution weights become channels-last, so the activations
  follow: PyTorch's max pooling on (N, C, H, W) tensors is an unvectorised
  loop, and oneDNN convolutions prefer channels-last data;
* an affine input layer (a first ``Conv`` / ``Linear`` that alone reads the
  input) is split off (:mod:`sklearn_relevance._input_stem`), so that
  integrated gradients and SmoothGrad run it once per sample instead of
  once per step. The rest of the network (the trunk, which serves plain
  input gradients only) pools before its ReLUs
  (:mod:`sklearn_relevance._trunk_rewrites`); the copy itself keeps its
  layers as they were, for the explainers that act per layer.

Where no proof is possible the module runs as it is. The cached copy
(:func:`cached_inference_copy`) is keyed on everything that can change the
forward (:mod:`sklearn_relevance._copy_key`).

For the 64 x 64 ``ImageCNN`` of ``benchmarks/bench_compare_explainers.py``
(one thread, 64-row passes) a forward pass ran 2.5x and a forward plus
input-gradient pass 2.1x faster with channels-last weights alone; the
BatchNorm fold removes the slowest kernel left in the backward pass.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ._batching import MEMORY_BUDGETS, batch_len, index_batch
from ._copy_key import forward_state_key
from ._copy_proof import GraphFacts, hooks_anywhere, observe_forward
from ._input_stem import attach_input_stem, split_input_stem
from ._private_trace import trace_graph
from ._tensors import close_to_scale, forward

__all__ = ["inference_copy", "cached_inference_copy", "clear_inference_copies",
           "module_for_explainer",
           "activation_bytes", "is_channels_last", "cpu_pass_budget", "rows_per_sample",
           "CHANNELS_LAST_CPU_BUDGET", "INFERENCE_COPY_MIN_BYTES"]

#: Input bytes of one CPU pass through a channels-last network. Such passes
#: are fastest in smaller chunks than (N, C, H, W) ones: for the 64 x 64
#: ImageCNN, 16-row passes ran occlusion 1.7x and integrated gradients 1.6x
#: faster than 64-row passes (freshly allocated activations of 8 MiB cost
#: page faults on every pass), while the (N, C, H, W) network was fastest at
#: 64 rows (``sklearn_relevance.explainers._engine.CPU_EXPLAIN_BUDGET``).
CHANNELS_LAST_CPU_BUDGET = MEMORY_BUDGETS["channels_last_pass_input_cpu"]

_FORMATS = {4: (nn.Conv2d, torch.channels_last),
            5: (nn.Conv3d, torch.channels_last_3d)}


def _fold_batchnorms(fast, pairs):
    """Fold the proved ``(layer, BatchNorm)`` pairs of ``fast`` in place.

    The folded weights are computed in float64 and rounded once to the
    layer's dtype (one rounding where the network's forward has two: the
    layer's output, then the BatchNorm's). Each BatchNorm's place in its
    Sequential takes an ``nn.Identity``.
    """
    with torch.no_grad():
        for layer_name, bn_name in pairs:
            layer, bn = fast.get_submodule(layer_name), fast.get_submodule(bn_name)
            w = layer.weight
            scale = torch.rsqrt(bn.running_var.double() + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight.double()
            shift = -bn.running_mean.double() * scale
            if bn.bias is not None:
                shift = shift + bn.bias.double()
            bias = shift if layer.bias is None else layer.bias.double() * scale + shift
            weight = w.double() * scale.reshape(-1, *([1] * (w.ndim - 1)))
            grad = w.requires_grad
            layer.weight = nn.Parameter(weight.to(w.dtype).contiguous(), requires_grad=grad)
            layer.bias = nn.Parameter(bias.to(w.dtype), requires_grad=grad)
            parent_name, _, child = bn_name.rpartition(".")
            # in the BatchNorm's mode: a module in training mode is never rewritten
            setattr(fast.get_submodule(parent_name), child, nn.Identity().train(bn.training))
    return len(pairs)


def _same_outputs(got, want, rtol):
    """Outputs of one structure whose tensors agree to ``rtol`` of their scale."""
    if isinstance(want, (tuple, list)):
        return (type(got) is type(want) and len(got) == len(want)
                and all(_same_outputs(g, w, rtol) for g, w in zip(got, want)))
    if isinstance(want, Mapping):
        return (isinstance(got, Mapping) and got.keys() == want.keys()
                and all(_same_outputs(got[k], want[k], rtol) for k in want))
    if torch.is_tensor(want):
        return close_to_scale(got, want, rtol)
    return got == want


def _probe_rows(X):
    """A copy of the first two samples: the copy's checks never run on (a
    view of) the caller's arrays."""
    rows = index_batch(X, slice(0, 2))
    if isinstance(rows, Mapping):
        return {k: v.detach().clone() for k, v in rows.items()}
    return rows.detach().clone()


def inference_copy(module, X, *, rtol=1e-4, split_stem=True, trunk_rewrites=True,
                   channels_last=False, fold_batchnorms=False):
    """A faster copy of an eval-mode ``module`` for passes on ``X``, or ``module``.

    Every rewrite is exact by construction for every input, proved from the
    forward's ``torch.fx`` graph and one forward of a copy of two samples
    (:mod:`sklearn_relevance._copy_proof`); where no proof is possible the
    module is returned as it is:

    * nothing is rewritten in a network with a submodule in training mode,
      a hook on any submodule, with
      a global module hook registered, or whose forward does not trace
      (data-dependent control flow) or does otherwise than its graph says;
    * with ``fold_batchnorms=True``, an eval-mode BatchNorm is folded into
      the Linear / Conv layer that alone feeds it (both exact ``torch.nn``
      types, registered and called once, in a Sequential), in float64
      rounded once (exact in real numbers; the rounded weights move the
      outputs, so it is off by default);
    * a ReLU that takes, through folded BatchNorms only, the fresh output of
      a Linear / Conv layer that nothing else uses works in place (never on
      the caller's input);
    * with ``channels_last=True``, on the CPU, with ``X`` one 4D / 5D tensor
      and a convolution of that dimensionality, the weights become
      channels-last, unless the forward reads strides or storage (its
      kernels round worse: off by default);
    * the affine input layer is split off
      (:func:`~sklearn_relevance._input_stem.split_input_stem`, recorded
      on the copy for :func:`~sklearn_relevance._input_stem.input_stem`).

    As a last guard (it can only refuse), the copy's outputs on the two
    samples must equal the module's to ``rtol`` of their largest magnitude.
    Layers keep their names, so explainers that address a layer by name
    (Grad-CAM) find it; a folded BatchNorm's name then holds
    ``nn.Identity``, whose output equals the BatchNorm's.

    Parameters
    ----------
    module : torch.nn.Module
        In the mode it will be used in (normally ``eval()``).
    X : Tensor or dict of Tensors
    rtol : float, default=1e-4
    split_stem, trunk_rewrites : bool, default=True
        Whether to split off the input layer, and whether its trunk takes
        the rewrite of :mod:`sklearn_relevance._trunk_rewrites` (both off
        only to measure what they gain).
    channels_last, fold_batchnorms : bool, default=False
        Whether CPU convolution weights may become channels-last and
        BatchNorms be folded (faster, round worse:
        ``benchmarks/bench_channels_last.py``,
        ``benchmarks/bench_float32_precision.py``).

    Returns
    -------
    torch.nn.Module
        The copy, or ``module`` itself.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance._inference import inference_copy
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
    ...                           torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    ...                           torch.nn.Flatten()).eval()
    >>> fast = inference_copy(net, torch.zeros(2, 1, 8, 8), channels_last=True,
    ...                       fold_batchnorms=True)
    >>> fast is net, type(fast[1]).__name__
    (False, 'Identity')
    >>> fast[0].weight.is_contiguous(memory_format=torch.channels_last)
    True
    """
    if (not isinstance(module, nn.Module) or hooks_anywhere(module)
            or any(m.training for m in module.modules())):
        return module  # a training-mode layer (dropout, batch statistics): as it is
    tensor = torch.is_tensor(X)
    # the copy is made (and cached) for inputs of X's sample shape, dtype
    # and device: the forward may check or adapt to them
    graph = trace_graph(module, X)
    if graph is None:
        return module
    facts = GraphFacts(module, graph)
    try:
        probe = _probe_rows(X)
        fast = copy.deepcopy(module)
        seen = observe_forward(fast, probe)
        if (seen is None or seen.recorder.value_reads
                or seen.leaf_calls != facts.leaf_sequence()):
            return module
        pairs = facts.foldable_batchnorms() if fold_batchnorms else []
        changed = _fold_batchnorms(fast, pairs) > 0
        for name in facts.inplace_relus({bn for _, bn in pairs}):
            fast.get_submodule(name).inplace = True
            changed = True
        if (channels_last and tensor and X.ndim in _FORMATS and X.device.type == "cpu"
                and not facts.reads_layout() and not seen.recorder.layout_reads):
            conv, memory_format = _FORMATS[X.ndim]
            if any(isinstance(m, conv) for m in fast.modules()):
                fast = fast.to(memory_format=memory_format)
                changed = True
        stem = None
        if split_stem:
            stem = split_input_stem(fast, probe, rewrite=trunk_rewrites, facts=facts,
                                    observation=seen)
        if not changed and stem is None:
            return module
        with torch.no_grad():
            want = forward(module, _probe_rows(probe))
            got = forward(fast, _probe_rows(probe))
        if not _same_outputs(got, want, rtol):
            return module
    except Exception:  # noqa: BLE001 - any failure of the copy: keep the caller's module
        return module
    if stem is not None:
        attach_input_stem(fast, stem)
    return fast


def is_channels_last(module):
    """Whether ``module``'s 2D / 3D convolutions have channels-last weights.

    Weights with one input channel are both contiguous and channels-last,
    so the first convolution with several input channels decides.
    """
    for m in module.modules() if hasattr(module, "modules") else ():
        for conv, memory_format in _FORMATS.values():
            if isinstance(m, conv) and m.in_channels // m.groups > 1:
                return (m.weight.is_contiguous(memory_format=memory_format)
                        and not m.weight.is_contiguous())
    return False


def cpu_pass_budget(module, budget):
    """Input bytes of one CPU pass through ``module``: ``budget``, capped at
    :data:`CHANNELS_LAST_CPU_BUDGET` for a channels-last network."""
    return min(budget, CHANNELS_LAST_CPU_BUDGET) if is_channels_last(module) else budget


_COPIES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_COPIES_LOCK = threading.Lock()


def _state_key(module, X):
    """What a copy of ``module`` for ``X`` depends on: everything that can
    change the module's forward (:func:`~sklearn_relevance._copy_key.forward_state_key`:
    every parameter and buffer with its version, the modules and their
    types, their plain attributes, hooks) and how ``X`` is laid out (number
    of axes, the shape of a sample, dtype, device)."""
    tensors = list(X.values()) if isinstance(X, Mapping) else [X]
    layout = tuple((tuple(t.shape[1:]), t.dtype, str(t.device)) for t in tensors)
    keys = tuple(X.keys()) if isinstance(X, Mapping) else None
    return layout, keys, forward_state_key(module)


def cached_inference_copy(module, X, **options):
    """:func:`inference_copy` of ``module`` for ``X``, made once and reused.

    The copy (or the verdict that none applies) is kept, weakly keyed by
    ``module``, while nothing that can change ``module``'s forward has
    changed (:func:`~sklearn_relevance._copy_key.forward_state_key`): every
    parameter and buffer, persistent or not (object, storage, version:
    an optimizer step, ``fit``, ``load_state_dict`` or any in-place change
    through PyTorch raises it), the submodules and their types (a ReLU
    swapped for a LeakyReLU), their plain attributes (a BatchNorm's
    ``eps``, a flag the forward reads, tensors kept outside the
    registered ones), their hooks and the global module hooks, and the
    layout of ``X``. Writes through ``tensor.data``, which bypass
    PyTorch's version counters, are not seen: call
    :func:`clear_inference_copies` after them. The copy is shared by
    every caller; callers must not change it. Safe to call from several
    threads: the copy is built without patching anything outside it
    (:mod:`sklearn_relevance._private_trace`), while other threads run
    the module.

    Parameters
    ----------
    module : torch.nn.Module
        In eval mode.
    X : Tensor or dict of Tensors
        Inputs as they will be passed (device, shape of a sample); only two
        samples are used (copied, never written).
    **options
        Switches of :func:`inference_copy` (``fold_batchnorms``,
        ``channels_last``); one copy is kept per set of switches.

    Returns
    -------
    torch.nn.Module
        The copy, or ``module`` itself where no copy applies.
    """
    key = _state_key(module, X)
    which = tuple(sorted(options.items()))
    with _COPIES_LOCK:
        cached = _COPIES.get(module, {}).get(which)
        if cached is not None and cached[0] == key:
            return module if cached[1] is None else cached[1]
    fast = inference_copy(module, X, **options)
    with _COPIES_LOCK:
        # the key again: the module may have changed while the copy was made
        if _state_key(module, X) != key:
            return module
        _COPIES.setdefault(module, {})[which] = (key, None if fast is module else fast)
    return fast


def clear_inference_copies():
    """Forget every cached inference copy (after a change the cache cannot
    see, such as a write through ``tensor.data``)."""
    with _COPIES_LOCK:
        _COPIES.clear()


# ----------------------------------------------------------------------------
# activation bytes of a network (pass sizes, and when a copy pays)
# ----------------------------------------------------------------------------
_PROBES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_PROBES_LOCK = threading.Lock()


class _StorageRecorder(TorchFunctionMode):
    """Keeps every tensor a forward creates, one entry per storage.

    The mode is thread-local: the probe sees only its own forward and adds
    nothing (no hook) to the module.
    """

    def __init__(self):
        super().__init__()
        self.storages = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if torch.is_tensor(t):
                storage = t.untyped_storage()
                # holding ``t`` keeps the address from being reused in the probe
                self.storages[storage.data_ptr()] = (t, storage.nbytes())
        return out


def _probe_key(X):
    tensors = list(X.values()) if isinstance(X, Mapping) else [X]
    return tuple((tuple(t.shape[1:]), t.dtype, str(t.device)) for t in tensors)


def activation_bytes(module, X):
    """``(kept, largest)``: bytes of the tensors one row's forward creates.

    ``kept`` sums every tensor a forward of one row of ``X`` creates (each
    storage once: in-place operations and views are not counted twice),
    about what a gradient pass keeps for its backward; ``largest`` is the
    largest of them. Measured once per module, sample shape, dtype and
    device (a forward of one row under ``no_grad``) and cached while the
    module lives. Returns None for a module with a submodule in training
    mode (a probe would draw dropout masks and write BatchNorm statistics) or when the probe
    fails (the explainer then reports the error itself).
    """
    if not isinstance(module, torch.nn.Module) or any(m.training for m in module.modules()):
        return None
    key = _probe_key(X)
    with _PROBES_LOCK:
        known = _PROBES.get(module, {}).get(key)
    if known is not None:
        return known
    row = index_batch(X, slice(0, 1))  # copied: a forward may write into its input
    row = ({k: v.detach().clone() for k, v in row.items()} if isinstance(row, Mapping)
           else row.detach().clone())
    inputs = {t.untyped_storage().data_ptr()
              for t in (row.values() if isinstance(row, Mapping) else [row])}
    recorder = _StorageRecorder()
    try:
        with torch.no_grad(), recorder:
            module(**row) if isinstance(row, Mapping) else module(row)
    except Exception:  # the explainer's own pass reports what is wrong
        return None
    # views of the input are the input, counted by the caller
    sizes = [nbytes for ptr, (_, nbytes) in recorder.storages.items() if ptr not in inputs]
    result = (sum(sizes), max(sizes, default=0))
    with _PROBES_LOCK:
        _PROBES.setdefault(module, {})[key] = result
    return result


#: Activation bytes of an ``explain`` call (the rows it runs, its samples
#: times the explainer's steps or noise samples, times the bytes one row's
#: forward creates, measured by :func:`activation_bytes`) from which an
#: estimator explains on its inference copy: 8 MiB, one gradient pass of
#: about 10 images of 64 x 64 through the default ``ImageCNN`` or of one
#: 3 x 224 x 224 image through a ResNet-18, or integrated gradients (50
#: steps) of about 40 spectra through a 20,000-feature MLP. The first such
#: call makes and checks the copy (a deep copy and two 2-sample forwards);
#: later calls reuse it.
INFERENCE_COPY_MIN_BYTES = MEMORY_BUDGETS["inference_copy_min_activations"]


def module_for_explainer(module, X, explainer, *, n_samples=None):
    """The network an explainer should run on: the inference copy or ``module``.

    The copy (:func:`cached_inference_copy`) is used for explainers that do
    not read inner layers (``uses_layers`` False; unknown objects count as
    reading them), for an eval-mode ``module``, when the rows the call runs
    (``n_samples``, by default ``X``'s, times the explainer's steps or noise
    samples: :func:`rows_per_sample`) times the activation bytes of one row
    reach :data:`INFERENCE_COPY_MIN_BYTES`. ``module`` is never changed.
    """
    if not isinstance(module, torch.nn.Module) or module.training:
        return module
    if getattr(explainer, "uses_layers", True):
        return module
    measured = activation_bytes(module, X)
    if measured is None:
        return module
    n = batch_len(X) if n_samples is None else int(n_samples)
    if n * rows_per_sample(explainer) * measured[0] < INFERENCE_COPY_MIN_BYTES:
        return module
    return cached_inference_copy(module, X, **dict(getattr(explainer, "copy_options", {})))


def rows_per_sample(explainer):
    """Network rows an explainer runs per sample: its integration steps or
    noise samples (times those of a wrapped explainer), else 1."""
    rows = 1
    while explainer is not None and not isinstance(explainer, str):
        for name in ("n_steps", "n_samples"):
            value = getattr(explainer, name, None)
            if isinstance(value, int) and value > 0:
                rows *= value
        explainer = getattr(explainer, "explainer", None)
    return rows
