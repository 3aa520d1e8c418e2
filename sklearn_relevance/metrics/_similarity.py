"""Row-wise similarity of two batches of maps, as quantus 0.6 defines them.

Every function takes two tensors ``a`` and ``b`` of shape (n, F) and
returns n values, computed in float64 on their device. They are the
``similarity_func`` choices of quantus' randomisation and robustness
metrics, batched: Spearman rank correlation (average ranks for ties, as
``scipy.stats.spearmanr``), Pearson correlation, SSIM of the flattened maps
(``skimage.metrics.structural_similarity`` with a 7-wide window, as quantus
calls it on flattened maps), cosine similarity, and the distances.
"""

from __future__ import annotations

import numpy as np
import torch

from ._sorting import sorted_with_order

__all__ = ["SIMILARITIES", "similarity", "similarity_to", "average_ranks"]


def _tie_average_numpy(new):
    """Average 1-based ranks of sorted rows whose groups of equal values open
    where ``new`` (bool (n, F), each row's first entry True) is True: each
    group's mean position, repeated over the group (CPU)."""
    n, F = new.shape
    starts = np.flatnonzero(new.numpy())  # over the flattened rows
    sizes = np.diff(starts, append=n * F)
    avg = np.repeat(starts + (sizes + 1) / 2, sizes).reshape(n, F)
    avg -= (np.arange(n) * F)[:, None]  # flat position -> rank within the row
    return torch.from_numpy(avg)


def _tie_average_torch(new):
    """:func:`_tie_average_numpy` in torch ops, on the tensor's device."""
    n, F = new.shape
    flat = new.reshape(-1)
    starts = flat.nonzero().view(-1)
    ends = torch.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = n * F
    row_start = torch.div(starts, F, rounding_mode="floor").mul_(F)
    mean = (starts + ends - 1).double().div_(2).sub_(row_start).add_(1)
    return mean.index_select(0, flat.cumsum(0).sub_(1)).view(n, F)


def average_ranks(a):
    """Ranks 1..F along axis 1, ties sharing their average rank (float64)."""
    n, F = a.shape
    s, order = sorted_with_order(a.detach())
    # ties share one average rank, so any sort order will do
    new = torch.ones(n, F, dtype=torch.bool, device=a.device)
    torch.ne(s[:, 1:], s[:, :-1], out=new[:, 1:])
    if bool(new.all()):
        avg = torch.arange(1, F + 1, dtype=torch.float64, device=a.device).expand(n, F)
    elif a.device.type == "cpu":
        avg = _tie_average_numpy(new)
    else:
        avg = _tie_average_torch(new)
    return torch.empty(n, F, dtype=torch.float64, device=a.device).scatter_(1, order, avg)


def _centred(a):
    a = a.double()
    return a - a.mean(1, keepdim=True)


def _pearson_to(a):
    """``b -> pearson(a, b)``, ``a`` centred once."""
    ca = _centred(a)
    na = ca.norm(dim=1)

    def to(b):
        cb = _centred(b)
        return (ca * cb).sum(1) / (na * cb.norm(dim=1))  # NaN for a constant row, as scipy
    return to


def _spearman_to(a):
    """``b -> spearman(a, b)``, ``a`` ranked once; ranks from the maps' own
    dtype (float32 -> float64 is exact and monotone)."""
    to = _pearson_to(average_ranks(a))
    return lambda b: to(average_ranks(b))


def _abs_to(prepare, a):
    """``b -> prepare(|a|)(|b|)``."""
    to = prepare(a.abs())
    return lambda b: to(b.abs())


def pearson(a, b):
    return _pearson_to(a)(b)


def spearman(a, b):
    return _spearman_to(a)(b)


def _window_sums(x, w):
    """Sums of ``w`` consecutive values along the last axis (length F - w + 1),
    from sums of 1, 2, 4, ... values: about log2(w) + popcount(w) contiguous
    additions instead of w strided reads (a fixed-order float64 sum of w
    terms, as a direct sum)."""
    F = x.shape[-1]
    length = F - w + 1
    out, offset, level, size = None, 0, x, 1
    while w:
        if w & 1:
            piece = level[..., offset:offset + length]
            out = piece.clone() if out is None else out.add_(piece)
            offset += size
        w >>= 1
        if w:
            level = level[..., :-size] + level[..., size:]
            size *= 2
    return out


#: SSIM works on row chunks of about this many values per map: its four
#: window-mean arrays then stay in the CPU's caches (2-3x faster on 64 x 4096
#: and 8 x 32,768 maps than one pass over all rows, same values)
_SSIM_CHUNK = 2 ** 15


