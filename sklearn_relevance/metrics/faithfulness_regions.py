"""Faithfulness over regions and subset sizes: IROF, selectivity, sensitivity-n.

- :func:`irof` (Rieger and Hansen 2020): superpixels are replaced by a
  baseline, most relevant (by mean relevance) first; the score is the area
  over the curve of the class probability relative to the original's
  (quantus' ``IROF``). Higher is better.
- :func:`selectivity` (Montavon et al. 2018): square patches are deleted
  cumulatively in order of summed relevance; :func:`selectivity_curve`
  holds the responses (quantus' ``Selectivity`` returns these curves) and
  :func:`selectivity` their area (lower is better).
- :func:`sensitivity_n` (Ancona et al. 2018): per sample, the correlation
  between the relevance of random subsets of ``n`` features and the output
  drop when they are removed, averaged over several ``n``; and
  :func:`sensitivity_n_curve`, quantus' ``SensitivityN``: per number of
  removed features, the correlation *across samples*.

All perturbation steps of a chunk go through the network in one forward.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._validation import check_int, check_real
from ._checks import to_numpy
from ._explaining import seed_of
from ._perturb import feature_ranks, masked_response, resolve_base
from ._similarity import similarity as similarity_function
from .faithfulness import _block_ids, _setup, faithfulness_correlation

__all__ = ["irof", "selectivity", "selectivity_curve", "sensitivity_n", "sensitivity_n_curve"]


def _slic_segments(X):
    """quantus' superpixels: ``skimage.segmentation.slic(img, start_label=0)`` per image."""
    from .._optional import require

    slic = require("skimage.segmentation", owner="irof's superpixels (segments=None)",
                   package="scikit-image", extra="image").slic
    imgs = X.detach().cpu().double().numpy()
    return np.stack([slic(np.moveaxis(img, 0, -1), start_label=0) for img in imgs])


def irof(estimator, X, relevance, *, y=None, target=None, segments=None, baseline="mean",
         response="proba", internal_batch_size=None):
    """Iterative removal of features (IROF), per sample.

    Segments are ranked by their mean relevance (over channels and pixels)
    and replaced by the baseline one after another, most relevant first;
    with ``p_j`` the response after ``j`` segments over the original one,
    the score is ``n_segments - trapz([p_1, ..., p_n])`` (unit steps, as
    quantus; samples with fewer segments than the batch's largest count
    are padded with zeros, as quantus does). Equals ``quantus.IROF`` for
    a numeric baseline (its ``"mean"`` is the mean of the whole batch as
    perturbed so far; here it is each sample's own mean).

    Parameters
    ----------
    estimator, X, relevance, y, target, internal_batch_size
        As :func:`~sklearn_relevance.metrics.faithfulness_correlation`; X
        holds images (n, channels, H, W).
    segments : array-like of int, shape (n_samples, H, W), optional
        Superpixel labels 0..k-1 per image; ``None`` computes quantus'
        SLIC superpixels (scikit-image, one image at a time on the CPU:
        the one step that is not batched).
    baseline : {"mean", "black", "white"}, float or array, default="mean"
    response : {"proba", "logit"}, default="proba"

    Returns
    -------
    ndarray of shape (n_samples,)
        Higher is better.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import irof
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    >>> X = torch.randn(2, 1, 4, 4)
    >>> segments = torch.arange(16).reshape(4, 4).div(4, rounding_mode="floor").expand(2, 4, 4)
    >>> irof(net, X, torch.randn(2, 1, 4, 4), segments=segments).shape
    (2,)
    """
    owner = "irof"
    model, a = _setup(owner, estimator, X, relevance, y, target, response,
                      internal_batch_size)
    X, n = model.X, model.n
    if X.ndim != 4:
        raise ValueError(f"{owner} applies to images (n, channels, H, W). Got X of shape "
                         f"{tuple(X.shape)} instead.")
    seg = _slic_segments(X) if segments is None else np.asarray(
        segments.cpu() if torch.is_tensor(segments) else segments)
    if seg.shape != (n, *X.shape[2:]) or not np.issubdtype(seg.dtype, np.integer):
        raise ValueError(f"The 'segments' parameter of {owner} must hold int labels of shape "
                         f"{(n, *X.shape[2:])}. Got {seg.dtype} of shape {seg.shape} instead.")
    seg = torch.as_tensor(seg, device=X.device).long().reshape(n, -1)
    k_max = int(seg.max()) + 1
    counts = torch.zeros(n, k_max, dtype=torch.float64, device=X.device)
    counts.scatter_add_(1, seg, torch.ones_like(seg, dtype=torch.float64))
    C = X.shape[1]
    asum = torch.zeros_like(counts).scatter_add_(
        1, seg, a.double().reshape(n, C, -1).sum(1))
    present = counts > 0
    mean = torch.where(present, asum / (counts * C).clamp_min(1), torch.full_like(asum, -np.inf))
    rank = feature_ranks(mean, descending=True)  # absent labels rank last
    n_seg = present.sum(1)
    pos = rank.gather(1, seg)  # (n, HW): the step at which each pixel goes
    pos = pos[:, None].expand(n, C, -1).reshape(n, -1)
    base = resolve_base(baseline, X, owner)
    L = int(n_seg.max())
    preds = torch.empty(L, n, dtype=torch.float64, device=X.device)
    with model.access():
        t = model.resolve_target()
        f0 = model.response(X, t, response).double()
        for sl in model.step_chunks(L, "forward_pass_input"):
            j = torch.arange(sl.start, sl.stop, device=X.device)
            preds[sl] = masked_response(model, X, base, pos[None] <= j[:, None, None], t,
                                        response) / f0
    valid = torch.arange(L, device=X.device)[:, None] < n_seg[None]
    curve = torch.where(valid, preds, torch.zeros_like(preds)).T.cpu().numpy()
    return n_seg.cpu().numpy().astype(np.float64) - np.trapezoid(curve, dx=1, axis=1)


