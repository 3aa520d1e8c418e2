"""The relevance relay: an identity in the forward pass whose backward hands
each rule term ``z_k`` the share ``c_k * grad`` of the layer's output
relevance, with ``c_k = coef_k * y / stabilize(z_k)``.

Relevance travels through the network in *gradient x activation* form: the
relevance of any tensor ``t`` is ``t * dL/dt``. A rule replaces a layer's
output ``y`` by ``relay(y, cs, zs)`` where each term ``z_k`` is a (modified)
forward of the layer computed from its input ``x``; the gradient reaching
``x`` is then ``sum_k J_{z_k}(x)^T (c_k * grad)`` and ``x * grad`` is the
rule's input relevance ``x * sum_k coef_k J_{z_k}^T (R / stabilize(z_k))``
with ``R = y * grad``. Linear operations without a relay (reshapes, ReLU,
max pooling, dropout, additions) keep their ordinary gradient, which in this
form is exactly LRP-0 / pass-through.

The backward uses the saved ``c_k`` in differentiable operations: when the
``c_k`` were computed from an ordinary forward pass (see ``LRP``), the
relevance is differentiable exactly with respect to the parameters.
"""

from __future__ import annotations

import torch

__all__ = ["stabilize", "relay", "shares"]


def stabilize(z, epsilon):
    """Return ``z + epsilon * sign(z)``, with ``sign(0) = 1``."""
    return z + torch.where(z >= 0, epsilon, -epsilon).to(z.dtype)


def shares(y, terms):
    """``[coef_k * y / stabilize(z_k, eps_k)]`` for rule terms ``(coef, z, eps)``."""
    return [(coef * y) / stabilize(z, eps) for coef, z, eps in terms]


class _Relay(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, n, *cs_zs):
        ctx.n = n
        ctx.save_for_backward(*cs_zs[:n])
        # a copy, so in-place activations after the layer leave ``y`` intact
        return y.clone()

    @staticmethod
    def backward(ctx, grad):
        cs = ctx.saved_tensors
        return (None, None, *([None] * ctx.n), *(grad * c for c in cs))


def relay(y, cs, zs):
    """Return ``y`` whose gradient reaches each ``zs[k]`` as ``cs[k] * grad``.

    Parameters
    ----------
    y : Tensor
        The layer's output.
    cs : list of Tensor
        Shares of the output relevance, of ``y``'s shape (see :func:`shares`).
    zs : list of Tensor
        Modified forwards of the layer, computed from its input.
    """
    return _Relay.apply(y, len(cs), *cs, *zs)