def _ssim_rows(a, b, c1, c2, w):
    """skimage's SSIM terms from the window sums ``s*`` of a, b, a^2 + b^2 and
    a b (the variances enter only as vx + vy), each fused into few passes:
    ``(2 ux uy + c1)(2 cov + c2) / ((ux^2 + uy^2 + c1)(vx + vy + c2))`` with
    ``u = s / w`` and the sample (co)variances' factor ``w / (w - 1)``."""
    sx, sy, ssq, sxy = _window_sums(torch.stack([a, b, a * a + b * b, a * b]), w).unbind(0)
    norm = w / (w - 1)
    sums_sq = (sx * sx).addcmul_(sy, sy)  # w^2 (ux^2 + uy^2)
    num = torch.addcmul(c1, sx, sy, value=2 / w ** 2).mul_(
        torch.addcmul(sxy, sx, sy, value=-1 / w).mul_(2 * norm / w).add_(c2))
    den = torch.add(c1, sums_sq, alpha=1 / w ** 2).mul_(
        torch.add(ssq, sums_sq, alpha=-1 / w).mul_(norm / w).add_(c2))
    return num.div_(den).mean(1)


def ssim(a, b, win_size=7):
    """SSIM of flattened maps (skimage's definition, sample covariance)."""
    a, b = a.double(), b.double()
    n, F = a.shape
    if F < win_size:
        raise ValueError(f"SSIM needs maps of at least {win_size} features. Got {F}.")
    rng = (torch.maximum(a.amax(1, keepdim=True), b.amax(1, keepdim=True))
           - torch.minimum(a.amin(1, keepdim=True), b.amin(1, keepdim=True)))
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    rows = max(1, _SSIM_CHUNK // F)
    return torch.cat([_ssim_rows(a[i:i + rows], b[i:i + rows], c1[i:i + rows],
                                 c2[i:i + rows], win_size) for i in range(0, n, rows)])


def cosine(a, b):
    """Cosine similarity (1 - quantus' ``cosine`` distance)."""
    a, b = a.double(), b.double()
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def abs_spearman(a, b):
    return spearman(a.abs(), b.abs())


#: similarities whose work on the fixed map can be done once (see similarity_to)
_PREPARED = {
    "spearman": _spearman_to,
    "abs_spearman": lambda a: _abs_to(_spearman_to, a),
    "pearson": _pearson_to,
    "abs_pearson": lambda a: _abs_to(_pearson_to, a),
}


def abs_pearson(a, b):
    return pearson(a.abs(), b.abs())


def euclidean(a, b):
    return (a.double() - b.double()).norm(dim=1)


def manhattan(a, b):
    return (a.double() - b.double()).abs().sum(1)


def chebyshev(a, b):
    return (a.double() - b.double()).abs().amax(1)


def abs_difference(a, b):
    return (a.double() - b.double()).abs().mean(1)


def squared_difference(a, b):
    return ((a.double() - b.double()) ** 2).sum(1)


#: ``{name: (function, is_similarity)}``: similarities are higher for
#: similar maps, distances lower. Names follow quantus' functions.
SIMILARITIES = {
    "spearman": (spearman, True),
    "pearson": (pearson, True),
    "ssim": (ssim, True),
    "cosine": (cosine, True),
    "abs_spearman": (abs_spearman, True),
    "abs_pearson": (abs_pearson, True),
    "euclidean": (euclidean, False),
    "manhattan": (manhattan, False),
    "chebyshev": (chebyshev, False),
    "abs_difference": (abs_difference, False),
    "squared_difference": (squared_difference, False),
}


def similarity_to(name, a, owner):
    """``b -> similarity(name)(a, b)`` for one fixed ``a`` (the original maps
    of a randomisation test, compared with many), its ranks and centring
    computed once; the same values as :func:`similarity`."""
    function = similarity(name, owner)
    if isinstance(name, str) and name in _PREPARED:
        return _PREPARED[name](a)
    return lambda b: function(a, b)


def similarity(name, owner):
    """The function of ``SIMILARITIES[name]`` (or a callable ``f(a, b) -> (n,)``)."""
    if callable(name):
        return lambda a, b: torch.as_tensor(name(a, b), device=a.device).double().reshape(-1)
    if not isinstance(name, str) or name not in SIMILARITIES:
        raise ValueError(
            f"The 'similarity' parameter of {owner} must be a callable or a str among "
            f"{sorted(SIMILARITIES)}. Got {name!r} instead.")
    return SIMILARITIES[name][0]