def selectivity_curve(estimator, X, relevance, *, y=None, target=None, patch_size=8,
                      baseline="black", response="proba", internal_batch_size=None):
    """Selectivity curves (Montavon et al. 2018): responses as patches go.

    Square (cubic) patches of ``patch_size`` of the spatial axes (edge
    patches smaller where a side is not a multiple) are ranked by summed
    relevance and set to the baseline cumulatively, most relevant first;
    the curve holds the response after each patch. Equals the per-sample
    curves of ``quantus.Selectivity`` when the sides are multiples of
    ``patch_size``.

    Parameters
    ----------
    estimator, X, relevance, y, target, baseline, internal_batch_size
        As :func:`~sklearn_relevance.metrics.faithfulness_correlation`.
    patch_size : int, default=8
    response : {"proba", "logit"}, default="proba"

    Returns
    -------
    ndarray of shape (n_samples, n_patches)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import selectivity_curve
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    >>> selectivity_curve(net, torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4),
    ...                   patch_size=2).shape
    (2, 4)
    """
    owner = "selectivity"
    p = check_int(patch_size, "patch_size", owner)
    model, a = _setup(owner, estimator, X, relevance, y, target, response,
                      internal_batch_size)
    X, n = model.X, model.n
    if X.ndim < 3:
        raise ValueError(f"{owner} needs inputs with spatial axes (n, channels, ...). Got X "
                         f"of shape {tuple(X.shape)} instead.")
    ids, n_blocks = _block_ids(X.shape[2:], p, X.device)
    ids = ids.reshape(1, 1, -1).expand(n, X.shape[1], -1).reshape(n, -1)
    sums = torch.zeros(n, n_blocks, dtype=torch.float64, device=X.device)
    sums.scatter_add_(1, ids, a.double())
    pos = feature_ranks(sums, descending=True).gather(1, ids)
    base = resolve_base(baseline, X, owner)
    out = torch.empty(n_blocks, n, dtype=torch.float64, device=X.device)
    with model.access():
        t = model.resolve_target()
        for sl in model.step_chunks(n_blocks, "forward_pass_input"):
            j = torch.arange(sl.start, sl.stop, device=X.device)
            out[sl] = masked_response(model, X, base, pos[None] <= j[:, None, None], t,
                                      response)
    return to_numpy(out.T)


def selectivity(estimator, X, relevance, **options):
    """Selectivity per sample: the area (unit steps, trapezoid rule) under
    :func:`selectivity_curve`. Lower is better: the response should fall
    as soon as the most relevant patches go.

    Parameters
    ----------
    estimator, X, relevance
        As :func:`selectivity_curve`.
    **options
        Keyword arguments of :func:`selectivity_curve`.

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import selectivity
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    >>> selectivity(net, torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4), patch_size=2).shape
    (2,)
    """
    return np.trapezoid(selectivity_curve(estimator, X, relevance, **options), dx=1, axis=1)


