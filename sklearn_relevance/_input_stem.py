"""A network's affine input layer, split off so that steps can share it.

Most image networks open with one convolution (a ResNet's 7 x 7 stem, a 3D
CNN's first ``Conv3d``) and spectrum networks with one ``Linear`` layer,
applied to the input and to nothing else. Such a *stem* ``L`` is affine, and
two of the most used explainers only ever combine inputs and gradients
linearly around it:

* integrated gradients evaluates the network at ``x' + a (x - x')``, and
  ``L(x' + a (x - x')) = L(x') + a (L(x) - L(x'))``: the stem runs on ``x``
  and ``x'`` once instead of once per step;
* both integrated gradients and SmoothGrad sum gradients over their steps
  or noise samples, and the gradient with respect to the input is ``L``'s
  transpose applied to the gradient with respect to the stem's output, so
  ``sum_k L^T g_k = L^T sum_k g_k``: the stem's backward runs once per
  sample instead of once per step.

The stem is often the costliest single layer of a pass (a 3-channel 7 x 7
convolution at 224 x 224 resolution vectorises poorly, its backward most of
all), so this saves 10-15 % of an integrated-gradients call on a
ResNet-18-like network; the results are equal up to float rounding.

:func:`split_input_stem` splits only where the split is proved exact for
every input from the forward's graph (:mod:`sklearn_relevance._copy_proof`:
no hooks, the input read once, by the stem, no data-dependent control
flow); it is made once, with the inference copy
(:func:`~sklearn_relevance._inference.inference_copy`), never on a caller's
module. :func:`input_stem` returns it to the explainers.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from ._copy_proof import GraphFacts, hooks_anywhere, observe_forward
from ._private_trace import trace_graph
from ._trunk_rewrites import rewrite_trunk

__all__ = ["InputStem", "split_input_stem", "input_stem", "attach_input_stem",
           "RowLayout"]

#: Layers that are affine in their input whatever their settings (padding
#: modes copy or wrap values, which is linear too).
_AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

_ATTRIBUTE = "_sklearn_relevance_input_stem"


class _StemOutput(nn.Module):
    """Stands where the stem was in the trunk: hands on the stem's output.

    A copy, so that an in-place operation after it (an in-place ReLU) never
    writes into the tensor whose gradient is asked for.
    """

    def forward(self, h):
        return h.clone()


class InputStem:
    """A network split into its affine input layer and the rest.

    ``trunk(stem(x))`` equals ``network(x)``; ``trunk`` shares the network's
    parameters.

    Attributes
    ----------
    stem : torch.nn.Module
        The affine input layer.
    trunk : torch.nn.Module
        The network with the stem replaced by a pass-through.
    """

    __slots__ = ("stem", "trunk", "_sizes")

    def __init__(self, stem, trunk):
        self.stem = stem
        self.trunk = trunk
        self._sizes = {}

    def output_nbytes(self, X):
        """Bytes of the stem's output for one sample of ``X`` (measured once
        per sample shape, dtype and device)."""
        key = (tuple(X.shape[1:]), X.dtype, str(X.device))
        size = self._sizes.get(key)
        if size is None:
            with torch.no_grad():
                out = self.stem(X[:1])
            size = self._sizes[key] = out[0].numel() * out.element_size()
        return size

    def linear(self, d):
        """The stem without its bias: ``L(x) - L(x')`` as ``L_0(x - x')``.

        Computed directly, not as a difference of two outputs, which would
        lose the digits that the bias shares with them.
        """
        if isinstance(self.stem, nn.Linear):
            return nn.functional.linear(d, self.stem.weight)
        return self.stem._conv_forward(d, self.stem.weight, None)

    def transpose(self, grad, like):
        """``L^T grad``: the input gradient from a gradient at the stem's output.

        Parameters
        ----------
        grad : Tensor
            Gradient with respect to the stem's output, one row per sample.
        like : Tensor
            Inputs of the same rows (any values: the stem is affine).

        Returns
        -------
        Tensor of ``like``'s shape.
        """
        x = like.detach().requires_grad_(True)
        with torch.enable_grad():
            (out,) = torch.autograd.grad(self.stem(x), x, grad)
        return out


#: Layers that never write into their input: the stem's output may go to
#: them as it is.
_READ_ONLY = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Flatten,
              nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
              nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
              nn.AdaptiveAvgPool3d, nn.modules.batchnorm._BatchNorm)


def _stand_in(parent, child):
    """What replaces the stem ``parent.child`` in the trunk.

    In a Sequential whose next layer (after pass-throughs) is known not to
    write into its input, or is an activation that can be made to work out
    of place (it is, in the trunk), an ``nn.Identity``; otherwise
    :class:`_StemOutput`, which copies.
    """
    if isinstance(parent, nn.Sequential):
        names = list(parent._modules)
        for name in names[names.index(child) + 1:]:
            nxt = parent._modules[name]
            if type(nxt) is nn.Identity:
                continue
            if isinstance(nxt, _READ_ONLY):
                return nn.Identity()
            if isinstance(getattr(nxt, "inplace", None), bool) and type(nxt).forward in {
                    nn.ReLU.forward, nn.LeakyReLU.forward, nn.ReLU6.forward,
                    nn.ELU.forward, nn.SiLU.forward, nn.Hardtanh.forward}:
                nxt.inplace = False
                return nn.Identity()
            break
    return _StemOutput()


def _replace(module, target):
    """A copy of ``module`` (sharing parameters and buffers) with the one
    registration of ``target`` replaced by a stand-in, or None if ``target``
    is registered twice."""
    places = [(name, m) for name, m in module.named_modules(remove_duplicate=False)
              if m is target]
    if len(places) != 1 or not places[0][0]:
        return None
    shared = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    trunk = copy.deepcopy(module, shared)
    parent_name, _, child = places[0][0].rpartition(".")
    parent = trunk.get_submodule(parent_name) if parent_name else trunk
    setattr(parent, child, _stand_in(parent, child).train(target.training))
    return trunk


def split_input_stem(module, X, *, rewrite=True, facts=None, observation=None):
    """Split an eval-mode ``module`` at its affine input layer, or None.

    The split is made only where it is exact by construction for every
    input (:mod:`sklearn_relevance._copy_proof`): ``X`` is one
    floating-point tensor; no submodule has a hook and no global module
    hook is registered; the forward traces (``torch.fx``, so its control
    flow depends on no tensor's values or shape) and its graph reads the
    input once, as the only argument of a layer of exactly type
    ``Linear`` or ``Conv1d/2d/3d`` registered and called once; and a real
    forward of a copy of the first two samples agrees (the same layers,
    the input handed to that layer only, no tensor turned into a Python
    value). The trunk runs the same forward with the stem's place taken by
    a pass-through: every value it computes from ``stem(x)`` is the one the
    network computes from ``x``. With ``rewrite``, the trunk takes the
    rewrites of :mod:`sklearn_relevance._trunk_rewrites` that the graph
    proves exact. ``module`` is not changed.

    Parameters
    ----------
    module : torch.nn.Module
    X : Tensor or dict of Tensors
    rewrite : bool, default=True
        Whether to make the trunk rewrites.
    facts, observation : optional
        :class:`~sklearn_relevance._copy_proof.GraphFacts` of ``module``'s
        forward and :class:`~sklearn_relevance._copy_proof.Observation` of a
        forward of a private copy, where the caller has them already.

    Returns
    -------
    InputStem or None
    """
    if not (torch.is_tensor(X) and X.is_floating_point() and len(X) > 0) or module.training:
        return None
    if facts is None or observation is None:
        if hooks_anywhere(module):
            return None
        graph = trace_graph(module, X)
        if graph is None:
            return None
        facts = GraphFacts(module, graph)
        observation = observe_forward(_private_copy(module), X[:2].detach().clone())
    if not _split_proved(facts, observation):
        return None
    name = facts.stem()
    try:
        stem = module.get_submodule(name)
        trunk = _replace(module, stem)
        if trunk is None:
            return None
        if rewrite:
            rewrite_trunk(trunk, facts.pool_relu_swaps())
        return InputStem(stem, trunk)
    except Exception:  # noqa: BLE001 - any doubt: explain the whole network
        return None


def _private_copy(module):
    shared = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    return copy.deepcopy(module, shared)


def _split_proved(facts, observation):
    """Whether the graph and a real forward show the input read once, by
    the stem (see :func:`split_input_stem`)."""
    name = facts.stem()
    if name is None or observation is None:
        return False
    rec = observation.recorder
    return (observation.leaf_calls == facts.leaf_sequence()
            and observation.leaf_calls[:1] == [name] and observation.first_takes_input
            and not rec.other_reads and not rec.value_reads)


def attach_input_stem(copy_of_module, split):
    """Record ``split`` on a module the library made (an inference copy)."""
    object.__setattr__(copy_of_module, _ATTRIBUTE, split)


_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


class RowLayout:
    """Rows laid out as a reference tensor's (channels-last stays channels-last).

    The trunk's next convolution then reads the rows without a reorder, and
    :meth:`flat` gives every tensor the same element order, so that rows of
    different tensors can be combined as flat ``(rows, features)`` matrices.

    Parameters
    ----------
    ref : Tensor
        A stem output, one row per sample.
    """

    def __init__(self, ref):
        self.shape = tuple(ref.shape[1:])
        self.dtype, self.device = ref.dtype, ref.device
        fmt = _CHANNELS_LAST.get(ref.ndim)
        self.channels_last = (fmt is not None and ref.is_contiguous(memory_format=fmt)
                              and not ref.is_contiguous())
        self.format = fmt if self.channels_last else torch.contiguous_format

    def empty(self, rows):
        """An uninitialised ``(rows, ...)`` tensor in this layout."""
        return torch.empty((rows, *self.shape), dtype=self.dtype, device=self.device,
                           memory_format=self.format)

    def flat(self, t):
        """``t`` as ``(len(t), features)`` in this layout's element order.

        A view of ``t`` (writes reach it) when ``t`` is in this layout
        already, as :meth:`empty`'s tensors are; a copy otherwise.
        """
        t = t.contiguous(memory_format=self.format)
        if self.channels_last:
            t = t.permute(0, *range(2, t.ndim), 1)
        return t.view(len(t), -1)


def input_stem(module):
    """The :class:`InputStem` recorded on ``module`` (an inference copy), or None."""
    return getattr(module, _ATTRIBUTE, None)
