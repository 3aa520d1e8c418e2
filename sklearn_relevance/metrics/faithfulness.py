"""Faithfulness beyond the perturbation curves: does the map rank what the
network uses?

Quantus 0.6's definitions, batched (every step of a chunk in one forward):

- :func:`faithfulness_correlation` (Bhatt et al. 2020): Pearson correlation
  over random feature subsets between the relevance they hold and the drop
  of the output when they are set to the baseline;
- :func:`faithfulness_estimate` (Alvarez-Melis and Jaakkola 2018): the same
  over the features taken one group at a time in order of relevance;
- :func:`monotonicity_arya` (Arya et al. 2019): is the output non-decreasing
  as features are restored into the baseline, least relevant first?
- :func:`monotonicity_nguyen` (Nguyen and Martinez 2020, quantus'
  ``MonotonicityCorrelation``): Spearman correlation between each group's
  relevance and the output's variance when it is replaced by noise;
- :func:`infidelity` (Yeh et al. 2019, quantus' block-deletion form): mean
  squared difference between the output drop and the relevance-weighted
  input change as square patches are deleted one after another.

Higher is better for the correlations and monotonicity; lower for
infidelity. ``relevance`` broadcasts to X's shape, every element of X is a
feature (as quantus).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._validation import check_choice, check_int, check_real
from ._checks import to_numpy
from ._explaining import Model, check_relevance, seed_of, step_draws
from ._perturb import feature_ranks, masked_response, resolve_base
from ._similarity import similarity as similarity_function

__all__ = ["faithfulness_correlation", "faithfulness_estimate", "monotonicity_arya",
           "monotonicity_nguyen", "infidelity"]

RESPONSES = {"logit", "proba"}


def _setup(owner, estimator, X, relevance, y, target, response, internal_batch_size,
           absolute=False):
    check_choice(response, "response", owner, RESPONSES)
    model = Model(estimator, X, owner, target=target, y=y,
                  internal_batch_size=internal_batch_size, need_explainer=False)
    a = check_relevance(relevance, model.X, owner).reshape(model.n, -1)
    if absolute:
        a = a.abs()
    return model, a


def _first_repeats(idx):
    """Bool mask of the entries that repeat an earlier entry of their row."""
    s, order = idx.sort(dim=1, stable=True)  # a value's first entry sorts first
    repeat = torch.zeros_like(idx, dtype=torch.bool)
    return repeat.scatter_(1, order[:, 1:], s[:, 1:] == s[:, :-1])


def _distinct_draws(g, n, F, size, device, margin=None):
    """(n, size) indices, each row ``size`` distinct features drawn uniformly.

    Small subsets (at most F / 8) are the first ``size`` distinct values of a
    row of uniform integers (drawn with a margin for the expected repeats; a
    row left short draws its missing entries again until none repeats): the
    draw treats all features alike, so every subset of ``size`` features is
    equally likely, and it costs O(size) per row instead of the O(F) of
    ranking F uniform numbers (which larger subsets use)."""
    if 8 * size > F:
        return torch.rand(n, F, generator=g, device=device).topk(size, dim=1,
                                                                 sorted=False).indices
    if margin is None:
        margin = 2 * (size * size // F) + 8  # about twice the expected repeats
    idx = torch.randint(F, (n, size + margin), generator=g, device=device)
    repeat = _first_repeats(idx)
    # the entries that are not repeats, in draw order, first
    first = repeat.to(torch.uint8).sort(dim=1, stable=True).indices[:, :size]
    short = repeat.sum(1) > margin
    idx, repeat = idx.gather(1, first), repeat.gather(1, first)
    while bool(short.any()):  # rows that drew fewer than size distinct values
        count = int(repeat.sum())
        idx[repeat] = torch.randint(F, (count,), generator=g, device=device)
        repeat = _first_repeats(idx)
        short = repeat.any(1)
    return idx


def random_subsets(seed, runs, n, F, size, device):
    """(k, n, size) feature indices of each run's random subsets (without
    replacement, uniform over the subsets of ``size`` features), drawn per
    run from ``(seed, run)``."""
    return step_draws(lambda g: _distinct_draws(g, n, F, size, device), seed, runs, device)


def faithfulness_correlation(estimator, X, relevance, *, y=None, target=None, n_runs=100,
                             subset_size=224, baseline="black", response="logit",
                             similarity="pearson", random_state=None,
                             internal_batch_size=None):
    """Faithfulness correlation (Bhatt et al. 2020), per sample.

    In each of ``n_runs`` runs a random subset of ``subset_size`` features
    is set to the baseline; the score is the correlation (over runs)
    between the relevance of the subset and the drop of the response.
    Equals ``quantus.FaithfulnessCorrelation(return_aggregate=False)`` on
    the same subsets. Higher is better; a random map scores about 0.

    Parameters
    ----------
    estimator : fitted estimator, Pipeline or torch.nn.Module
    X : array-like or Tensor of shape (n_samples, ...)
    relevance : array-like or Tensor
        Maps of X's shape (or one channel of it).
    y, target
        The output followed (``None``: "true" with y, else "predicted").
    n_runs : int, default=100
    subset_size : int, default=224
    baseline : {"black", "white", "mean"}, float or array, default="black"
        Replacement values ("black": each sample's smallest value).
    response : {"logit", "proba"}, default="logit"
    similarity : str or callable, default="pearson"
    random_state : int, RandomState or None, default=None
    internal_batch_size : int, optional
        Rows per forward pass.

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import faithfulness_correlation
    >>> net = torch.nn.Linear(8, 1)
    >>> X = torch.randn(3, 8)
    >>> relevance = X * net.weight.detach()  # exact for a linear model
    >>> faithfulness_correlation(net, X, relevance, n_runs=20, subset_size=3,
    ...                          baseline=0.0, random_state=0).round(6)
    array([1., 1., 1.])
    """
    owner = "faithfulness_correlation"
    n_runs = check_int(n_runs, "n_runs", owner, low=2)
    model, a = _setup(owner, estimator, X, relevance, y, target, response,
                      internal_batch_size)
    X, n, F = model.X, model.n, a.shape[1]
    subset_size = check_int(subset_size, "subset_size", owner)
    if subset_size > F:
        raise ValueError(f"The 'subset_size' parameter of {owner} must be at most the number "
                         f"of features ({F}). Got {subset_size} instead.")
    sim = similarity_function(similarity, owner)
    base = resolve_base(baseline, X, owner)
    seed = seed_of(random_state)
    deltas = torch.empty(n_runs, n, dtype=torch.float64, device=X.device)
    sums = torch.empty_like(deltas)
    with model.access():
        t = model.resolve_target()
        f0 = model.response(X, t, response).double()
        for sl in model.step_chunks(n_runs, "forward_pass_input"):
            idx = random_subsets(seed, range(sl.start, sl.stop), n, F, subset_size, X.device)
            mask = torch.zeros(idx.shape[0], n, F, dtype=torch.bool, device=X.device)
            mask.scatter_(2, idx, True)
            deltas[sl] = f0 - masked_response(model, X, base, mask, t, response)
            sums[sl] = a.double()[None].expand(idx.shape[0], n, F).gather(2, idx).sum(2)
    return to_numpy(sim(sums.T, deltas.T))


def _group_sums(a, group, n_groups):
    return torch.zeros(a.shape[0], n_groups, dtype=torch.float64, device=a.device) \
        .scatter_add_(1, group, a.double())


def faithfulness_estimate(estimator, X, relevance, *, y=None, target=None,
                          features_in_step=1, baseline="black", response="logit",
                          similarity="pearson", internal_batch_size=None):
    """Faithfulness estimate (Alvarez-Melis and Jaakkola 2018), per sample.

    Features are taken in groups of ``features_in_step``, most relevant
    first; each group alone is set to the baseline and the score is the
    correlation between the groups' relevance and the drops of the
    response. Equals ``quantus.FaithfulnessEstimate``. Higher is better.

    Parameters
    ----------
    estimator, X, relevance, y, target, baseline, response, similarity, internal_batch_size
        As :func:`faithfulness_correlation`.
    features_in_step : int, default=1

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import faithfulness_estimate
    >>> net = torch.nn.Linear(8, 1)
    >>> X = torch.randn(3, 8)
    >>> faithfulness_estimate(net, X, X * net.weight.detach(), baseline=0.0).round(6)
    array([1., 1., 1.])
    """
    owner = "faithfulness_estimate"
    fis = check_int(features_in_step, "features_in_step", owner)
    model, a = _setup(owner, estimator, X, relevance, y, target, response,
                      internal_batch_size)
    X, n, F = model.X, model.n, a.shape[1]
    sim = similarity_function(similarity, owner)
    base = resolve_base(baseline, X, owner)
    group = feature_ranks(a, descending=True) // fis
    steps = math.ceil(F / fis)
    deltas = torch.empty(steps, n, dtype=torch.float64, device=X.device)
    with model.access():
        t = model.resolve_target()
        f0 = model.response(X, t, response).double()
        for sl in model.step_chunks(steps, "forward_pass_input"):
            j = torch.arange(sl.start, sl.stop, device=X.device)
            deltas[sl] = f0 - masked_response(model, X, base, group[None] == j[:, None, None],
                                              t, response)
    return to_numpy(sim(_group_sums(a, group, steps), deltas.T))


def monotonicity_arya(estimator, X, relevance, *, y=None, target=None, features_in_step=1,
                      baseline="black", response="proba", absolute=True,
                      internal_batch_size=None):
    """Monotonicity (Arya et al. 2019), per sample: 1.0 or 0.0.

    Starting from the baseline, the features are restored to X's values in
    groups of ``features_in_step``, least relevant first; the sample passes
    (1.0) when the response never decreases from one step to the next
    (from the first restored group on, as quantus). The paper's definition:
    quantus 0.6's ``Monotonicity`` replaces each group by the baseline
    again instead of restoring it, so its input never changes and every
    sample passes (``tests/test_metrics_faithfulness.py`` shows it).
    Higher is better; a random map passes rarely on a non-linear network.

    Parameters
    ----------
    estimator, X, relevance, y, target, baseline, internal_batch_size
        As :func:`faithfulness_correlation`.
    features_in_step : int, default=1
    response : {"proba", "logit"}, default="proba"
    absolute : bool, default=True
        Order by ``|relevance|`` (quantus' default ``abs=True``).

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import monotonicity_arya
    >>> net = torch.nn.Linear(4, 1)
    >>> X = torch.ones(2, 4)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1., 2., 3., 4.]]))
    >>> monotonicity_arya(net, X, X * net.weight, baseline=0.0, response="logit")
    array([1., 1.])
    """
    owner = "monotonicity_arya"
    fis = check_int(features_in_step, "features_in_step", owner)
    model, a = _setup(owner, estimator, X, relevance, y, target, response,
                      internal_batch_size, absolute)
    X, n, F = model.X, model.n, a.shape[1]
    base = resolve_base(baseline, X, owner)
    group = feature_ranks(a, descending=False) // fis
    steps = math.ceil(F / fis)
    preds = torch.empty(steps, n, dtype=torch.float64, device=X.device)
    with model.access():
        t = model.resolve_target()
        for sl in model.step_chunks(steps, "forward_pass_input"):
            j = torch.arange(sl.start, sl.stop, device=X.device)
            preds[sl] = masked_response(model, X, base, group[None] > j[:, None, None], t,
                                        response)
    return to_numpy((preds.diff(dim=0) >= 0).all(0).double())


def monotonicity_nguyen(estimator, X, relevance, *, y=None, target=None, n_samples=100,
                        features_in_step=1, low=0.0, high=1.0, eps=1e-5, response="proba",
                        absolute=True, similarity="spearman", random_state=None,
                        internal_batch_size=None):
    """Monotonicity correlation (Nguyen and Martinez 2020), per sample.

    Each group of ``features_in_step`` features (least relevant first) is
    replaced ``n_samples`` times by one uniform value in ``[low, high)``
    per sample; the score is the Spearman correlation between the groups'
    relevance and the mean squared change of the response (divided by the
    squared response when it exceeds ``eps``). Equals
    ``quantus.MonotonicityCorrelation`` on the same draws. Higher is
    better; a random map scores about 0.

    Parameters
    ----------
    estimator, X, relevance, y, target, internal_batch_size
        As :func:`faithfulness_correlation`.
    n_samples : int, default=100
    features_in_step : int, default=1
    low, high : float, default=0.0, 1.0
    eps : float, default=1e-5
    response : {"proba", "logit"}, default="proba"
    absolute : bool, default=True
    similarity : str or callable, default="spearman"
    random_state : int, RandomState or None, default=None

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import monotonicity_nguyen
    >>> net = torch.nn.Linear(6, 2)
    >>> X = torch.randn(3, 6)
    >>> monotonicity_nguyen(net, X, torch.randn(3, 6), n_samples=4, random_state=0).shape
    (3,)
    """
    owner = "monotonicity_nguyen"
    fis = check_int(features_in_step, "features_in_step", owner)
    n_samples = check_int(n_samples, "n_samples", owner)
    eps = check_real(eps, "eps", owner, low=0)
    model, a = _setup(owner, estimator, X, relevance, y, target, response,
                      internal_batch_size, absolute)
    X, n, F = model.X, model.n, a.shape[1]
    sim = similarity_function(similarity, owner)
    group = feature_ranks(a, descending=False) // fis
    steps = math.ceil(F / fis)
    seed = seed_of(random_state)
    var = torch.empty(steps, n, dtype=torch.float64, device=X.device)
    with model.access():
        t = model.resolve_target()
        f0 = model.response(X, t, response).double()
        inv = torch.where(f0.abs() >= eps, 1.0 / f0.abs(), torch.ones_like(f0)) ** 2
        for sl in model.step_chunks(steps, "forward_pass_input", n_samples):
            start = sl.start
            j = torch.arange(sl.start, sl.stop, device=X.device)
            u = step_draws(lambda g: torch.rand(n_samples, n, generator=g, device=X.device)
                           * (high - low) + low, seed, j.tolist(), X.device)  # (k, S, n)
            k = j.shape[0]
            mask = (group[None] == j[:, None, None])[:, None].expand(k, n_samples, n, F)
            vals = u[..., None].expand(k, n_samples, n, F)
            r = masked_response(model, X, vals.reshape(k * n_samples, n, F),
                                mask.reshape(k * n_samples, n, F), t, response,
                                per_step=True)
            var[start:start + k] = ((r.reshape(k, n_samples, n) - f0) ** 2).mean(1) * inv
    return to_numpy(sim(_group_sums(a, group, steps), var.T))


def _block_ids(shape, patch, device):
    """Raster index of the ``patch``-wide block of each position of ``shape``."""
    grids = torch.meshgrid(*[torch.arange(s, device=device) // patch for s in shape],
                           indexing="ij")
    n_blocks = [math.ceil(s / patch) for s in shape]
    ids = torch.zeros(shape, dtype=torch.long, device=device)
    for g, nb in zip(grids, n_blocks):
        ids = ids * nb + g
    return ids, int(np.prod(n_blocks))


def infidelity(estimator, X, relevance, *, y=None, target=None, patch_sizes=(4,),
               baseline="black", response="logit", internal_batch_size=None):
    """Infidelity in quantus 0.6's block-deletion form (Yeh et al. 2019), per sample.

    For each patch size, square (cubic) patches of the spatial axes are set
    to the baseline one after another (raster order, cumulatively; edge
    patches are smaller when a side is not a multiple); at each step the
    output drop ``f(x) - f(x_k)`` is compared with ``sum(a * (x - x_k))``
    and the score is the mean squared difference, averaged over patch
    sizes. The gradient of a linear network scores 0. Equals ``quantus.Infidelity`` (whose draws are all the same with
    its default baseline) on images whose sides are multiples of the patch
    sizes. Lower is better.

    Parameters
    ----------
    estimator, X, relevance, y, target, baseline, internal_batch_size
        As :func:`faithfulness_correlation`; X has spatial axes.
    patch_sizes : sequence of int, default=(4,)
    response : {"logit", "proba"}, default="logit"

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import infidelity
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1))
    >>> X = torch.randn(2, 1, 4, 4)
    >>> gradient = net[1].weight.detach().reshape(1, 1, 4, 4).expand(2, 1, 4, 4)
    >>> infidelity(net, X, gradient, patch_sizes=[2], baseline=0.0).round(8)
    array([0., 0.])
    """
    owner = "infidelity"
    if isinstance(patch_sizes, int) or not len(patch_sizes):
        raise ValueError(f"The 'patch_sizes' parameter of {owner} must be a non-empty list "
                         f"of ints. Got {patch_sizes!r} instead.")
    patch_sizes = [check_int(p, "patch_sizes", owner) for p in patch_sizes]
    model, a = _setup(owner, estimator, X, relevance, y, target, response,
                      internal_batch_size)
    X, n = model.X, model.n
    if X.ndim < 3:
        raise ValueError(f"{owner} needs inputs with spatial axes (n, channels, ...). Got "
                         f"X of shape {tuple(X.shape)} instead.")
    base = resolve_base(baseline, X, owner)
    losses = []
    with model.access():
        t = model.resolve_target()
        f0 = model.response(X, t, response).double()
        for p in patch_sizes:
            ids, n_blocks = _block_ids(X.shape[2:], p, X.device)
            ids = ids.reshape(1, 1, -1).expand(n, X.shape[1], -1).reshape(n, -1)
            sq = torch.zeros(n, dtype=torch.float64, device=X.device)
            for sl in model.step_chunks(n_blocks, "forward_pass_input"):
                j = torch.arange(sl.start, sl.stop, device=X.device)
                mask = ids[None] <= j[:, None, None]
                drop = f0 - masked_response(model, X, base, mask, t, response)
                dx = torch.where(mask, X.reshape(1, n, -1) - base.reshape(1, n, -1),
                                 torch.zeros((), device=X.device))
                sums = (a.double()[None] * dx.double()).sum(-1)
                sq += ((drop - sums) ** 2).sum(0)
            losses.append(sq / n_blocks)
    return to_numpy(torch.stack(losses).mean(0))
