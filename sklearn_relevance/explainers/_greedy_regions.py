"""XRAI's greedy selection of regions, vectorised over a chunk of images.

See :func:`greedy_regions`; :class:`~sklearn_relevance.explainers.XRAI` calls it.
"""

from __future__ import annotations

import torch

from .._batching import MEMORY_BUDGETS, iter_slices

__all__ = ["greedy_regions"]

#: Bytes of float64 work arrays in the greedy selection (per chunk).
_WORK_BUDGET = MEMORY_BUDGETS["xrai_work"]


# --------------------------------------------------------------------------
# greedy region selection
# --------------------------------------------------------------------------
def _quantise(attr):
    """Integer-valued float64 copy of ``attr`` (n, P) whose sums over P are exact."""
    limit = float(2**52 // attr.shape[1])
    peak = attr.abs().amax(dim=1, keepdim=True)
    scale = torch.where(peak > 0, limit / peak, torch.ones_like(peak))
    return torch.round(attr * scale).clamp_(-limit, limit)


def greedy_regions(masks, attr, *, min_pixel_diff=50, area_threshold=1.0):
    """XRAI's greedy selection (PAIR's "full" algorithm) on a chunk of images.

    The PAIR package loops in Python over the remaining regions every round
    and recomputes each gain from a full boolean mask. Here the regions of
    all images are one membership tensor, and each region's uncovered
    attribution sum and pixel count are updated incrementally: when a round
    covers the pixels ``delta``, one gather and one ``index_add`` over
    ``|delta| x n_regions`` entries update every region of every image. Each
    pixel is covered once, so the whole selection costs about
    ``n_pixels x n_regions`` per image.

    Ties and determinism: like PAIR, the first region of largest gain wins.
    The sums run on the attribution quantised to integers of at most
    ``2**52 / n_pixels`` in magnitude, so every partial sum is an exact
    float64 integer: the result does not depend on the order of the
    additions (``index_add_`` is atomic, in no fixed order, on GPUs) and
    regions with the same uncovered pixels tie exactly (either choice then
    covers the same pixels). The quantisation step is
    ``max|attr| * n_pixels / 2**52`` (about ``1e-12`` of the peak for
    64 x 64 images); only regions whose gains differ by less can be ordered
    differently from PAIR. The values written to the map are plain float64
    means over each added region, as PAIR's.

    Parameters
    ----------
    masks : list of BoolTensor of shape (n_regions_i, H, W)
        Candidate regions of each image.
    attr : Tensor of shape (n, H, W)
        Per-pixel attribution of each image (channels already merged).
    min_pixel_diff : int, default=50
        Regions adding fewer new pixels are dropped for good.
    area_threshold : float, default=1.0
        Selection stops once the covered fraction of an image exceeds it.

    Returns
    -------
    values : float64 Tensor of shape (n, H, W)
        PAIR's ``attribution_mask``: the gain of the region that first
        covered each pixel; never covered pixels hold their mean attribution.
    ranks : LongTensor of shape (n, H, W)
        PAIR's flattened ``segments``: 1 for the region of largest gain, ...;
        the never covered pixels, if any, form the last rank.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.xrai import greedy_regions
    >>> attr = torch.tensor([[[0., 1.], [2., 3.]]])
    >>> masks = [torch.tensor([[[True, True], [False, False]],
    ...                        [[False, False], [True, True]]])]
    >>> values, ranks = greedy_regions(masks, attr, min_pixel_diff=1)
    >>> values
    tensor([[[0.5000, 0.5000],
             [2.5000, 2.5000]]], dtype=torch.float64)
    >>> ranks
    tensor([[[2, 2],
             [1, 1]]])
    """
    n, height, width = attr.shape
    n_pixels = height * width
    device = attr.device
    attr = attr.reshape(n, n_pixels).to(torch.float64)
    quant = _quantise(attr)
    counts = [int(m.shape[0]) for m in masks]
    # regions[i, r, p] / member[i, p, r]: pixel p of image i lies in region r
    # (padding regions are empty); one layout per gather direction
    regions = torch.zeros(n, max(counts + [1]), n_pixels, dtype=torch.bool, device=device)
    # uncovered attribution sum and pixel count of every region, exact
    totals = torch.zeros(*regions.shape[:2], 2, dtype=torch.float64, device=device)
    # float64 copies of at most `rows` regions (or pixels) at a time
    rows = max(_WORK_BUDGET // (8 * max(n_pixels, regions.shape[1])), 1)
    for i, m in enumerate(masks):
        regions[i, : counts[i]] = m.reshape(counts[i], n_pixels)
        weights = torch.stack([quant[i], torch.ones_like(quant[i])], 1)
        for part in iter_slices(counts[i], rows):
            totals[i, part] = regions[i, part].to(torch.float64) @ weights
    # float64 holds the (integer) sums and pixel counts exactly
    sums, sizes = totals[..., 0], totals[..., 1]
    member = torch.empty(n, n_pixels, regions.shape[1], dtype=torch.bool, device=device)
    for i in range(n):  # image by image: each transpose stays in cache (4x faster)
        member[i] = regions[i].t()
    alive = sizes > 0
    covered = torch.zeros(n, n_pixels, dtype=torch.bool, device=device)
    region_of = torch.zeros(n, n_pixels, dtype=torch.long, device=device)
    n_rounds = torch.zeros(n, dtype=torch.long, device=device)
    active = torch.ones(n, dtype=torch.bool, device=device)
    images = torch.arange(n, device=device)
    gains = []
    while True:
        # PAIR: `while area <= threshold`; drop regions adding too little;
        # stop when none remain
        active &= covered.sum(1).to(torch.float64) / n_pixels <= area_threshold
        alive &= sizes >= min_pixel_diff
        active &= alive.any(1)
        if not bool(active.any()):
            break
        density = torch.where(alive, sums / sizes.clamp(min=1), -torch.inf)
        best = density.argmax(1)  # the first maximum, as PAIR's strict `>`
        delta = regions[images, best] & ~covered & active[:, None]
        gains.append((delta * attr).sum(1) / delta.sum(1).clamp(min=1))
        region_of[delta] = len(gains) - 1
        covered |= delta
        n_rounds += active
        img, pix = torch.nonzero(delta, as_tuple=True)
        for part in iter_slices(img.shape[0], rows):
            held = member[img[part], pix[part]].to(torch.float64)  # (pixels, R)
            sizes.index_add_(0, img[part], held, alpha=-1)
            held *= quant[img[part], pix[part]].unsqueeze(1)
            sums.index_add_(0, img[part], held, alpha=-1)
    return _values_and_ranks(attr, covered, region_of, gains, n_rounds, (n, height, width))


def _values_and_ranks(attr, covered, region_of, gains, n_rounds, shape):
    """Per-pixel gains and ranks from the rounds of :func:`greedy_regions`."""
    n = attr.shape[0]
    device = attr.device
    rounds = len(gains)
    gain = torch.stack(gains, 1) if rounds else attr.new_zeros(n, 1)
    used = torch.arange(gain.shape[1], device=device) < n_rounds[:, None]
    # ranks by decreasing gain, the order of the rounds on ties (stable sort)
    order = torch.sort(torch.where(used, gain, -torch.inf), dim=1,
                       descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(1, gain.shape[1] + 1, device=device).expand(n, -1))
    rest = ~covered
    n_rest = rest.sum(1)
    rest_value = (attr * rest).sum(1) / n_rest.clamp(min=1)
    values = torch.where(rest, rest_value[:, None], gain.gather(1, region_of))
    ranks = torch.where(rest, n_rounds[:, None] + 1, rank.gather(1, region_of))
    return values.reshape(shape), ranks.reshape(shape)