def sensitivity_n(estimator, X, relevance, *, y=None, target=None, n_values=None, n_runs=20,
                  baseline="black", response="logit", similarity="pearson",
                  random_state=None, internal_batch_size=None):
    """Sensitivity-n (Ancona et al. 2018), per sample.

    For each ``n`` of ``n_values`` (default: 1%, 5%, 10%, 25% and 50% of
    the features), ``n_runs`` random subsets of ``n`` features are set to
    the baseline; the score is the correlation (over subsets) between their
    relevance and the output drop, averaged over the ``n``. At one ``n``
    this is :func:`~sklearn_relevance.metrics.faithfulness_correlation` with
    ``subset_size=n``. Higher is better; a random map scores about 0.

    Parameters
    ----------
    estimator, X, relevance, y, target, baseline, response, similarity, random_state, internal_batch_size
        As :func:`~sklearn_relevance.metrics.faithfulness_correlation`.
    n_values : sequence of int, optional
    n_runs : int, default=20

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import sensitivity_n
    >>> net = torch.nn.Linear(8, 1)
    >>> X = torch.randn(3, 8)
    >>> sensitivity_n(net, X, X * net.weight.detach(), n_values=[2, 4], baseline=0.0,
    ...               random_state=0).round(6)
    array([1., 1., 1.])
    """
    owner = "sensitivity_n"
    F = int(np.prod(np.shape(X)[1:]))
    if n_values is None:
        n_values = sorted({max(1, int(F * f)) for f in (0.01, 0.05, 0.1, 0.25, 0.5)})
    if isinstance(n_values, (int, np.integer)) or not len(n_values):
        raise ValueError(f"The 'n_values' parameter of {owner} must be a non-empty list of "
                         f"ints. Got {n_values!r} instead.")
    seed = seed_of(random_state)
    scores = [faithfulness_correlation(
        estimator, X, relevance, y=y, target=target, n_runs=n_runs,
        subset_size=check_int(v, "n_values", owner), baseline=baseline, response=response,
        similarity=similarity, random_state=seed + i, internal_batch_size=internal_batch_size)
        for i, v in enumerate(n_values)]
    return np.mean(scores, 0)


def sensitivity_n_curve(estimator, X, relevance, *, y=None, target=None,
                        features_in_step=1, n_max_percentage=0.8, baseline="black",
                        response="proba", similarity="pearson", internal_batch_size=None):
    """quantus' ``SensitivityN``: one correlation per number of removed features.

    Features are removed cumulatively, most relevant first, in groups of
    ``features_in_step``; at step ``k`` the relevance of the k-th group and
    the output drop are correlated *across the samples*. Equals
    ``quantus.SensitivityN``; a dataset-level curve, not a per-sample score.

    Parameters
    ----------
    estimator, X, relevance, y, target, baseline, similarity, internal_batch_size
        As :func:`~sklearn_relevance.metrics.faithfulness_correlation`.
    features_in_step : int, default=1
    n_max_percentage : float, default=0.8
        Steps kept: ``int(n_max_percentage * n_spatial // features_in_step)``.
    response : {"proba", "logit"}, default="proba"

    Returns
    -------
    ndarray of shape (n_steps,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import sensitivity_n_curve
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    >>> sensitivity_n_curve(net, torch.randn(5, 1, 4, 4), torch.randn(5, 1, 4, 4),
    ...                     features_in_step=4).shape
    (3,)
    """
    owner = "sensitivity_n_curve"
    fis = check_int(features_in_step, "features_in_step", owner)
    check_real(n_max_percentage, "n_max_percentage", owner, low=0, high=1, closed="right")
    model, a = _setup(owner, estimator, X, relevance, y, target, response,
                      internal_batch_size)
    X, n, F = model.X, model.n, a.shape[1]
    sim = similarity_function(similarity, owner)
    steps = int(n_max_percentage * int(np.prod(X.shape[2:])) // fis)
    if steps < 1:
        raise ValueError(f"{owner} keeps no step: raise 'n_max_percentage' or lower "
                         f"'features_in_step'.")
    group = feature_ranks(a, descending=True) // fis
    base = resolve_base(baseline, X, owner)
    deltas = torch.empty(steps, n, dtype=torch.float64, device=X.device)
    sums = torch.zeros(n, math.ceil(F / fis), dtype=torch.float64,
                       device=X.device).scatter_add_(1, group, a.double())[:, :steps]
    with model.access():
        t = model.resolve_target()
        f0 = model.response(X, t, response).double()
        for sl in model.step_chunks(steps, "forward_pass_input"):
            j = torch.arange(sl.start, sl.stop, device=X.device)
            deltas[sl] = f0 - masked_response(model, X, base, group[None] <= j[:, None, None],
                                              t, response)
    return to_numpy(sim(deltas, sums.T))
