"""Integrated gradients (Sundararajan, Taly & Yan 2017) and its integration
rules (the same points and weights as captum).

The steps x samples batch is evaluated in chunks of at most
``internal_batch_size`` rows, one forward / backward pass per chunk, never a
Python loop per step; an affine input layer runs once per sample
(:func:`_integrate_split`). Re-exported by
:mod:`sklearn_relevance.explainers.gradient`.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from .._batching import batch_len
from .._input_stem import RowLayout, input_stem
from .._baselines import resolve_baselines
from .._module_access import module_access
from .._targets import repeat_target
from .._tensors import (
    check_inputs,
    flatten_inputs,
    forward,
    input_gradient,
    module_errors,
    select_output,
)
from .._validation import check_finite_tensor
from ._base import BaseExplainer
from ._engine import (
    _accumulate,
    _sum_over_samples,
    expanded_chunks,
    max_rows_for,
    row_fits_budget,
    slice_target,
)

__all__ = ["IntegratedGradients", "integration_steps"]

INTEGRATION_METHODS = (
    "gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
    "riemann_trapezoid",
)


def integration_steps(method, n_steps):
    """Positions ``alpha`` in [0, 1] and weights of an integration rule.

    The same rules and values as captum's
    ``captum.attr._utils.approximation_methods``.

    Parameters
    ----------
    method : {"gausslegendre", "riemann_left", "riemann_right", "riemann_middle", \
"riemann_trapezoid"}
    n_steps : int
        Number of points (at least 2 for the Riemann rules).

    Returns
    -------
    alphas, weights : ndarray of shape (n_steps,)

    Examples
    --------
    >>> from sklearn_relevance.explainers.gradient import integration_steps
    >>> integration_steps("riemann_trapezoid", 3)
    (array([0. , 0.5, 1. ]), array([0.16666667, 0.33333333, 0.16666667]))
    """
    n = int(n_steps)
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return 0.5 * (1 + nodes), 0.5 * weights
    if method not in INTEGRATION_METHODS:
        raise ValueError(
            f"The 'method' parameter must be a str among {list(INTEGRATION_METHODS)}. "
            f"Got {method!r} instead."
        )
    if n < 2:
        raise ValueError(
            f"The 'n_steps' parameter must be at least 2 for method={method!r}. "
            f"Got {n} instead."
        )
    weights = np.full(n, 1.0 / n)
    kind = method.split("_")[1]
    if kind == "trapezoid":
        weights[[0, -1]] /= 2
        alphas = np.linspace(0, 1, n)
    elif kind == "left":
        alphas = np.linspace(0, 1 - 1 / n, n)
    elif kind == "middle":
        alphas = np.linspace(1 / (2 * n), 1 - 1 / (2 * n), n)
    else:
        alphas = np.linspace(1 / n, 1, n)
    return alphas, weights


class IntegratedGradients(BaseExplainer):
    """Integrated gradients (Sundararajan, Taly & Yan 2017).

    ``(x - x') * integral_0^1 grad f(x' + alpha (x - x')) d alpha``, the
    integral approximated by ``n_steps`` points of ``method`` (the same
    points and weights as captum). All steps of a chunk of samples run in one
    forward / backward pass of at most ``internal_batch_size`` rows.

    Parameters
    ----------
    n_steps : int, default=50
        Number of integration points.
    method : {"gausslegendre", "riemann_left", "riemann_right", \
"riemann_middle", "riemann_trapezoid"}, default="gausslegendre"
        Integration rule.
    baselines : float, array-like, Tensor, {"zero", "mean", "blur"} or \
callable, default=0.0
        Reference input ``x'`` (see
        :func:`~sklearn_relevance._baselines.resolve_baselines`).
    internal_batch_size : int or None, default=None
        Upper bound on the rows (steps x samples) of one pass; ``None`` uses
        a 8 MiB budget on the inputs of a pass.
    multiply_by_inputs : bool, default=True
        Multiply the path-integrated gradient by ``x - x'`` (global
        attribution). ``False`` returns the integrated gradient alone (local
        attribution, captum's ``multiply_by_inputs=False``).

    Notes
    -----
    Cost: ``n_steps`` forward and backward passes' worth of rows. Completeness
    (the attributions of a sample sum to ``f(x) - f(x')``) holds up to the
    integration error, which :meth:`convergence_delta` returns; call
    ``explain(..., return_convergence_delta=True)`` to get both at once.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import IntegratedGradients
    >>> module = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Tanh())
    >>> X = torch.randn(4, 3)
    >>> attr, delta = IntegratedGradients(n_steps=32).explain(
    ...     module, X, return_convergence_delta=True)
    >>> attr.shape, bool(delta.abs().max() < 1e-3)
    (torch.Size([4, 3]), True)
    """

    _parameter_constraints = {
        "n_steps": [Interval(Integral, 1, None, closed="left")],
        "method": [StrOptions(set(INTEGRATION_METHODS))],
        "baselines": "no_validation",
        "internal_batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "multiply_by_inputs": ["boolean"],
    }

    uses_layers = False
    shares_module = True

    def __init__(self, *, n_steps=50, method="gausslegendre", baselines=0.0,
                 internal_batch_size=None, multiply_by_inputs=True):
        self.n_steps = n_steps
        self.method = method
        self.baselines = baselines
        self.internal_batch_size = internal_batch_size
        self.multiply_by_inputs = multiply_by_inputs

    def explain(self, module, X, target=None, *, create_graph=False,
                return_convergence_delta=False):
        """Integrated gradients of ``module``'s ``target`` output at ``X``.

        Parameters
        ----------
        module : torch.nn.Module
        X : Tensor or dict of Tensors
        target : None, int or LongTensor of shape (n,)
        create_graph : bool, default=False
            Keep the graph (training penalties).
        return_convergence_delta : bool, default=False
            Also return the completeness error per sample (see
            :meth:`convergence_delta`).

        Returns
        -------
        attributions : Tensor or dict of Tensors
        delta : Tensor of shape (n,)
            Only with ``return_convergence_delta=True``.
        """
        attr = super().explain(module, X, target, create_graph=create_graph)
        if return_convergence_delta:
            return attr, self.convergence_delta(module, X, attr, target)
        return attr

    def convergence_delta(self, module, X, attributions, target=None):
        """Completeness error ``sum(attributions) - (f(x) - f(x'))`` per sample.

        Small (relative to ``f(x) - f(x')``) when ``n_steps`` suffices; only
        meaningful with ``multiply_by_inputs=True``.

        Parameters
        ----------
        module : torch.nn.Module
        X : Tensor or dict of Tensors
        attributions : Tensor or dict of Tensors
            The result of :meth:`explain` for the same ``X`` and ``target``.
        target : None, int or LongTensor of shape (n,)

        Returns
        -------
        Tensor of shape (n,)
        """
        check_inputs(X)
        check_finite_tensor(X, owner=type(self).__name__)
        base = resolve_baselines(self.baselines, X, owner=type(self).__name__)
        with torch.no_grad(), module_access(module, shared=True), module_errors(X):
            diff = select_output(forward(module, X), target) - select_output(
                forward(module, base), target)
        parts, _ = flatten_inputs(attributions)
        total = sum(p.detach().reshape(p.shape[0], -1).sum(1) for p in parts)
        return total - diff

    def _explain(self, module, X, target, *, create_graph):
        alphas, weights = integration_steps(self.method, self.n_steps)
        base = resolve_baselines(self.baselines, X, owner=type(self).__name__)
        xs, rebuild = flatten_inputs(X)
        bs, _ = flatten_inputs(base)
        diffs = [x - b for x, b in zip(xs, bs)]
        ref = xs[0]
        alphas = torch.as_tensor(alphas, dtype=ref.dtype, device=ref.device)
        weights = torch.as_tensor(weights, dtype=ref.dtype, device=ref.device)
        n = batch_len(X)
        parts = {}
        split = None if create_graph or not torch.is_tensor(X) else input_stem(module)
        # per row: the trunk's input, and the block's baseline, path
        # difference and gradient sum (at most a row's worth each)
        extra = 0 if split is None else 4 * split.output_nbytes(X)
        if split is not None and row_fits_budget(module, X, extra):
            max_rows = max_rows_for(X, self.internal_batch_size, module=module,
                                    extra_row_bytes=extra)
            return _integrate_split(split, X, bs[0], alphas, weights, target, max_rows,
                                    self.multiply_by_inputs)
        max_rows = max_rows_for(X, self.internal_batch_size, module=module)
        for steps, samples in expanded_chunks(n, len(alphas), max_rows):
            a, w = alphas[steps], weights[steps]
            k = a.shape[0]
            rows = [
                torch.addcmul(b[samples].unsqueeze(0), a.view((k,) + (1,) * d.ndim),
                              d[samples].unsqueeze(0)).reshape(-1, *d.shape[1:])
                for b, d in zip(bs, diffs)
            ]
            t = repeat_target(slice_target(target, samples), k)
            grads, _ = flatten_inputs(
                input_gradient(module, rebuild(rows), t, create_graph=create_graph))
            del rows
            # weighted sum over the steps without a (steps x samples) temporary
            summed = [torch.tensordot(w, g.reshape(k, -1, *g.shape[1:]), dims=1)
                      for g in grads]
            _accumulate(parts, samples.start, summed)
        total = _sum_over_samples(parts)
        if self.multiply_by_inputs:
            total = [g * d for g, d in zip(total, diffs)]
        return rebuild(total)


def _integrate_split(split, X, base, alphas, weights, target, max_rows, multiply):
    """Integrated gradients through an affine input layer run once per sample.

    The path's points enter the trunk as ``L(x') + a (L(x) - L(x'))`` and the
    step-weighted sum of the trunk's gradients goes back through ``L`` once
    (:mod:`sklearn_relevance._input_stem`). Samples go in blocks of at most
    ``max_rows``, so the stem's outputs kept for a block stay within a
    pass's memory.
    """
    n = len(X)
    out = []
    for s0 in range(0, n, max_rows):
        block = slice(s0, min(s0 + max_rows, n))
        x, b = X[block], base[block]
        with torch.no_grad():
            hb = split.stem(b)
            hd = split.linear(x - b)
        m = len(x)
        rows = RowLayout(hd)  # every tensor below in the stem output's layout
        hb, hd = rows.flat(hb).unsqueeze(0), rows.flat(hd).unsqueeze(0)
        total = rows.empty(m).zero_()
        for steps, _ in expanded_chunks(m, len(alphas), max_rows):
            a, w = alphas[steps], weights[steps]
            k = a.shape[0]
            # the points of k steps, written straight into rows of that layout
            h = rows.empty(k * m)
            torch.addcmul(hb, a.view(k, 1, 1), hd, out=rows.flat(h).view(k, m, -1))
            t = repeat_target(slice_target(target, block), k)
            g = input_gradient(split.trunk, h, t)
            rows.flat(total).view(-1).add_(w @ rows.flat(g).view(k, -1))
        grad = split.transpose(total, x)
        out.append(grad * (x - b) if multiply else grad)
    return torch.cat(out)
