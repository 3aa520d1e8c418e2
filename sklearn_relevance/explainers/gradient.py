"""Gradient-family explainers: gradient (saliency), gradient x input,
integrated gradients and SmoothGrad (with SmoothGrad squared and VarGrad).

Integrated gradients and SmoothGrad expand the batch (steps or noise samples
x samples) and evaluate it in chunks of at most ``internal_batch_size`` rows,
one forward / backward pass per chunk, never a Python loop per step.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from .._batching import batch_len
from .._input_stem import RowLayout, input_stem
from .._baselines import resolve_baselines
from .._module_access import module_access
from .._targets import repeat_target
from .._tensors import (
    check_inputs,
    flatten_inputs,
    forward,
    gradient_wrt_inputs,
    input_gradient,
    map_inputs,
    module_errors,
    select_output,
)
from .._validation import check_finite_tensor
from ._base import (
    BaseExplainer,
    get_explainer,
    wrapped_shares_module,
    wrapped_uses_layers,
)
from ._engine import (
    expanded_chunks,
    max_rows_for,
    row_fits_budget,
    slice_target,
)

__all__ = ["Gradient", "GradientXInput", "IntegratedGradients", "SmoothGrad",
           "integration_steps"]

INTEGRATION_METHODS = (
    "gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
    "riemann_trapezoid",
)


class Gradient(BaseExplainer):
    """Gradient of the target output with respect to the input (saliency).

    Parameters
    ----------
    absolute : bool, default=False
        Return ``|gradient|`` (captum's ``Saliency`` default, Simonyan et al.
        2014). The signed gradient is the default because it is what a
        training penalty differentiates.

    Notes
    -----
    Cost: one forward and one backward pass. Equals captum's
    ``Saliency(abs=absolute)``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import Gradient
    >>> module = torch.nn.Linear(3, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = module.weight.copy_(torch.tensor([[1., 2., 3.], [4., 5., 6.]]))
    >>> Gradient().explain(module, torch.ones(1, 3), target=1)
    tensor([[4., 5., 6.]])
    """

    _parameter_constraints = {"absolute": ["boolean"]}

    uses_layers = False
    shares_module = True

    def __init__(self, *, absolute=False):
        self.absolute = absolute

    def _explain(self, module, X, target, *, create_graph):
        grad = input_gradient(module, X, target, create_graph=create_graph)
        if self.absolute:
            grad = map_inputs(lambda g: g.abs(), grad)
        return grad

    def explain_from_output(self, X, output, target=None, *, create_graph=False,
                            retain_graph=None):
        """The relevance of an output that was already computed from ``X``.

        Training penalties call this with the training forward pass, so the
        relevance costs one extra backward pass and no extra forward.

        Parameters
        ----------
        X : Tensor or dict of Tensors
            The input that produced ``output``; it must require grad.
        output : Tensor or tuple
            The module's output on ``X`` (or any differentiable function of
            it, such as its log-softmax).
        target : None, int, LongTensor or "sum"
            The output explained (see ``explain``); ``"sum"`` explains the
            sum of all outputs.
        create_graph : bool, default=False
            Keep the graph of the relevance (double backpropagation).
        retain_graph : bool, optional
            Keep the graph of ``output`` for later backward passes; defaults
            to ``create_graph``.

        Returns
        -------
        Tensor or dict of Tensors
            Relevance of ``X``'s shape and structure.
        """
        grad = _output_gradient(X, output, target, create_graph=create_graph,
                                retain_graph=retain_graph)
        if self.absolute:
            grad = map_inputs(lambda g: g.abs(), grad)
        return grad


class GradientXInput(BaseExplainer):
    """Gradient times input (Shrikumar et al. 2016; captum's ``InputXGradient``).

    The default explainer of the deep relevance regularization penalty.

    Notes
    -----
    Cost: one forward and one backward pass.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import GradientXInput
    >>> module = torch.nn.Linear(3, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = module.weight.fill_(2.0)
    >>> GradientXInput().explain(module, torch.tensor([[1., 0., -1.]]))
    tensor([[ 2.,  0., -2.]])
    """

    uses_layers = False
    shares_module = True

    def __init__(self):
        pass

    def _explain(self, module, X, target, *, create_graph):
        grad = input_gradient(module, X, target, create_graph=create_graph)
        return map_inputs(lambda g, x: g * x, grad, X)

    def explain_from_output(self, X, output, target=None, *, create_graph=False,
                            retain_graph=None):
        """Gradient x input of an output already computed from ``X``.

        See :meth:`Gradient.explain_from_output`.
        """
        grad = _output_gradient(X, output, target, create_graph=create_graph,
                                retain_graph=retain_graph)
        return map_inputs(lambda g, x: g * x, grad, X)


def _output_gradient(X, output, target, *, create_graph, retain_graph):
    """Gradient of the selected (or summed) ``output`` with respect to ``X``."""
    tensors, rebuild = flatten_inputs(X)
    if not all(t.requires_grad for t in tensors):
        raise ValueError(
            "explain_from_output needs the input X that produced the output, with "
            "requires_grad=True. Got an X that does not require grad."
        )
    out = output[0] if isinstance(output, tuple) else output
    if isinstance(target, str) and target == "sum":
        score = out.sum()
    else:
        score = select_output(out, target).sum()
    # an output not connected to X is an error, never all-zero relevance
    # (as a training penalty it would silently be 0)
    return rebuild(gradient_wrt_inputs(
        score, tensors, None, create_graph=create_graph,
        retain_graph=create_graph if retain_graph is None else retain_graph,
    ))


# --------------------------------------------------------------------------
# integrated gradients
# --------------------------------------------------------------------------
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


def _sum_over_samples(parts):
    """Concatenate per-sample-slice accumulators in sample order."""
    keys = sorted(parts)
    n_leaves = len(parts[keys[0]])
    return [torch.cat([parts[k][i] for k in keys]) for i in range(n_leaves)]


def _accumulate(parts, key, values):
    old = parts.get(key)
    parts[key] = values if old is None else [a + b for a, b in zip(old, values)]


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


# --------------------------------------------------------------------------
# SmoothGrad
# --------------------------------------------------------------------------
def _standard_noise(tensors, seed, copy, out=None):
    """Standard normal noise of each tensor's shape for noise sample ``copy``.

    One generator per noise sample, seeded with ``seed``, so the noise of a
    sample does not depend on how the expanded batch is chunked. With
    ``out`` (one tensor per input), the noise is drawn into those tensors.
    """
    gen = torch.Generator(device=tensors[0].device)
    gen.manual_seed(int(seed))
    if out is None:
        return [
            torch.randn(t.shape, generator=gen, dtype=t.dtype, device=t.device)
            for t in tensors
        ]
    for t, o in zip(tensors, out):
        torch.randn(t.shape, generator=gen, dtype=t.dtype, device=t.device, out=o)
    return out


def _noisy_rows(xs, stds, seeds, copies):
    """``x + std * noise`` for ``copies`` of the whole batch, as rows.

    The noise of each copy is drawn straight into its rows (the same numbers
    as :func:`_standard_noise`), then scaled and shifted in place: no stacked
    copy of the noise, no temporaries.
    """
    k = copies.stop - copies.start
    bufs = [torch.empty((k, *x.shape), dtype=x.dtype, device=x.device) for x in xs]
    for j, c in enumerate(range(copies.start, copies.stop)):
        _standard_noise(xs, seeds[c], c, out=[buf[j] for buf in bufs])
    rows = []
    for x, s, buf in zip(xs, stds, bufs):
        buf.mul_(s.unsqueeze(0) if s.ndim else s).add_(x.unsqueeze(0))
        rows.append(buf.view(-1, *x.shape[1:]))
    return rows


def _noise_std(x, noise_level):
    """Per-sample standard deviation ``noise_level * (max - min)``."""
    flat = x.detach().reshape(x.shape[0], -1)
    spread = flat.amax(1) - flat.amin(1)
    return (noise_level * spread).view((-1,) + (1,) * (x.ndim - 1))


class SmoothGrad(BaseExplainer):
    """SmoothGrad (Smilkov et al. 2017), SmoothGrad squared and VarGrad.

    Averages a base explainer over ``n_samples`` copies of the input with
    Gaussian noise added: the mean (SmoothGrad), the mean of squares
    (``squared=True``, SmoothGrad^2 of Hooker et al. 2019) or the variance
    (``var=True``, VarGrad of Adebayo et al. 2018). All noise samples of a
    chunk are explained in one call of the base explainer on at most
    ``internal_batch_size`` rows.

    Parameters
    ----------
    explainer : str or explainer object, default="gradient"
        Base explainer (any name of
        :func:`~sklearn_relevance.explainers.get_explainer` or an object).
    n_samples : int, default=50
        Number of noisy copies per sample.
    noise_level : float, default=0.15
        Standard deviation of the noise relative to each sample's value
        range ``max - min`` (per modality for dict inputs), as in the
        SmoothGrad paper.
    stdevs : float or None, default=None
        Absolute standard deviation overriding ``noise_level`` (captum's
        ``NoiseTunnel(stdevs=...)``).
    squared : bool, default=False
        Average the squared attributions (SmoothGrad^2).
    var : bool, default=False
        Variance of the attributions (VarGrad).
    internal_batch_size : int or None, default=None
        Upper bound on the rows (noise samples x samples) handed to the base
        explainer at once; ``None`` uses a 8 MiB budget on the inputs.
    random_state : int, RandomState instance or None, default=None
        Seeds the noise; the same value gives the same result whatever the
        chunking.

    Notes
    -----
    Cost: ``n_samples`` times the base explainer's. Noise sample ``j`` is
    drawn for the whole batch from its own generator, so the result of a
    sample depends on the batch it is explained in (as in captum), but not
    on ``internal_batch_size``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import SmoothGrad
    >>> module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
    ...                              torch.nn.Linear(4, 2))
    >>> X = torch.randn(5, 3)
    >>> sg = SmoothGrad(n_samples=8, random_state=0)
    >>> torch.equal(sg.explain(module, X, target=1), sg.explain(module, X, target=1))
    True
    """

    _parameter_constraints = {
        "explainer": [str, HasMethods(["explain"])],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "noise_level": [Interval(Real, 0, None, closed="left")],
        "stdevs": [Interval(Real, 0, None, closed="left"), None],
        "squared": ["boolean"],
        "var": ["boolean"],
        "internal_batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    @property
    def uses_layers(self):
        """As the wrapped explainer's (see :class:`BaseExplainer`)."""
        return wrapped_uses_layers(self.explainer)

    @property
    def shares_module(self):
        """As the wrapped explainer's (see :class:`BaseExplainer`)."""
        return wrapped_shares_module(self.explainer)

    def __init__(self, explainer="gradient", *, n_samples=50, noise_level=0.15,
                 stdevs=None, squared=False, var=False, internal_batch_size=None,
                 random_state=None):
        self.explainer = explainer
        self.n_samples = n_samples
        self.noise_level = noise_level
        self.stdevs = stdevs
        self.squared = squared
        self.var = var
        self.internal_batch_size = internal_batch_size
        self.random_state = random_state

    def _base(self):
        return get_explainer(self.explainer, param_name="explainer")

    @property
    def differentiable(self):
        """Whether the base explainer is differentiable."""
        return bool(getattr(self._base(), "differentiable", False))

    @property
    def supports_dict(self):
        """Whether the base explainer takes dict inputs."""
        return bool(getattr(self._base(), "supports_dict", True))

    def _explain(self, module, X, target, *, create_graph):
        if self.squared and self.var:
            raise ValueError(
                "The 'squared' and 'var' parameters of SmoothGrad cannot both be "
                "True. Got squared=True and var=True instead."
            )
        base = self._base()
        xs, rebuild = flatten_inputs(X)
        if self.stdevs is not None:
            stds = [torch.full((), float(self.stdevs), dtype=x.dtype, device=x.device)
                    for x in xs]
        else:
            stds = [_noise_std(x, self.noise_level) for x in xs]
        rng = check_random_state(self.random_state)
        seeds = rng.randint(0, 2**31 - 1, size=self.n_samples)
        n = batch_len(X)
        sums, squares = {}, {}
        cached = (None, None)
        # a mean of plain gradients over noise: the input layer's backward
        # runs once per sample (on the sum over noise samples), not per row
        split = layout = total = None
        if (not (create_graph or self.squared or self.var) and torch.is_tensor(X)
                and type(base) is Gradient and not base.absolute):
            split = input_stem(module)
        max_rows = max_rows_for(X, self.internal_batch_size, module=module)
        if split is not None:
            # per row: the trunk's input; per sample: its gradient sum, kept
            # for the whole batch, which must fit one pass's budget beside a
            # row (and so does the row's own stem output)
            extra = split.output_nbytes(X)
            if row_fits_budget(module, X, n * extra):
                max_rows = max_rows_for(X, self.internal_batch_size, module=module,
                                        extra_row_bytes=extra)
            else:
                split = None
        for copies, samples in expanded_chunks(n, self.n_samples, max_rows):
            k = copies.stop - copies.start
            if samples.stop - samples.start == n:  # each copy visited once
                rows = _noisy_rows(xs, stds, seeds, copies)
            else:
                key = (copies.start, copies.stop)
                if cached[0] != key:
                    draws = [_standard_noise(xs, seeds[c], c)
                             for c in range(copies.start, copies.stop)]
                    cached = (key, [torch.stack(leaf) for leaf in zip(*draws)])
                rows = []
                for x, s, e in zip(xs, stds, cached[1]):
                    std = s[samples] if s.ndim else s
                    noisy = x[samples].unsqueeze(0) + std.unsqueeze(0) * e[:, samples]
                    rows.append(noisy.reshape(-1, *x.shape[1:]))
            t = repeat_target(slice_target(target, samples), k)
            if split is not None:
                # sum the trunk's gradients over the chunk's noise samples,
                # flat, into the rows of the chunk's samples
                with torch.no_grad():
                    h = split.stem(rows[0])
                g = input_gradient(split.trunk, h, t)
                if layout is None:
                    layout = RowLayout(h)
                    total = layout.empty(n).zero_()
                m = samples.stop - samples.start
                layout.flat(total)[samples].add_(layout.flat(g).view(k, m, -1).sum(0))
                continue
            rel, _ = flatten_inputs(
                base.explain(module, rebuild(rows), t, create_graph=create_graph))
            rel = [r.reshape(k, -1, *r.shape[1:]) for r in rel]
            _accumulate(sums, samples.start, [r.sum(0) for r in rel])
            if self.squared or self.var:
                _accumulate(squares, samples.start, [(r * r).sum(0) for r in rel])
        if split is not None:
            return split.transpose(total / self.n_samples, xs[0])
        mean = [s / self.n_samples for s in _sum_over_samples(sums)]
        if not (self.squared or self.var):
            return rebuild(mean)
        mean_sq = [s / self.n_samples for s in _sum_over_samples(squares)]
        if self.squared:
            return rebuild(mean_sq)
        return rebuild([m2 - m * m for m2, m in zip(mean_sq, mean)])
