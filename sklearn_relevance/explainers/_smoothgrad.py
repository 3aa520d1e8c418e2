"""SmoothGrad (Smilkov et al. 2017), SmoothGrad squared and VarGrad, and
the noise they draw (one generator per noise sample, so the noise does not
depend on the chunking).

The noise samples x samples batch is explained in chunks of at most
``internal_batch_size`` rows; a mean of plain gradients runs an affine input
layer's backward once per sample. Re-exported by
:mod:`sklearn_relevance.explainers.gradient`.
"""

from __future__ import annotations

from numbers import Integral, Real

import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval

from .._batching import batch_len
from .._input_stem import RowLayout, input_stem
from .._targets import repeat_target
from .._tensors import check_inputs, flatten_inputs, input_gradient
from ._base import (
    BaseExplainer,
    get_explainer,
    wrapped_shares_module,
    wrapped_uses_layers,
)
from ._engine import (
    _accumulate,
    _sum_over_samples,
    expanded_chunks,
    max_rows_for,
    row_fits_budget,
    slice_target,
)
from ._saliency import Gradient

__all__ = ["SmoothGrad"]


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

    def standard_noise(self, X, sample):
        """The standard normal noise of noise sample ``sample`` for the batch ``X``.

        ``explain(module, X, ...)`` explains, for noise sample ``j``, the
        input ``X + std * standard_noise(X, j)``, with ``std`` the
        ``stdevs`` parameter or ``noise_level`` times each sample's value
        range (``max - min``). The noise is drawn as ``explain`` draws it:
        from ``random_state`` (which must therefore be an int), for the whole
        batch, in ``X``'s dtype and on its device, whatever
        ``internal_batch_size``. A reference computation (another library's
        gradients, or float64) can so average over the very inputs
        SmoothGrad explains; noise drawn for a float32 ``X`` can be cast to
        float64.

        Parameters
        ----------
        X : Tensor or dict of Tensors
            The batch as it will be explained (only its shapes, dtypes and
            devices are used).
        sample : int
            The noise sample, from 0 to ``n_samples - 1``.

        Returns
        -------
        Tensor or dict of Tensors
            Noise of ``X``'s shape and structure.

        Examples
        --------
        >>> import torch
        >>> from sklearn_relevance.explainers import SmoothGrad
        >>> from sklearn_relevance.explainers import Gradient
        >>> module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
        ...                              torch.nn.Linear(4, 2)).double()
        >>> X = torch.randn(5, 3, dtype=torch.float64)
        >>> sg = SmoothGrad(n_samples=4, stdevs=0.2, random_state=0)
        >>> grads = [Gradient().explain(module, X + 0.2 * sg.standard_noise(X, j), target=1)
        ...          for j in range(4)]
        >>> torch.allclose(sg.explain(module, X, target=1), sum(grads) / 4)
        True
        """
        self._validate_params()
        if isinstance(self.random_state, bool) or not isinstance(self.random_state, Integral):
            raise ValueError(
                "The 'random_state' parameter of SmoothGrad must be an int for "
                "standard_noise (only a seed reproduces the noise of explain). Got "
                f"{self.random_state!r} instead."
            )
        if (isinstance(sample, bool) or not isinstance(sample, Integral)
                or not 0 <= sample < self.n_samples):
            raise ValueError(
                "The 'sample' parameter of standard_noise must be an int in the range "
                f"[0, {self.n_samples - 1}] (n_samples={self.n_samples}). Got "
                f"{sample!r} instead."
            )
        check_inputs(X)
        xs, rebuild = flatten_inputs(X)
        seeds = check_random_state(self.random_state).randint(0, 2**31 - 1,
                                                              size=self.n_samples)
        return rebuild(_standard_noise(xs, seeds[sample], sample))

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
