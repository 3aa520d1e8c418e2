"""Agreement between importances: rank-biased overlap and RMSE.

Used where a ground truth of feature (or modality) importances exists, as in
the multimodal validation platform: compare the ranking an attribution
method produces with the true ranking (:func:`rank_biased_overlap`), or the
importance values themselves (:func:`importance_rmse`).
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_int
from .._validation import as_batch, check_choice
from ._checks import check_interval, nan_where, to_numpy
from ._sorting import stable_order

__all__ = ["importance_ranking", "rank_biased_overlap", "importance_rmse"]


def _rows(value, name):
    """2D tensor of a 1D or 2D batch, and whether the input was 1D."""
    single = np.ndim(value) == 1 if not torch.is_tensor(value) else value.ndim == 1
    t = as_batch(value, name, min_ndim=1)
    if single:
        t = t[None]
    if t.ndim != 2:
        raise ValueError(
            f"The '{name}' parameter must be 1D (one sample) or 2D (n_samples, "
            f"n_items). Got shape {tuple(t.shape)} instead."
        )
    return t, single


def importance_ranking(scores, *, absolute=False, top_k=None):
    """Turn importance scores into rankings (item ids, most important first).

    Parameters
    ----------
    scores : array-like or Tensor of shape (n_features,) or (n_samples, ...)
        Importance scores; a batch is flattened per sample.
    absolute : bool, default=False
        Rank by ``|scores|``.
    top_k : int or None, default=None
        Keep only the ``top_k`` first items.

    Returns
    -------
    ndarray of int64, shape (n_items,) or (n_samples, n_items)
        Feature indices in decreasing order of importance; ties keep the
        order of the features (a stable sort).

    Examples
    --------
    >>> from sklearn_relevance.metrics import importance_ranking
    >>> importance_ranking([0.1, 0.7, -0.9, 0.3])
    array([1, 3, 0, 2])
    >>> importance_ranking([0.1, 0.7, -0.9, 0.3], absolute=True, top_k=2)
    array([2, 1])
    """
    single = (scores.ndim if torch.is_tensor(scores) else np.ndim(scores)) == 1
    t = as_batch(scores, "scores", min_ndim=1)
    t = t.reshape(1, -1) if single else t.reshape(t.shape[0], -1)
    if absolute:
        t = t.abs()
    order = stable_order(t, descending=True)
    if top_k is not None:
        order = order[:, : check_int(top_k, "top_k", "importance_ranking")]
    out = order.cpu().numpy()
    return out[0] if single else out


def rank_biased_overlap(a, b, *, p=0.9, extrapolated=True):
    r"""Rank-biased overlap of two rankings (Webber, Moffat and Zobel 2010).

    With :math:`X_d = |a_{1:d} \cap b_{1:d}|` the overlap of the first
    :math:`d` items and :math:`A_d = X_d / d` the agreement at depth
    :math:`d`, for rankings of length :math:`k`:

    .. math::

        \mathrm{RBO}@k = (1 - p) \sum_{d=1}^{k} p^{d-1} A_d, \qquad
        \mathrm{RBO}_{\mathrm{ext}} = \mathrm{RBO}@k + A_k\, p^k

    (the paper's equations 11 and 32 for lists of equal length). ``p`` sets
    how top-weighted the measure is: the first :math:`d` ranks carry a
    weight of :math:`1 - p^{d}`. Identical rankings score 1 when
    extrapolated. Unlike rank correlations, RBO handles top-k lists that
    share few items.

    Parameters
    ----------
    a, b : array-like of int, shape (k,) or (n_samples, k)
        Rankings: item ids, most important first, no repeats within a
        ranking (see :func:`importance_ranking`). Both of the same shape.
    p : float in (0, 1), default=0.9
        Persistence.
    extrapolated : bool, default=True
        Return the extrapolated RBO (a point estimate of the infinite
        ranking's RBO) rather than the truncated lower bound RBO@k.

    Returns
    -------
    float or ndarray of shape (n_samples,)
        A float for 1D rankings, one value per row otherwise.

    Examples
    --------
    >>> from sklearn_relevance.metrics import rank_biased_overlap
    >>> rank_biased_overlap([0, 1, 2, 3], [0, 1, 2, 3])
    1.0
    >>> round(rank_biased_overlap([0, 1, 2, 3], [1, 0, 2, 3], p=0.5), 4)
    0.5
    """
    p = check_interval(p, "p", "rank_biased_overlap", 0, 1)
    ta, single = _rows(a, "a")
    tb, _ = _rows(b, "b")
    if ta.shape != tb.shape:
        raise ValueError(
            "The rankings 'a' and 'b' must have the same shape. Got "
            f"{tuple(ta.shape)} and {tuple(tb.shape)} instead."
        )
    if bool((ta != ta.round()).any() | (tb != tb.round()).any()):
        raise ValueError(
            "Rankings must hold integer item ids (most important first); use "
            "importance_ranking(scores) to rank importance scores."
        )
    ta, tb = ta.to(torch.int64), tb.to(torch.int64, ).to(ta.device)
    n, k = ta.shape
    b_sorted, b_idx = torch.sort(tb, dim=1)
    a_sorted = torch.sort(ta, dim=1).values
    for name, s in (("a", a_sorted), ("b", b_sorted)):
        if k > 1 and bool((s[:, 1:] == s[:, :-1]).any()):
            raise ValueError(
                f"The ranking '{name}' repeats an item id; a ranking lists each item once."
            )
    loc = torch.searchsorted(b_sorted, ta).clamp_max(k - 1)
    found = b_sorted.gather(1, loc) == ta
    pos_b = b_idx.gather(1, loc)
    pos_a = torch.arange(k, device=ta.device).expand(n, k)
    depth = torch.maximum(pos_a, pos_b)
    counts = torch.zeros(n, k, dtype=torch.float64, device=ta.device)
    counts.scatter_add_(1, torch.where(found, depth, 0), found.to(torch.float64))
    d = torch.arange(1, k + 1, dtype=torch.float64, device=ta.device)
    agreement = counts.cumsum(1) / d
    rbo = (1 - p) * (agreement * p ** (d - 1)).sum(1)
    if extrapolated:
        rbo = rbo + agreement[:, -1] * p**k
    out = to_numpy(rbo)
    return float(out[0]) if single else out


def importance_rmse(importances, reference, *, normalize=None):
    r"""Root-mean-square error between importances and ground truth, per sample.

    :math:`\sqrt{\frac{1}{F}\sum_i (\hat w_i - w_i)^2}` after an optional
    per-sample normalisation of both vectors.

    Parameters
    ----------
    importances : array-like or Tensor of shape (n_samples, ...)
        Estimated importances (e.g. relevance aggregated per feature or
        modality).
    reference : array-like or Tensor of the same shape
        Ground-truth importances.
    normalize : {None, "l1", "max"}, default=None
        Divide each sample by its sum of absolute values ("l1") or by its
        largest absolute value ("max") first, so that only relative
        importances are compared.

    Returns
    -------
    ndarray of shape (n_samples,)
        NaN (with a warning) where normalisation meets an all-zero vector.

    Examples
    --------
    >>> from sklearn_relevance.metrics import importance_rmse
    >>> importance_rmse([[1.0, 3.0]], [[1.0, 1.0]])
    array([1.41421356])
    >>> importance_rmse([[2.0, 6.0]], [[1.0, 3.0]], normalize="l1")
    array([0.])
    """
    if normalize is not None:
        check_choice(normalize, "normalize", "importance_rmse", {"l1", "max"})
    a = as_batch(importances, "importances", dtype=torch.float64)
    b = as_batch(reference, "reference", device=a.device, dtype=torch.float64)
    if a.shape != b.shape:
        raise ValueError(
            "'importances' and 'reference' must have the same shape. Got "
            f"{tuple(a.shape)} and {tuple(b.shape)} instead."
        )
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    zero = np.zeros(a.shape[0], dtype=bool)
    if normalize is not None:
        scales = []
        for t in (a, b):
            s = t.abs().sum(1) if normalize == "l1" else t.abs().amax(1)
            zero |= (s == 0).cpu().numpy()
            scales.append(torch.where(s == 0, 1.0, s)[:, None])
        a, b = a / scales[0], b / scales[1]
    rmse = to_numpy(((a - b) ** 2).mean(1).sqrt())
    return nan_where(rmse, zero, "importance_rmse", "an all-zero vector cannot be normalised")
