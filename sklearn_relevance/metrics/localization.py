"""Localisation metrics: how well relevance falls on an annotated region.

All functions take a batch of relevance maps and a batch of binary masks of
the same per-sample shape (singleton axes aside, so (n, 1, H, W) relevance
pairs with (n, H, W) masks), compute on the relevance's device in one
vectorised pass, and return one value per sample as a numpy array.

Samples whose mask is empty or covers every feature cannot be scored: their
value is NaN and a ``UserWarning`` says how many there were.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import as_batch
from ._checks import (
    as_mask,
    check_interval,
    check_mask_coverage,
    constant_rows,
    flatten_pair,
    nan_where,
    sort_rows,
    to_numpy,
)

__all__ = [
    "mask_roc_auc",
    "mask_dice",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "pointing_game",
]


def _prepare(relevance, masks):
    a = as_batch(relevance, "relevance")
    m = as_mask(masks, "masks", device=a.device)
    a, m = flatten_pair(a, m)
    empty, full = check_mask_coverage(m)
    return a, m, empty, full


def _finish(values, empty, full, metric, constant=None):
    values = nan_where(values, empty, metric, "empty mask")
    values = nan_where(values, full, metric, "mask covers every feature")
    if constant is not None:
        values = nan_where(values, constant, metric, "constant relevance: no ordering")
    return np.asarray(values, dtype=np.float64)


def _tie_starts(sorted_values):
    """Index of the first element of each element's tie group, in sorted rows."""
    n, F = sorted_values.shape
    idx = torch.arange(F, device=sorted_values.device).expand(n, F)
    if not bool((sorted_values[:, 1:] == sorted_values[:, :-1]).any()):
        return idx
    new = torch.ones_like(sorted_values, dtype=torch.bool)
    new[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    return torch.where(new, idx, 0).cummax(1).values


def mask_roc_auc(relevance, masks):
    r"""Pixel-level ROC-AUC of relevance against a binary mask, per sample.

    The area under the ROC curve that ranks features by relevance and takes
    the mask as the positive class, computed as the Mann-Whitney statistic,
    so ties count one half exactly as in :func:`sklearn.metrics.roc_auc_score`:

    .. math:: \mathrm{AUC} = \frac{1}{P\,N} \sum_{i \in M} \Big(
              |\{j \notin M: R_j < R_i\}| + \tfrac12 |\{j \notin M: R_j = R_i\}|\Big)

    with :math:`P` the mask size and :math:`N` the number of features outside
    it (equivalently, the rank-sum formula on tie-averaged ranks). All samples
    are ranked in one batched sort on the relevance's device, then counted
    with prefix sums.

    Parameters
    ----------
    relevance : array-like or Tensor of shape (n_samples, ...)
        Relevance maps.
    masks : array-like or Tensor of shape (n_samples, ...)
        Binary masks (bool or 0/1) of the relevance's per-sample shape.

    Returns
    -------
    ndarray of shape (n_samples,)
        ROC-AUC in [0, 1]; 0.5 for a constant map (all ties). NaN, with a
        warning, where the mask is empty or full (the AUC is undefined).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.metrics import mask_roc_auc
    >>> relevance = np.array([[0.9, 0.1, 0.8, 0.2]])
    >>> masks = np.array([[1, 0, 1, 0]])
    >>> mask_roc_auc(relevance, masks)
    array([1.])
    """
    a, m, empty, full = _prepare(relevance, masks)
    v, order = sort_rows(a)
    pos = m.gather(1, order)
    neg = ~pos
    start = _tie_starts(v)
    # prefix counts in sorted order: negatives / positives strictly before i
    cneg = neg.cumsum(1) - neg.long()
    cpos = torch.arange(a.shape[1], device=a.device) - cneg
    below = cneg.gather(1, start)  # negatives with a strictly smaller value
    # tied (positive, negative) pairs: each pair counted once, at its later element
    tied = torch.where(pos, cneg - below, cpos - cpos.gather(1, start)).sum(1)
    u2 = 2 * torch.where(pos, below, 0).sum(1) + tied  # twice Mann-Whitney's U
    P = m.sum(1).to(torch.float64)
    N = m.shape[1] - P
    auc = u2.to(torch.float64) / (2 * P * N)
    return _finish(to_numpy(auc), empty, full, "mask_roc_auc")


def _descending_positions(a):
    """Position of each feature in the descending order of its row."""
    order = sort_rows(-a)[1]
    ar = torch.arange(a.shape[1], device=a.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, ar)


def relevance_rank_accuracy(relevance, masks):
    r"""Fraction of the top-:math:`K` relevant features inside the mask.

    Arras et al. (2022), as ``quantus.RelevanceRankAccuracy``: with
    :math:`K` the mask size, the share of the :math:`K` highest-relevance
    features that lie in the mask, :math:`|\mathrm{top}_K(R) \cap M| / K`.
    Ties at the cut are broken arbitrarily but deterministically (as in
    quantus).

    Parameters
    ----------
    relevance : array-like or Tensor of shape (n_samples, ...)
    masks : array-like or Tensor of shape (n_samples, ...)
        Binary masks of the relevance's per-sample shape.

    Returns
    -------
    ndarray of shape (n_samples,)
        Values in [0, 1]; NaN (with a warning) for empty or full masks and
        for constant relevance, whose top-:math:`K` is arbitrary.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.metrics import relevance_rank_accuracy
    >>> relevance_rank_accuracy(np.array([[0.9, 0.1, 0.8, 0.2]]),
    ...                         np.array([[1, 1, 0, 0]]))
    array([0.5])
    """
    a, m, empty, full = _prepare(relevance, masks)
    pos = _descending_positions(a)
    K = m.sum(1, keepdim=True)
    hits = (m & (pos < K)).sum(1).to(torch.float64)
    acc = hits / K[:, 0].clamp_min(1).to(torch.float64)
    return _finish(to_numpy(acc), empty, full, "relevance_rank_accuracy", constant_rows(a))


def relevance_mass_accuracy(relevance, masks):
    r"""Share of the total relevance that falls inside the mask.

    Arras et al. (2022), as ``quantus.RelevanceMassAccuracy``:
    :math:`\sum_{i \in M} R_i / \sum_i R_i`. Signed relevance is summed as
    is; pass ``abs(relevance)`` (or positive-only maps such as LRP's
    alpha1-beta0) for a share in [0, 1].

    Parameters
    ----------
    relevance : array-like or Tensor of shape (n_samples, ...)
    masks : array-like or Tensor of shape (n_samples, ...)
        Binary masks of the relevance's per-sample shape.

    Returns
    -------
    ndarray of shape (n_samples,)
        NaN (with a warning) for empty or full masks and where the total
        relevance is zero.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.metrics import relevance_mass_accuracy
    >>> relevance_mass_accuracy(np.array([[3.0, 1.0, 0.0, 0.0]]),
    ...                         np.array([[1, 0, 0, 1]]))
    array([0.75])
    """
    a, m, empty, full = _prepare(relevance, masks)
    a = a.to(torch.float64)
    total = a.sum(1)
    within = (a * m).sum(1)
    zero = (total == 0).cpu().numpy()
    acc = to_numpy(within / torch.where(total == 0, 1.0, total))
    acc = nan_where(acc, zero, "relevance_mass_accuracy", "total relevance is zero")
    return _finish(acc, empty, full, "relevance_mass_accuracy")


def pointing_game(relevance, masks):
    """Whether the maximum of the relevance lies inside the mask (Zhang et al. 2018).

    A hit is 1.0 when a feature of maximal relevance lies in the mask (any of
    them, when the maximum is tied), 0.0 otherwise, as
    ``quantus.PointingGame``.

    Parameters
    ----------
    relevance : array-like or Tensor of shape (n_samples, ...)
    masks : array-like or Tensor of shape (n_samples, ...)
        Binary masks of the relevance's per-sample shape.

    Returns
    -------
    ndarray of shape (n_samples,)
        1.0 (hit) or 0.0 (miss); NaN (with a warning) for empty or full masks
        and for constant relevance, which points everywhere.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.metrics import pointing_game
    >>> pointing_game(np.array([[0.1, 0.9, 0.3], [0.9, 0.1, 0.3]]),
    ...               np.array([[0, 1, 0], [0, 1, 0]]))
    array([1., 0.])
    """
    a, m, empty, full = _prepare(relevance, masks)
    at_max = a == a.amax(1, keepdim=True)
    hit = (at_max & m).any(1).to(torch.float64)
    return _finish(to_numpy(hit), empty, full, "pointing_game", constant_rows(a))


def mask_dice(relevance, masks, *, fraction=None):
    r"""Dice overlap of the most relevant features with the mask.

    The top features :math:`S` are those whose relevance is at least the
    :math:`k`-th largest value, ties included, so region-constant maps (XRAI,
    Grad-CAM on coarse grids) select whole regions:
    :math:`\mathrm{Dice} = 2|S \cap M| / (|S| + |M|)`.

    Parameters
    ----------
    relevance : array-like or Tensor of shape (n_samples, ...)
    masks : array-like or Tensor of shape (n_samples, ...)
        Binary masks of the relevance's per-sample shape.
    fraction : float in (0, 1] or None, default=None
        Share of features selected, :math:`k = \lceil \mathrm{fraction}
        \cdot F \rceil`. ``None`` selects as many features as the mask holds
        (per sample), the usual choice when comparing with expert masks.

    Returns
    -------
    ndarray of shape (n_samples,)
        Dice in [0, 1]; NaN (with a warning) for empty or full masks and for
        constant relevance (which selects everything).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.metrics import mask_dice
    >>> mask_dice(np.array([[0.9, 0.8, 0.1, 0.0]]), np.array([[1, 0, 0, 0]]),
    ...           fraction=0.5)
    array([0.66666667])
    """
    if fraction is not None:
        fraction = check_interval(fraction, "fraction", "mask_dice", 0, 1, closed="right")
    a, m, empty, full = _prepare(relevance, masks)
    F = a.shape[1]
    if fraction is None:
        k = m.sum(1).clamp_min(1)
    else:
        k = torch.full((a.shape[0],), max(int(np.ceil(fraction * F)), 1), device=a.device)
    v = -sort_rows(-a)[0]  # descending
    cut = v.gather(1, (k - 1)[:, None])
    sel = a >= cut
    inter = (sel & m).sum(1).to(torch.float64)
    dice = 2 * inter / (sel.sum(1) + m.sum(1)).to(torch.float64)
    return _finish(to_numpy(dice), empty, full, "mask_dice", constant_rows(a))
