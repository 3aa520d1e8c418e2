"""Canonizers: temporary, exactly reversible rewrites that make a network
LRP-friendly.

:class:`MergeBatchNorm` folds each BatchNorm into the Linear / Conv layer
that precedes it in an ``nn.Sequential`` (how :class:`~sklearn_relevance.modules.ImageCNN`
and :class:`~sklearn_relevance.modules.SpectrumCNN` are built). The fold is
*functional*: while applied, the layer computes with the merged weight and
bias (computed in the autograd graph from the original parameters) and the
BatchNorm returns its input. No parameter or buffer is ever written, so the
model is bitwise identical afterwards, and with ``create_graph=True``
gradients of the relevance reach the original Conv and BatchNorm parameters.
"""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from ..._module_access import hook_acts, hook_owner
from ._layers import CONV, WEIGHTED, batchnorm_affine

__all__ = ["Canonizer", "MergeBatchNorm"]

_MISSING = object()


class CanonizerHandle:
    """An applied canonizer: a context manager that undoes it on exit.

    Attributes
    ----------
    pairs : list of (nn.Module, nn.Module)
        The (layer, BatchNorm) pairs merged.
    """

    def __init__(self, pairs, owner=None):
        self.pairs = pairs
        self._layer_bn = {id(layer): bn for layer, bn in pairs}
        self._bns = {id(bn) for _, bn in pairs}
        self._saved = []
        self.owner = owner  # the fold applies in this thread only (hook_owner)

    def active(self):
        """Whether the fold applies to the calling thread's forward pass."""
        return hook_acts(self.owner)

    def _override(self, module, forward):
        self._saved.append((module, vars(module).get("forward", _MISSING)))
        module.forward = forward

    def params(self, module):
        """Merged ``(weight, bias)`` of ``module`` now, or None."""
        bn = self._layer_bn.get(id(module))
        if bn is None or not is_foldable(bn) or not self.active():
            return None
        return merged_params(module, bn)

    def absorbs(self, module):
        """Whether ``module`` is a BatchNorm currently folded away."""
        return id(module) in self._bns and is_foldable(module) and self.active()

    def remove(self):
        """Restore every overridden ``forward``."""
        while self._saved:
            module, previous = self._saved.pop()
            if previous is _MISSING:
                vars(module).pop("forward", None)
            else:
                module.forward = previous

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


class Canonizer:
    """Base class: ``apply(module)`` returns a :class:`CanonizerHandle`."""

    def apply(self, module):  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


def is_foldable(bn):
    """A BatchNorm is an affine map (foldable) in eval mode with running stats."""
    return not bn.training and bn.running_mean is not None


def merged_params(layer, bn):
    """Weight and bias of ``bn(layer(x))`` as one layer (eval-mode statistics)."""
    scale, shift = batchnorm_affine(bn, None)
    weight = layer.weight * scale.reshape(-1, *([1] * (layer.weight.ndim - 1)))
    bias = shift if layer.bias is None else layer.bias * scale + shift
    return weight, bias


def _plain_sequential(module):
    """A Sequential whose forward is ``nn.Sequential``'s: child ``i``'s output
    is child ``i + 1``'s input and nothing else's."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _last_layer(module):
    """The layer whose output a (nested) plain Sequential returns."""
    while _plain_sequential(module) and len(module):
        module = module[-1]
    return module


def _first_layer(module):
    """The layer that receives a (nested) plain Sequential's input."""
    while _plain_sequential(module) and len(module):
        module = module[0]
    return module


def _out_features(layer):
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


class MergeBatchNorm(Canonizer):
    """Fold ``BatchNorm{1,2,3}d`` into the preceding Linear / Conv layer.

    Pairs are consecutive children ``(Linear | Conv1d/2d/3d, BatchNorm)`` of
    any ``nn.Sequential`` in the model with matching channel counts. The
    layer may end a nested Sequential (as in
    :class:`~sklearn_relevance.modules.FusionNet`'s encoders) and the
    BatchNorm may open one (as in MONAI's ``Convolution(conv, ADN(N, A))``).
    Only Sequentials that keep ``nn.Sequential.forward`` count: a subclass
    with its own ``forward`` may route its children's outputs elsewhere, so
    its children are never paired (LRP then gives the BatchNorm its own
    rule and the conservation check reports what that costs). A pair
    is merged only while its BatchNorm is in eval mode with running
    statistics (in training mode, BatchNorm normalises with batch statistics
    and stays a layer of its own, explained as a linear layer). BatchNorms
    without a preceding layer are left alone.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.lrp import MergeBatchNorm
    >>> net = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.BatchNorm1d(2)).eval()
    >>> x = torch.randn(4, 1, 8)
    >>> with MergeBatchNorm().apply(net) as handle:
    ...     merged = net(x)
    ...     n_pairs = len(handle.pairs)
    >>> n_pairs, bool(torch.allclose(merged, net(x), atol=1e-6))
    (1, True)
    """

    @staticmethod
    def find_pairs(module):
        """``(layer, batchnorm)`` pairs of consecutive Sequential children."""
        pairs = []
        for seq in module.modules():
            if not _plain_sequential(seq):
                continue
            children = list(seq.children())
            for layer, bn in zip(children, children[1:]):
                layer, bn = _last_layer(layer), _first_layer(bn)
                if (
                    isinstance(layer, WEIGHTED)
                    and isinstance(bn, _BatchNorm)
                    and bn.num_features == _out_features(layer)
                ):
                    pairs.append((layer, bn))
        return pairs

    def apply(self, module):
        """Fold the pairs of ``module``; returns a handle (context manager).

        Parameters
        ----------
        module : nn.Module

        Returns
        -------
        CanonizerHandle
        """
        handle = CanonizerHandle(self.find_pairs(module), hook_owner(module))
        try:
            for layer, bn in handle.pairs:
                handle._override(layer, _merged_forward(layer, bn, handle))
                handle._override(bn, _absorbed_forward(bn, handle))
        except BaseException:
            handle.remove()
            raise
        return handle


def _merged_forward(layer, bn, handle):
    original = layer.forward

    def forward(x):
        if not (is_foldable(bn) and handle.active()):
            return original(x)
        weight, bias = merged_params(layer, bn)
        if isinstance(layer, CONV):
            return layer._conv_forward(x, weight, bias)
        return F.linear(x, weight, bias)

    return forward


def _absorbed_forward(bn, handle):
    original = bn.forward

    def forward(x):
        return x if is_foldable(bn) and handle.active() else original(x)

    return forward
